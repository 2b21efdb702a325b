/**
 * When to try the token endpoint again, and how long to wait: transient failures only,
 * exponential backoff with full jitter, and the server's `Retry-After`.
 */
import { TokenRequestError } from "./errors.js";

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const PERMANENT_OAUTH_ERRORS = new Set([
  "invalid_client",
  "unauthorized_client",
  "invalid_scope",
  "invalid_request",
  "invalid_grant",
  "unsupported_grant_type",
  "invalid_dpop_proof", // a proof the server will not take: the same key and clock make the same proof
]);

/** Returns true for failures worth another attempt: 408, 429, 500/502/503/504 and network errors, never an OAuth refusal. */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof TokenRequestError)) return false;
  if (error.code === "ERR_TOKEN_NETWORK" || error.code === "ERR_TOKEN_TIMEOUT") return true;
  if (error.error !== undefined && PERMANENT_OAUTH_ERRORS.has(error.error)) return false;
  return error.status !== undefined && RETRYABLE_STATUS.has(error.status);
}

/**
 * Returns true for a refusal that asking again will not change: a 400/401 from the token endpoint
 * with an OAuth error such as `invalid_client` (a wrong or expired secret, a revoked client).
 */
export function isPermanentRefusal(error: unknown): boolean {
  return (
    error instanceof TokenRequestError &&
    (error.status === 400 || error.status === 401) &&
    error.error !== undefined &&
    PERMANENT_OAUTH_ERRORS.has(error.error)
  );
}

/** Full-jitter exponential backoff (AWS architecture blog): a random wait below min(cap, base·2^(attempt-1)). */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random = Math.random): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * ceiling);
}

/**
 * Parses `Retry-After` as delay-seconds or an HTTP-date, in ms; a past date means 0,
 * anything unparsable undefined (the caller falls back to its backoff).
 */
export function parseRetryAfter(value: string | undefined, at = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined; // "-5", "1.5": not a date either
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - at);
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts; the timer never holds the process open. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    unrefTimer(timer);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Lets the process exit while a timer is pending (Node); a no-op where timers are plain numbers. */
export function unrefTimer(timer: unknown): void {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}
