/**
 * A token source for any caller: fetch, WebSocket, gRPC metadata, or the axios glue in
 * interceptor.ts, which is built on it. The token request itself goes through axios (the user's
 * `httpClient`, or an instance made at the first request), but the cache rule does not know that.
 */
import axios from "axios";
import { acquireToken } from "./acquire-token.js";
import { endpointResolver } from "./discovery.js";
import { InvalidOptionError } from "./errors.js";
import type { Settings, TokenHttpClient, TokenRefreshOptions, TokenSourceOptions } from "./options.js";
import { TokenCache, type GetTokenOptions, type TokenFetcher } from "./token-cache.js";
import { normalizeOptions } from "./validate-options.js";

export type { GetTokenOptions } from "./token-cache.js";

/** A token with what is known of it. Times are epoch milliseconds. */
export interface AccessToken {
  /** The access token, for `Authorization: <tokenType> <accessToken>`. */
  readonly accessToken: string;
  /** `Bearer`, or with `dpop` `DPoP`: a token bound to the key, usable only with a proof per request. */
  readonly tokenType: "Bearer" | "DPoP";
  /** When the token stops being valid. */
  readonly expiresAt: number;
  /** From when it is refreshed in the background. */
  readonly refreshAt: number;
  /**
   * The scope granted, space-separated (RFC 6749 §5.1): the token response's `scope`, else the
   * requested one; absent when none was requested and none stated.
   */
  readonly scope?: string;
}

/** Gets, caches, refreshes and invalidates one client's tokens; see {@link createTokenSource}. */
export interface TokenSource {
  /** Returns a valid token with its timing, fetched if needed (one fetch however many callers wait). */
  getToken(options?: GetTokenOptions): Promise<AccessToken>;
  /** Returns a valid access token string; the shortcut of {@link TokenSource.getToken}. */
  getAccessToken(options?: GetTokenOptions): Promise<string>;
  /**
   * Drops the cached token, here and in the store. With `rejectedToken`, only if the cache still holds
   * that token, so a late caller cannot evict a newer one.
   */
  invalidate(rejectedToken?: string): Promise<void>;
  /** Aborts a token request on the wire and ends backoff waits; later calls fail with `ERR_DISPOSED`. */
  dispose(): void;
  /**
   * With `dpop`: a fresh DPoP proof (RFC 9449 §4) for one request of yours, to send as the `DPoP` header
   * next to `Authorization: DPoP <accessToken>`; give the token for `ath`. Rejects without `dpop`.
   */
  createDpopProof(request: DpopProofRequest): Promise<string>;
}

/** What a DPoP proof is made for: {@link TokenSource.createDpopProof}. */
export interface DpopProofRequest {
  /** The HTTP method, e.g. `GET`. */
  readonly method: string;
  /** The absolute URL the request goes to; query and fragment are left out of the proof. */
  readonly url: string;
  /** The access token the request carries (the proof's `ath`). */
  readonly accessToken?: string;
}

/**
 * Returns a token source for an OAuth 2.0 client-credentials client: cached, refreshed ahead of
 * expiry, fetched once however many callers need it. Throws an `InvalidOptionError` for bad options.
 * @example
 * const source = createTokenSource({ tokenUrl, clientId, clientSecret, scope: "orders:read" });
 * const { accessToken } = await source.getToken();
 */
export function createTokenSource(options: TokenSourceOptions): TokenSource {
  const settings = normalizeOptions(options, "source");
  return sourceOver(new TokenCache(settings, tokenFetcher(settings)), settings);
}

/** The cache and its public face, for the interceptor (which adds the axios glue). */
export function createCachedSource(options: TokenRefreshOptions): { cache: TokenCache; source: TokenSource; settings: Settings } {
  const settings = normalizeOptions(options, "interceptor");
  const cache = new TokenCache(settings, tokenFetcher(settings));
  return { cache, source: sourceOver(cache, settings), settings };
}

/**
 * The axios instance for token requests of every source without an `httpClient`: made when the first
 * token is needed, then shared (5 KB each otherwise). Nothing is set on it and nothing is kept in it
 * per request: each request carries its own URL, headers, timeout and signal. Not the global `axios`,
 * whose interceptors (perhaps ours) and defaults are the app's.
 */
let defaultClient: TokenHttpClient | undefined;

/** The token request through the user's axios instance, or the shared one above. */
function tokenFetcher(settings: Settings): TokenFetcher {
  const resolveEndpoint = endpointResolver(settings);
  return (limits) => {
    if (settings.httpClient !== undefined) return acquireToken(settings.httpClient, settings, resolveEndpoint, limits);
    defaultClient ??= axios.create();
    return acquireToken(defaultClient, settings, resolveEndpoint, limits);
  };
}

function sourceOver(cache: TokenCache, settings: Settings): TokenSource {
  return {
    getToken: async (options) => {
      const entry = await cache.tokenEntry(options?.signal, options?.forceRefresh);
      const token: AccessToken = {
        accessToken: entry.accessToken,
        tokenType: entry.tokenType ?? "Bearer",
        expiresAt: entry.expiresAt,
        refreshAt: entry.refreshAt,
      };
      const scope = entry.scope ?? settings.scope;
      return scope === undefined ? token : { ...token, scope };
    },
    getAccessToken: (options) => Promise.resolve(cache.token(options?.signal, options?.forceRefresh)),
    invalidate: async (rejectedToken) => {
      if (rejectedToken !== undefined && typeof rejectedToken !== "string") {
        throw new InvalidOptionError('"rejectedToken" must be a string', "ERR_INVALID_ARG_TYPE");
      }
      if (rejectedToken === undefined) await cache.invalidate();
      else await cache.rejected(rejectedToken, false);
    },
    dispose: () => cache.dispose(),
    createDpopProof: async (request) => {
      if (settings.dpop === undefined)
        throw new InvalidOptionError('"dpop" is not set for this source, so it has no key to sign a proof with');
      if (request === null || typeof request !== "object" || typeof request.method !== "string" || typeof request.url !== "string") {
        throw new InvalidOptionError("createDpopProof() takes { method, url, accessToken? }", "ERR_INVALID_ARG_TYPE");
      }
      const target = { method: request.method, url: request.url };
      return settings.dpop.proof(request.accessToken === undefined ? target : { ...target, accessToken: request.accessToken });
    },
    // util.inspect and JSON.stringify show what identifies the client, never the secret.
    ...renderings(settings, "TokenSource"),
  } as TokenSource;
}

/** How a source or an interceptor shows itself in `util.inspect` and `JSON.stringify`: its cache key only. */
export function renderings(settings: Settings, name: string): Record<string | symbol, () => unknown> {
  return {
    [Symbol.for("nodejs.util.inspect.custom")]: () => `${name} { cacheKey: ${JSON.stringify(settings.cacheKey)} }`,
    toJSON: () => ({ cacheKey: settings.cacheKey }),
  };
}
