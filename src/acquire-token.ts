/**
 * Getting one token from the endpoint within a time budget: the attempts, the backoff between
 * them and the endpoint's `Retry-After`. Only transient failures (429, 5xx, network) are tried
 * again; an OAuth refusal such as `invalid_client` is final, since repeating it only gets the
 * client throttled or locked by the identity provider.
 */
import { requestToken } from "./client-credentials.js";
import { monotonicNow, wallNow } from "./clock.js";
import type { EndpointResolver, TokenEndpoint } from "./discovery.js";
import { isTokenRefreshError, TokenRequestError } from "./errors.js";
import { emit } from "./events.js";
import { resolveToken } from "./expiry.js";
import type { Settings, TokenHttpClient } from "./options.js";
import { backoffDelay, isTransient, sleep } from "./retry.js";
import type { StoredToken } from "./store.js";
import { channelsReady, publishEnd, publishStart } from "./tracing.js";

/** The budget of one acquisition: a monotonic deadline, and a signal that ends it early (budget spent, dispose). */
export interface AcquireLimits {
  readonly deadline: number;
  readonly signal: AbortSignal;
  /** Told about every `Retry-After` the endpoint sends, in ms (capped by `retry.maxRetryAfterMs`). */
  readonly onRetryAfter: (retryAfterMs: number) => void;
}

/**
 * Fetches one token, retrying transient failures while the budget allows. Each attempt resolves the
 * token endpoint first: with an issuer, its metadata is read at the first attempt that needs it.
 */
export async function acquireToken(
  client: TokenHttpClient,
  settings: Settings,
  resolveEndpoint: EndpointResolver,
  limits: AcquireLimits,
): Promise<StoredToken> {
  const { retry } = settings;
  await channelsReady();
  for (let attempt = 1; ; attempt += 1) {
    let failure: unknown;
    try {
      const attemptLimits = { timeoutMs: limits.deadline - monotonicNow(), signal: limits.signal };
      const endpoint = await resolveEndpoint(client, attemptLimits);
      return await requestOnce(client, settings, endpoint, attempt, limits);
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

/** One token request, published on the tracing channels, and the entry its token is stored as. */
async function requestOnce(
  client: TokenHttpClient,
  settings: Settings,
  endpoint: TokenEndpoint,
  attempt: number,
  limits: AcquireLimits,
): Promise<StoredToken> {
  const sentAt = wallNow();
  const sentAtMonotonic = monotonicNow();
  const trace = publishStart({ cacheKey: settings.cacheKey, tokenUrl: endpoint.tokenUrl, attempt });
  let response: Awaited<ReturnType<typeof requestToken>>;
  try {
    response = await requestToken(client, settings, endpoint, { timeoutMs: limits.deadline - sentAtMonotonic, signal: limits.signal });
  } catch (error) {
    const status = error instanceof TokenRequestError ? error.status : undefined;
    const code = isTokenRefreshError(error) ? error.code : "ERR_TOKEN_REQUEST";
    publishEnd(trace, sentAtMonotonic, monotonicNow(), status === undefined ? { code } : { status, code });
    throw error;
  }
  publishEnd(trace, sentAtMonotonic, monotonicNow(), { status: response.status });
  const scope = response.scope ?? settings.scope;
  reportNarrowedScope(settings, scope);
  return resolveToken(
    {
      accessToken: response.access_token,
      expiresIn: response.expires_in,
      refreshIn: response.refresh_in,
      cacheKey: settings.cacheKey,
      scope,
      tokenType: response.token_type,
    },
    sentAt,
    settings,
  );
}

/** Tells `onEvent` when the server granted less than was asked (RFC 6749 §3.3): else only the API's 403s would show it. */
function reportNarrowedScope(settings: Settings, granted: string | undefined): void {
  if (settings.scope === undefined || settings.onEvent === undefined) return;
  const grantedScopes = granted === undefined ? [] : granted.split(" ").filter(Boolean);
  const requested = settings.scope.split(" ");
  const missing = requested.filter((scope) => !grantedScopes.includes(scope));
  if (missing.length > 0) emit(settings.onEvent, { type: "scope_narrowed", requested, granted: grantedScopes, missing });
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
