/**
 * The axios glue: a request interceptor that puts the token on requests bound for allowed
 * origins, and `attach()`, which adds the once-only 401 replay and error redaction.
 * The data path stays straight: request → cached token? → (one shared refresh) → header.
 */
import { AxiosError, CanceledError, type AxiosInstance, type InternalAxiosRequestConfig } from "axios";
import { monotonicNow } from "./clock.js";
import { InvalidOptionError, TokenRefreshError } from "./errors.js";
import { writeHeader } from "./headers.js";
import type { StoredToken } from "./store.js";
import type { TokenRefreshOptions } from "./options.js";
import { composeRedirectHook, OriginPolicy, requestUrl, type AllowedOrigins } from "./origin.js";
import type { DpopKey } from "./dpop.js";
import { rememberNonceOf, replayOrRethrow } from "./replay.js";
import { unrefTimer } from "./retry.js";
import { disposedError } from "./token-cache.js";
import { createCachedSource, renderings, type AccessToken, type GetTokenOptions, type TokenSource } from "./token-source.js";

/**
 * axios's CanceledError, by its runtime signature `(message, config)`: the same in every version of
 * the peer range, while the typings of 1.16 declare only the constructor inherited from AxiosError.
 */
const Canceled = CanceledError as unknown as new (message: string | undefined, config: InternalAxiosRequestConfig) => Error;

/**
 * An axios instance, from any copy of axios: ours, axios's other build (CJS next to ESM), or a nested
 * second version. Typed by shape, so that another copy's `AxiosInstance` type fits too; axios
 * instances have every member below.
 */
export interface AttachableAxiosInstance {
  /** The instance's defaults; `baseURL` decides where the token may go when `allowedOrigins` is not set. */
  readonly defaults: { readonly baseURL?: string | undefined };
  /** The instance's interceptor lists. */
  readonly interceptors: {
    /** Request interceptors: attach() adds two. */
    readonly request: InterceptorList;
    /** Response interceptors: attach() adds one (the 401 replay and the redaction). */
    readonly response: InterceptorList;
  };
  /** Sends a request: used for the one replay after a 401. */
  request(config: never): Promise<unknown>;
}

/** An axios interceptor list, as attach() uses it: add with `use`, remove with `eject`. */
export interface InterceptorList {
  /** Adds an interceptor and returns its id. */
  use(...handlers: never[]): number;
  /** Removes the interceptor with that id. */
  eject(id: number): void;
}

/** Per-request options, set as `config.tokenRefresh` on an axios request. */
export interface TokenRefreshRequestOptions {
  /** Send this request without our token; it is never replayed, and its 401 never drops our token. */
  skip?: boolean;
  /** Attach the token, but do not replay this request after a 401. */
  noReplay?: boolean;
  /** Set by the library on the one replay after a 401; a replay is never replayed. */
  readonly replayed?: boolean;
  /** Set by the library on the one retry with a resource's new DPoP nonce (a 401 `use_dpop_nonce`). */
  readonly nonceRetried?: boolean;
}

declare module "axios" {
  interface AxiosRequestConfig {
    /** Per-request options of axios-token-refresh. */
    tokenRefresh?: TokenRefreshRequestOptions;
  }
}

/** Options of {@link TokenRefreshInterceptor.getAccessToken}. */
export type GetAccessTokenOptions = GetTokenOptions;

/**
 * A request interceptor (pass it to `instance.interceptors.request.use`) that is also the
 * {@link TokenSource} behind it, for callers that are not axios, and manages its own lifecycle.
 */
export interface TokenRefreshInterceptor extends TokenSource {
  /** Sets `Authorization: Bearer <token>` on requests to allowed origins, fetching a token when needed. */
  <D>(config: InternalAxiosRequestConfig<D>): Promise<InternalAxiosRequestConfig<D>>;
  /** Returns a valid token with its timing, fetched if needed. */
  getToken(options?: GetAccessTokenOptions): Promise<AccessToken>;
  /** Returns a valid access token, fetched if needed; for callers that are not axios (fetch, WebSocket). */
  getAccessToken(options?: GetAccessTokenOptions): Promise<string>;
  /**
   * Installs the request interceptor and a response interceptor (401 replay, error redaction) on
   * `instance`; returns a function that removes both.
   */
  attach(instance: AttachableAxiosInstance): () => void;
  /** Removes what `attach()` installed, aborts a token request on the wire; later calls fail with `ERR_DISPOSED`. */
  dispose(): void;
}

/**
 * Returns a request interceptor that keeps an OAuth 2.0 client-credentials token cached,
 * refreshed ahead of expiry, and fetched once however many requests need it.
 * Throws an `InvalidOptionError` (a `TypeError` with a `code`) for bad options.
 * @example
 * const api = axios.create({ baseURL: "https://graph.microsoft.com/v1.0" });
 * const auth = createTokenRefreshInterceptor({ tenantId, clientId, clientSecret, scope: "https://graph.microsoft.com/.default" });
 * auth.attach(api); // or: api.interceptors.request.use(auth)
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4
 */
export function createTokenRefreshInterceptor(options: TokenRefreshOptions): TokenRefreshInterceptor {
  const { cache, source: tokens, settings } = createCachedSource(options);
  const origins = new OriginPolicy(settings.allowedOrigins, settings.allowInsecureHttp);
  const { dpop } = settings;
  const detachers = new Set<() => void>();

  // Per token, not per request: the header value (its characters were checked when the token arrived).
  let headerToken = "";
  let headerValue = "";
  const authorize = <C extends InternalAxiosRequestConfig>(config: C, token: string, allowed: AllowedOrigins): C => {
    if (token !== headerToken) {
      headerToken = token;
      headerValue = `Bearer ${token}`;
    }
    writeAuthorization(config, headerValue);
    config.beforeRedirect = composeRedirectHook(allowed, config.beforeRedirect);
    return config;
  };

  /**
   * Whether the request is to carry our token at all: not skipped, no credentials of its own (`auth`,
   * an Authorization header, userinfo in the URL), an allowed origin. Throws when no origin is allowed.
   * The URL's part is remembered by the origin policy for the last target: see forRequest.
   */
  const tokenTarget = (config: InternalAxiosRequestConfig): AllowedOrigins | undefined =>
    config.tokenRefresh?.skip === true || carriesCallerCredentials(config) ? undefined : origins.forRequest(config);

  /** `Authorization: DPoP <token>` and the request's proof (RFC 9449 §7.1). */
  const withProof = <C extends InternalAxiosRequestConfig>(config: C, token: string, proof: string, allowed: AllowedOrigins): C => {
    writeAuthorization(config, `DPoP ${token}`);
    writeHeader(config, "DPoP", proof);
    config.beforeRedirect = composeRedirectHook(allowed, config.beforeRedirect);
    return config;
  };

  /** With DPoP: the token with its type, and for a bound token a proof for this request (RFC 9449 §7.1). */
  const authorizeWithProof = async <C extends InternalAxiosRequestConfig>(
    config: C,
    key: DpopKey,
    entry: StoredToken,
    allowed: AllowedOrigins,
  ): Promise<C> => {
    if (entry.tokenType !== "DPoP") return authorize(config, entry.accessToken, allowed); // allowBearer: the server did not bind it
    const url = requestUrl(config);
    if (url === undefined) {
      throw new TokenRefreshError(
        'the request has no absolute URL for its DPoP proof: give the instance a "baseURL"',
        "ERR_ORIGIN_NOT_CONFIGURED",
      );
    }
    return withProof(
      config,
      entry.accessToken,
      await key.proof({ method: config.method ?? "get", url, accessToken: entry.accessToken }),
      allowed,
    );
  };

  const interceptor = <C extends InternalAxiosRequestConfig>(config: C): Promise<C> => {
    let allowed: AllowedOrigins | undefined;
    try {
      allowed = tokenTarget(config);
    } catch (error) {
      return Promise.reject(error);
    }
    if (allowed === undefined) return Promise.resolve(config);
    const granted: AllowedOrigins = allowed;
    const signal = config.signal as AbortSignal | undefined;
    if (dpop !== undefined) {
      return asAxiosCancel(
        config,
        withinRequestTimeout(config, cache.tokenEntry(signal)).then((entry) => authorizeWithProof(config, dpop, entry, granted)),
      );
    }
    const token = cache.token(signal);
    if (typeof token === "string") return Promise.resolve(authorize(config, token, granted));
    return asAxiosCancel(
      config,
      withinRequestTimeout(config, token).then((value) => authorize(config, value, granted)),
    );
  };

  /**
   * attach() installs two request interceptors and axios runs one of them per request (`runWhen`):
   * with a token at hand, a synchronous one, so the request leaves in the same tick (axios runs the
   * chain synchronously when every interceptor that runs is synchronous); otherwise the waiting one.
   * Both `runWhen` calls of one request come one after the other, so the first decides for both and
   * hands its token to the interceptor: one clock read per request.
   */
  let decidedFor: InternalAxiosRequestConfig | undefined;
  let decidedToken: string | undefined;
  const tokenAtHand = (config: InternalAxiosRequestConfig): boolean => {
    decidedFor = config;
    // With DPoP, only where a proof can be signed in this tick (Node's crypto, the key imported).
    decidedToken = dpop === undefined || dpop.canSignNow ? cache.peek() : undefined;
    return decidedToken !== undefined;
  };
  const tokenNotAtHand = (config: InternalAxiosRequestConfig): boolean => {
    const atHand = decidedFor === config && decidedToken !== undefined;
    if (!atHand) decidedFor = undefined;
    return !atHand;
  };
  // Never throws: a synchronous interceptor's throw would not stop axios before 1.20 from sending the request.
  const authorizeNow = <C extends InternalAxiosRequestConfig>(config: C): C => {
    // The token runWhen saw, unless it has been dropped since (possible only when another, asynchronous
    // interceptor ran in between); a token that expired in such a gap meets the 401 replay.
    const token = decidedFor === config && decidedToken === cache.held ? decidedToken : cache.peek();
    decidedFor = undefined;
    let allowed: AllowedOrigins | undefined;
    try {
      allowed = tokenTarget(config);
    } catch (error) {
      return failAtDispatch(config, error);
    }
    if (allowed === undefined) return config;
    // Only when another, asynchronous interceptor delayed this one (so axios runs the chain as promises) can the token be gone by now.
    if (token === undefined) return interceptor(config) as unknown as C;
    if (dpop === undefined || cache.heldTokenType !== "DPoP" || token !== cache.held) return authorize(config, token, allowed);
    const url = requestUrl(config);
    const proof = url === undefined ? undefined : dpop.proofNow({ method: config.method ?? "get", url, accessToken: token });
    if (proof === undefined) return interceptor(config) as unknown as C;
    return withProof(config, token, proof, allowed);
  };

  const attach = (attachable: AttachableAxiosInstance): (() => void) => {
    // The one place the instance's own type is assumed: the methods below exist on every axios in the peer range.
    const instance = attachable as unknown as AxiosInstance;
    if (cache.disposed) throw disposedError();
    if (instance === settings.httpClient) {
      throw new InvalidOptionError('"httpClient" must not be the instance the interceptor is attached to: token requests would recurse');
    }
    const baseURL = instance.defaults.baseURL;
    if (!origins.configured && (typeof baseURL !== "string" || baseURL === "")) {
      throw new InvalidOptionError('the axios instance has no "baseURL": list "allowedOrigins" so the token knows where it may go');
    }
    // Registered together, so their runWhen calls are adjacent: see tokenAtHand.
    const syncId = instance.interceptors.request.use(authorizeNow, undefined, { synchronous: true, runWhen: tokenAtHand });
    const waitingId = instance.interceptors.request.use(interceptor, undefined, { runWhen: tokenNotAtHand });
    // With DPoP, every answer may bring the server's next nonce (RFC 9449 §8.2, §9).
    const learnNonce =
      dpop === undefined
        ? undefined
        : <R extends { readonly config?: InternalAxiosRequestConfig; readonly headers?: unknown }>(response: R): R => {
            rememberNonceOf(dpop, response.config, response.headers);
            return response;
          };
    const responseId = instance.interceptors.response.use(learnNonce, (error: unknown) =>
      replayOrRethrow(instance, error, cache, settings),
    );
    const detach = (): void => {
      if (!detachers.delete(detach)) return;
      instance.interceptors.request.eject(syncId);
      instance.interceptors.request.eject(waitingId);
      instance.interceptors.response.eject(responseId);
    };
    detachers.add(detach);
    return detach;
  };

  const dispose = (): void => {
    for (const detach of [...detachers]) detach();
    tokens.dispose();
  };

  return Object.assign(interceptor, {
    getToken: tokens.getToken,
    getAccessToken: tokens.getAccessToken,
    createDpopProof: tokens.createDpopProof,
    invalidate: tokens.invalidate,
    attach,
    dispose,
    ...renderings(settings, "TokenRefreshInterceptor"),
  }) as TokenRefreshInterceptor;
}

/**
 * The caller's own credentials win and we never add ours: `auth`, or an Authorization header (on the
 * request or the instance defaults). A user and password in the URL, which axios turns into Basic,
 * count too: OriginPolicy.forRequest answers for those, as they are part of the URL's decision.
 */
function carriesCallerCredentials(config: InternalAxiosRequestConfig): boolean {
  return (config.auth !== undefined && config.auth !== null) || authorizationKey(config.headers) !== undefined;
}

/**
 * The name of an Authorization header present with a value, whatever its case, or undefined. One
 * scan of the own keys, as axios's own lookup does; any copy's AxiosHeaders keeps headers as own
 * properties, and so does a plain object.
 */
function authorizationKey(headers: unknown): string | undefined {
  if (headers === null || typeof headers !== "object") return undefined;
  for (const key in headers) {
    if (key.length === 13 && key.toLowerCase() === "authorization" && (headers as Record<string, unknown>)[key] !== undefined) return key;
  }
  return undefined;
}

/**
 * Sets our header. No Authorization with a value is there (carriesCallerCredentials said so), so a
 * plain property write does what `headers.set` would, without its per-call name and value checks:
 * the name is a constant and the value was checked once, when the token arrived.
 */
function writeAuthorization(config: InternalAxiosRequestConfig, value: string): void {
  const headers = config.headers as unknown;
  if (headers !== null && typeof headers === "object") (headers as Record<string, unknown>).Authorization = value;
  else writeHeader(config, "Authorization", value);
}

/** An aborted wait rejects the way axios users test for: `axios.isCancel(error)`. */
function asAxiosCancel<C extends InternalAxiosRequestConfig>(config: C, authorized: Promise<C>): Promise<C> {
  return authorized.catch((error: unknown) => {
    if (error instanceof TokenRefreshError && error.code === "ERR_TOKEN_ABORTED") throw new Canceled(undefined, config);
    throw error;
  });
}

/** Makes the request fail with `error` when axios dispatches it: the way a synchronous interceptor can refuse a request. */
function failAtDispatch<C extends InternalAxiosRequestConfig>(config: C, error: unknown): C {
  config.adapter = () => Promise.reject(error);
  return config;
}

/**
 * axios's `timeout` bounds the whole call: the wait for a token counts against it, and the request
 * gets what is left. A wait that outlasts it fails as axios's own timeout does (`ECONNABORTED`, or
 * `ETIMEDOUT` with `transitional.clarifyTimeoutError`); the shared fetch goes on for the others.
 */
function withinRequestTimeout<T>(config: InternalAxiosRequestConfig, token: Promise<T>): Promise<T> {
  const timeoutMs = config.timeout;
  if (typeof timeoutMs !== "number" || !(timeoutMs > 0)) return token;
  const startedAt = monotonicNow();
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const message = config.timeoutErrorMessage ?? `timeout of ${timeoutMs}ms exceeded`;
      const code = config.transitional?.clarifyTimeoutError === true ? AxiosError.ETIMEDOUT : AxiosError.ECONNABORTED;
      reject(new AxiosError(message, code, config));
    }, timeoutMs);
    unrefTimer(timer);
    token.then(
      (value) => {
        clearTimeout(timer);
        config.timeout = Math.max(1, Math.floor(timeoutMs - (monotonicNow() - startedAt)));
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
