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
import { userRedirectHook } from "./origin.js";
import type { TokenCache } from "./token-cache.js";

const REDACTED = "Bearer [redacted]";

/**
 * Handles a failed response of `instance`: replays it once when a resource rejected our token,
 * else rethrows it with our token redacted. A response that carries no token of ours is untouched.
 */
export async function replayOrRethrow(instance: AxiosInstance, error: unknown, source: TokenCache, settings: Settings): Promise<unknown> {
  if (!axios.isAxiosError(error) || error.config === undefined) throw error;
  const config = error.config;
  const sent = bearerToken(config.headers);
  if (sent === undefined || !source.handedOut(sent)) throw error;
  const rethrow = (): never => {
    throw redactError(error, sent);
  };
  const status = error.response?.status;
  const perRequest = config.tokenRefresh;
  // A skipped request is the caller's own, whatever Authorization it carries: never replayed, never a reason to drop our token.
  if (perRequest?.skip === true || status === undefined || !settings.replayStatuses.has(status)) return rethrow();

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
    const outcome = await source.rejected(sent, true);
    if (outcome === "cooldown") reason ??= "cooldown";
    if (reason === undefined) {
      emit(settings.onEvent, { type: "unauthorized_replayed", status, invalidated: outcome === "dropped" });
      return instance.request(replayConfig(config));
    }
  }
  emit(settings.onEvent, { type: "unauthorized_not_replayed", status, reason });
  return rethrow();
}

/**
 * The request again, as the caller made it: our header and redirect hook come off, so the replay
 * goes through the instance's interceptors like a new request and gets the new token.
 */
function replayConfig(config: InternalAxiosRequestConfig): InternalAxiosRequestConfig {
  const headers = copyHeaders(config.headers, (copy) => deleteHeader(copy, "Authorization"));
  const replay = { ...config, headers, tokenRefresh: { ...config.tokenRefresh, replayed: true } } as InternalAxiosRequestConfig;
  const userHook = userRedirectHook(config.beforeRedirect);
  if (userHook === undefined) delete replay.beforeRedirect;
  else replay.beforeRedirect = userHook;
  return replay;
}

function bearerToken(headers: unknown): string | undefined {
  const value = readHeader(headers, "Authorization");
  return typeof value === "string" && value.startsWith("Bearer ") ? value.slice(7) : undefined;
}

/** A stream body was consumed by the first attempt and cannot be sent again. */
function isReplayable(data: unknown): boolean {
  if (data === null || typeof data !== "object") return true;
  if (typeof (data as { pipe?: unknown }).pipe === "function") return false;
  return typeof (data as { getReader?: unknown }).getReader !== "function"; // a web ReadableStream
}

/**
 * Gives the error a copy of its config that says `Bearer [redacted]`; the caller's config object is
 * left as it was. The raw request (Node's ClientRequest keeps the header bytes) stays reachable as
 * `error.request`, but as a getter that logging and serialization do not walk into.
 */
function redactError(error: AxiosError, token: string): AxiosError {
  const config = error.config;
  if (config === undefined) return error;
  const headers = copyHeaders(config.headers, (copy) => {
    if (readHeader(copy.headers, "Authorization") === `Bearer ${token}`) writeHeader(copy, "Authorization", REDACTED);
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
