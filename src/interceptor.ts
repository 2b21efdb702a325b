/**
 * The axios glue: a request interceptor that puts the token on requests bound for allowed
 * origins, and `attach()`, which adds the once-only 401 replay and error redaction.
 * The data path stays straight: request → cached token? → (one shared refresh) → header.
 */
import axios, { AxiosHeaders, CanceledError, type AxiosError, type AxiosInstance, type InternalAxiosRequestConfig } from "axios";
import { InvalidOptionError, TokenRefreshError } from "./errors.js";
import { emit } from "./events.js";
import { normalizeOptions, type TokenRefreshOptions } from "./options.js";
import { composeRedirectHook, OriginPolicy, userRedirectHook, type AllowedOrigins } from "./origin.js";
import { disposedError, TokenSource, type GetTokenOptions } from "./token-source.js";

/** Per-request options, set as `config.tokenRefresh` on an axios request. */
export interface TokenRefreshRequestOptions {
  /** Send this request without our token, and never replay it. */
  skip?: boolean;
  /** Attach the token, but do not replay this request after a 401. */
  noReplay?: boolean;
  /** Set by the library on the one replay after a 401; a replay is never replayed. */
  readonly replayed?: boolean;
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
 * A request interceptor (pass it to `instance.interceptors.request.use`) that also hands out
 * tokens to non-axios callers and manages its own lifecycle.
 */
export interface TokenRefreshInterceptor {
  /** Sets `Authorization: Bearer <token>` on requests to allowed origins, fetching a token when needed. */
  <D>(config: InternalAxiosRequestConfig<D>): Promise<InternalAxiosRequestConfig<D>>;
  /** Returns a valid access token, fetched if needed; for callers that are not axios (fetch, WebSocket). */
  getAccessToken(options?: GetAccessTokenOptions): Promise<string>;
  /**
   * Drops the cached token. With `rejectedToken`, only if the cache still holds that token,
   * so a late caller cannot evict a newer one.
   */
  invalidate(rejectedToken?: string): Promise<void>;
  /**
   * Installs the request interceptor and a response interceptor (401 replay, error redaction) on
   * `instance`; returns a function that removes both.
   */
  attach(instance: AxiosInstance): () => void;
  /** Removes what `attach()` installed, ends backoff waits; later calls fail with `ERR_DISPOSED`. */
  dispose(): void;
}

const REDACTED = "Bearer [redacted]";
/** A token younger than this (at most a tenth of its lifetime) is not dropped on a 401 (401-4). */
const REPLAY_MIN_TOKEN_AGE_MS = 5_000;

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
  const settings = normalizeOptions(options);
  const tokenClient = settings.httpClient ?? axios.create();
  const source = new TokenSource(settings, tokenClient);
  const origins = new OriginPolicy(settings.allowedOrigins, settings.allowInsecureHttp);
  const detachers = new Set<() => void>();

  // The header value is built once per token: a fresh concatenation per request costs more than the rest of the hot path.
  let headerToken = "";
  let headerValue = "";
  const authorize = <C extends InternalAxiosRequestConfig>(config: C, token: string, allowed: AllowedOrigins): C => {
    if (token !== headerToken) {
      headerToken = token;
      headerValue = `Bearer ${token}`;
    }
    headersOf(config).set("Authorization", headerValue);
    config.beforeRedirect = composeRedirectHook(allowed, config.beforeRedirect);
    return config;
  };

  const interceptor = <C extends InternalAxiosRequestConfig>(config: C): Promise<C> => {
    if (config.tokenRefresh?.skip === true || carriesCallerCredentials(config)) return Promise.resolve(config);
    let allowed: AllowedOrigins | undefined;
    try {
      allowed = origins.allowedFor(config);
    } catch (error) {
      return Promise.reject(error);
    }
    if (allowed === undefined) return Promise.resolve(config);
    const granted: AllowedOrigins = allowed;
    const token = source.token(config.signal as AbortSignal | undefined);
    if (typeof token === "string") return Promise.resolve(authorize(config, token, granted));
    return token.then(
      (value) => authorize(config, value, granted),
      (error: unknown) => {
        // An aborted request rejects the way axios users test for: axios.isCancel(error).
        if (error instanceof TokenRefreshError && error.code === "ERR_TOKEN_ABORTED") {
          throw new CanceledError(undefined, config);
        }
        throw error;
      },
    );
  };

  const replayOrRethrow = async (instance: AxiosInstance, error: unknown): Promise<unknown> => {
    if (!axios.isAxiosError(error) || error.config === undefined) throw error;
    const config = error.config;
    // The token the request went out with, if it is one of ours: the 401 path drops exactly that one.
    const sent = bearerToken(config.headers);
    if (sent === undefined || !source.handedOut(sent)) throw error; // not ours: untouched
    const status = error.response?.status;
    const perRequest = config.tokenRefresh;
    if (
      status !== undefined &&
      settings.replayStatuses.has(status) &&
      perRequest?.replayed !== true &&
      perRequest?.noReplay !== true &&
      isReplayable(config.data) &&
      !source.disposed
    ) {
      // Compare-and-delete: 50 concurrent 401s for one token drop it once and share one refresh;
      // a 401 for a token already replaced drops nothing and replays with the newer one; a 401 for
      // a token we fetched seconds ago is not about the token, so it goes to the caller as it is.
      const outcome = await source.invalidate(sent, REPLAY_MIN_TOKEN_AGE_MS);
      if (outcome === "too-fresh") throw settings.redactErrors ? redactError(error, sent) : error;
      emit(settings.onEvent, { type: "unauthorized_replayed", status, invalidated: outcome === "dropped" });
      const headers = new AxiosHeaders(config.headers);
      headers.delete("Authorization");
      // Through instance.request, so the caller's other interceptors handle the replay like a new request;
      // our header and redirect hook come off first, so the replay is the caller's request again.
      const replay: InternalAxiosRequestConfig = { ...config, headers, tokenRefresh: { ...perRequest, replayed: true } };
      const userHook = userRedirectHook(config.beforeRedirect);
      if (userHook === undefined) delete replay.beforeRedirect;
      else replay.beforeRedirect = userHook;
      return instance.request(replay);
    }
    throw settings.redactErrors ? redactError(error, sent) : error;
  };

  const getAccessToken = (tokenOptions?: GetAccessTokenOptions): Promise<string> =>
    Promise.resolve(source.token(tokenOptions?.signal, tokenOptions?.forceRefresh));

  const invalidate = async (rejectedToken?: string): Promise<void> => {
    if (rejectedToken !== undefined && typeof rejectedToken !== "string") {
      throw new InvalidOptionError('"rejectedToken" must be a string', "ERR_INVALID_ARG_TYPE");
    }
    await source.invalidate(rejectedToken);
  };

  const attach = (instance: AxiosInstance): (() => void) => {
    if (source.disposed) throw disposedError();
    if (instance === tokenClient) {
      throw new InvalidOptionError('"httpClient" must not be the instance the interceptor is attached to: token requests would recurse');
    }
    const baseURL = instance.defaults.baseURL;
    if (!origins.configured && (typeof baseURL !== "string" || baseURL === "")) {
      throw new InvalidOptionError('the axios instance has no "baseURL": list "allowedOrigins" so the token knows where it may go');
    }
    const requestId = instance.interceptors.request.use(interceptor);
    const responseId = instance.interceptors.response.use(undefined, (error: unknown) => replayOrRethrow(instance, error));
    const detach = (): void => {
      if (!detachers.delete(detach)) return;
      instance.interceptors.request.eject(requestId);
      instance.interceptors.response.eject(responseId);
    };
    detachers.add(detach);
    return detach;
  };

  const dispose = (): void => {
    for (const detach of [...detachers]) detach();
    source.dispose();
  };

  return Object.assign(interceptor, {
    getAccessToken,
    invalidate,
    attach,
    dispose,
    // util.inspect shows what identifies the client, never the secret (SEC-4).
    [Symbol.for("nodejs.util.inspect.custom")]: () => `TokenRefreshInterceptor { cacheKey: ${JSON.stringify(settings.cacheKey)} }`,
    toJSON: () => ({ cacheKey: settings.cacheKey }),
  }) as TokenRefreshInterceptor;
}

function headersOf(config: InternalAxiosRequestConfig): AxiosHeaders {
  if (!(config.headers instanceof AxiosHeaders)) {
    config.headers = AxiosHeaders.from(config.headers as ConstructorParameters<typeof AxiosHeaders>[0]);
  }
  return config.headers;
}

function bearerToken(headers: unknown): string | undefined {
  const value = headers instanceof AxiosHeaders ? headers.get("Authorization") : undefined;
  return typeof value === "string" && value.startsWith("Bearer ") ? value.slice(7) : undefined;
}

/** The caller's own Authorization (on the request or the instance defaults) or `auth` wins; we never overwrite it. */
function carriesCallerCredentials(config: InternalAxiosRequestConfig): boolean {
  if (config.auth !== undefined && config.auth !== null) return true;
  const headers = config.headers as unknown;
  if (headers instanceof AxiosHeaders) return headers.has("Authorization");
  if (headers === null || typeof headers !== "object") return false;
  return Object.keys(headers).some((name) => name.toLowerCase() === "authorization");
}

/** A stream body was consumed by the first attempt and cannot be sent again (401-3). */
function isReplayable(data: unknown): boolean {
  if (data === null || typeof data !== "object") return true;
  if (typeof (data as { pipe?: unknown }).pipe === "function") return false;
  const ReadableStreamClass = (globalThis as { ReadableStream?: new () => unknown }).ReadableStream;
  return ReadableStreamClass === undefined || !(data instanceof ReadableStreamClass);
}

/**
 * Gives the error a copy of its config that says `Bearer [redacted]`; the caller's config object is
 * left as it was (SEC-5). The raw request (Node's ClientRequest keeps the header bytes) stays
 * reachable as `error.request`, but as a getter that logging and serialization do not walk into.
 */
function redactError(error: AxiosError, token: string): AxiosError {
  const config = error.config;
  if (config === undefined) return error;
  const headers = new AxiosHeaders(config.headers);
  if (headers.get("Authorization") === `Bearer ${token}`) headers.set("Authorization", REDACTED);
  const redacted = { ...config, headers } as InternalAxiosRequestConfig;
  if (error.response !== undefined) {
    const response = { ...error.response };
    if (response.config === config) response.config = redacted;
    hideRequest(response);
    error.response = response;
  }
  error.config = redacted;
  hideRequest(error);
  return error;
}

function hideRequest(holder: { request?: unknown }): void {
  if (!Object.prototype.hasOwnProperty.call(holder, "request")) return;
  let request = holder.request;
  Object.defineProperty(holder, "request", {
    configurable: true,
    enumerable: false,
    get: () => request,
    set: (value: unknown) => {
      request = value;
    },
  });
}
