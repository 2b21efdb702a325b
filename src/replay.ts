/**
 * The response side of `attach()`: the once-only replay after a 401 for one of our tokens, and the
 * redaction of our token from every error that passes. Errors and configs may come from another
 * copy of axios than ours, so they are recognised the way axios itself does it (`isAxiosError`,
 * a flag on the object) and their headers are handled by shape, never by class.
 */
import axios, { type AxiosError, type AxiosInstance, type InternalAxiosRequestConfig } from "axios";
import { emit, type NotReplayedReason } from "./events.js";
import { copyHeaders, deleteHeader, readHeader, writeHeader } from "./headers.js";
import type { Settings } from "./options.js";
import { type DpopKey, nonceOfProof } from "./dpop.js";
import { requestUrl, type RequestUrlFields, userRedirectHook } from "./origin.js";
import type { TokenCache } from "./token-cache.js";

const REDACTED = "[redacted]";

/**
 * Handles a failed response of `instance`: replays it once when a resource rejected our token,
 * else rethrows it with our token redacted. A response that carries no token of ours is untouched.
 */
export async function replayOrRethrow(instance: AxiosInstance, error: unknown, source: TokenCache, settings: Settings): Promise<unknown> {
  if (!axios.isAxiosError(error) || error.config === undefined) throw error;
  const config = error.config;
  const sent = sentToken(config.headers);
  if (sent === undefined || !source.handedOut(sent.token)) throw error;
  const rethrow = (): never => {
    throw redactError(error, sent);
  };
  const status = error.response?.status;
  const perRequest = config.tokenRefresh;
  // A skipped request is the caller's own, whatever Authorization it carries: never replayed, never a reason to drop our token.
  if (perRequest?.skip === true || status === undefined) return rethrow();
  if (settings.dpop !== undefined) rememberNonceOf(settings.dpop, config, error.response?.headers);
  // RFC 9449 §9: the resource wants its nonce in the proof. Nothing is wrong with the token, so it is
  // kept; the request is sent once more if the nonce it now gets differs from the one its proof had.
  if (status === 401 && sent.scheme === "DPoP" && asksForNonce(error)) {
    const offered = readHeader(error.response?.headers, "DPoP-Nonce");
    const retry =
      perRequest?.nonceRetried === true || typeof offered !== "string" || offered === nonceOfProof(readHeader(config.headers, "DPoP"))
        ? "dpop_nonce"
        : !isReplayable(config.data)
          ? "body_not_replayable"
          : source.disposed
            ? "disposed"
            : undefined;
    if (retry === undefined) return instance.request(replayConfig(config, { nonceRetried: true }));
    emit(settings.onEvent, { type: "unauthorized_not_replayed", status, reason: retry });
    return rethrow();
  }
  if (!settings.replayStatuses.has(status)) return rethrow();

  let reason: NotReplayedReason | undefined =
    perRequest?.replayed === true
      ? "already_replayed"
      : perRequest?.noReplay === true
        ? "no_replay"
        : !isReplayable(config.data)
          ? "body_not_replayable"
          : source.disposed
            ? "disposed"
            : undefined;
  if (reason !== "disposed") {
    // Compare-and-delete: 50 concurrent 401s for one token drop it once and share one refresh; a 401
    // for a token already replaced drops nothing. Even when this request is not replayed, the token it
    // carried was rejected, so the next request gets a new one.
    const outcome = await source.rejected(sent.token, true);
    if (outcome === "cooldown") reason ??= "cooldown";
    if (reason === undefined) {
      emit(settings.onEvent, { type: "unauthorized_replayed", status, invalidated: outcome === "dropped" });
      return instance.request(replayConfig(config, { replayed: true }));
    }
  }
  emit(settings.onEvent, { type: "unauthorized_not_replayed", status, reason });
  return rethrow();
}

/**
 * The request again, as the caller made it: our headers and redirect hook come off, so the replay
 * goes through the instance's interceptors like a new request and gets the new token (and proof).
 */
function replayConfig(
  config: InternalAxiosRequestConfig,
  mark: { readonly replayed: true } | { readonly nonceRetried: true },
): InternalAxiosRequestConfig {
  const headers = copyHeaders(config.headers, (copy) => {
    deleteHeader(copy, "Authorization");
    deleteHeader(copy, "DPoP");
  });
  const replay = { ...config, headers, tokenRefresh: { ...config.tokenRefresh, ...mark } } as InternalAxiosRequestConfig;
  const userHook = userRedirectHook(config.beforeRedirect);
  if (userHook === undefined) delete replay.beforeRedirect;
  else replay.beforeRedirect = userHook;
  return replay;
}

/** Our token on a request, and how it was sent: `Bearer`, or `DPoP` with a proof. */
interface SentToken {
  readonly scheme: "Bearer" | "DPoP";
  readonly token: string;
}

function sentToken(headers: unknown): SentToken | undefined {
  const value = readHeader(headers, "Authorization");
  if (typeof value !== "string") return undefined;
  if (value.startsWith("Bearer ")) return { scheme: "Bearer", token: value.slice(7) };
  if (value.startsWith("DPoP ")) return { scheme: "DPoP", token: value.slice(5) };
  return undefined;
}

/** A 401 whose `WWW-Authenticate` says `use_dpop_nonce`: the proof lacked the resource's current nonce. */
function asksForNonce(error: AxiosError): boolean {
  const challenge = readHeader(error.response?.headers, "WWW-Authenticate");
  return typeof challenge === "string" && /\buse_dpop_nonce\b/.test(challenge);
}

/** Remembers the `DPoP-Nonce` a response brought, for the origin of the request; true when it is new. */
export function rememberNonceOf(dpop: DpopKey, config: RequestUrlFields | undefined, headers: unknown): boolean {
  const nonce = readHeader(headers, "DPoP-Nonce");
  if (typeof nonce !== "string" || config === undefined) return false;
  const url = requestUrl(config);
  return url !== undefined && dpop.rememberNonce(url, nonce);
}

/** A stream body was consumed by the first attempt and cannot be sent again. */
function isReplayable(data: unknown): boolean {
  if (data === null || typeof data !== "object") return true;
  if (typeof (data as { pipe?: unknown }).pipe === "function") return false;
  return typeof (data as { getReader?: unknown }).getReader !== "function"; // a web ReadableStream
}

/**
 * Gives the error a copy of its config that says `Bearer [redacted]` (or `DPoP [redacted]`, proof too); the caller's config object is
 * left as it was. The raw request (Node's ClientRequest keeps the header bytes) stays reachable as
 * `error.request`, but as a getter that logging and serialization do not walk into.
 */
function redactError(error: AxiosError, sent: SentToken): AxiosError {
  const config = error.config;
  if (config === undefined) return error;
  const headers = copyHeaders(config.headers, (copy) => {
    if (readHeader(copy.headers, "Authorization") === `${sent.scheme} ${sent.token}`) {
      writeHeader(copy, "Authorization", `${sent.scheme} ${REDACTED}`);
    }
    // A proof is bound to this request and short-lived, but it is ours and a log has no use for it.
    if (readHeader(copy.headers, "DPoP") !== undefined) writeHeader(copy, "DPoP", REDACTED);
  });
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
  if (!Object.hasOwn(holder, "request")) return;
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
