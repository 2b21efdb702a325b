/**
 * Getting one token from the endpoint within a time budget: the attempts, the backoff between
 * them and the endpoint's `Retry-After`. Only transient failures (429, 5xx, network) are tried
 * again; an OAuth refusal such as `invalid_client` is final, since repeating it only gets the
 * client throttled or locked by the identity provider.
 */
import { requestToken } from "./client-credentials.js";
import { monotonicNow } from "./clock.js";
import { TokenRequestError } from "./errors.js";
import { emit } from "./events.js";
import { resolveToken } from "./expiry.js";
import type { Settings, TokenHttpClient } from "./options.js";
import { backoffDelay, isTransient, sleep } from "./retry.js";
import type { StoredToken } from "./store.js";

/** The budget of one acquisition: a monotonic deadline, and a signal that ends it early (budget spent, dispose). */
export interface AcquireLimits {
  readonly deadline: number;
  readonly signal: AbortSignal;
  /** Told about every `Retry-After` the endpoint sends, in ms (capped by `retry.maxRetryAfterMs`). */
  readonly onRetryAfter: (retryAfterMs: number) => void;
}

/** Fetches one token, retrying transient failures while the budget allows. */
export async function acquireToken(client: TokenHttpClient, settings: Settings, limits: AcquireLimits): Promise<StoredToken> {
  const { retry } = settings;
  for (let attempt = 1; ; attempt += 1) {
    const sentAt = Date.now();
    const sentAtMonotonic = monotonicNow();
    let failure: unknown;
    try {
      const response = await requestToken(client, settings, {
        timeoutMs: limits.deadline - sentAtMonotonic,
        signal: limits.signal,
      });
      return resolveToken(
        {
          accessToken: response.access_token,
          expiresIn: response.expires_in,
          refreshIn: response.refresh_in,
          cacheKey: settings.cacheKey,
        },
        sentAt,
        settings,
      );
    } catch (error) {
      failure = limits.signal.aborted ? (limits.signal.reason as unknown) : error;
    }
    const retryAfterMs =
      failure instanceof TokenRequestError && failure.retryAfterMs !== undefined
        ? Math.min(failure.retryAfterMs, retry.maxRetryAfterMs)
        : undefined;
    if (retryAfterMs !== undefined) limits.onRetryAfter(retryAfterMs);
    if (attempt >= retry.attempts || !isTransient(failure) || limits.signal.aborted) throw failure;
    const delayMs = retryAfterMs ?? backoffDelay(attempt, retry.baseDelayMs, retry.maxDelayMs);
    if (monotonicNow() + delayMs >= limits.deadline) {
      throw retryAfterMs === undefined ? failure : throttledError(retryAfterMs, failure as TokenRequestError);
    }
    emit(settings.onEvent, { type: "request_retried", attempt, delayMs, code: (failure as TokenRequestError).code });
    await sleep(delayMs, limits.signal);
  }
}

/** The error of a call refused because the endpoint asked us to wait `retryAfterMs` more. */
export function throttledError(retryAfterMs: number, from?: TokenRequestError): TokenRequestError {
  const seconds = Math.ceil(retryAfterMs / 1000);
  return new TokenRequestError(`token endpoint is throttling requests; try again in ${seconds} s`, "ERR_TOKEN_THROTTLED", {
    status: from?.status,
    error: from?.error,
    errorDescription: from?.errorDescription,
    errorUri: from?.errorUri,
    retryAfterMs,
  });
}
