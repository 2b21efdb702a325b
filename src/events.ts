/**
 * Typed events for logging and metrics. Payloads carry timings and error codes,
 * never a token, a secret or a request body.
 */
import type { TokenRefreshErrorCode } from "./errors.js";

/** Everything `onEvent` can receive, discriminated by `type`. */
export type TokenEvent =
  | {
      /** A new token was written to the store. */
      readonly type: "token_cached";
      /** When it expires (epoch ms). */
      readonly expiresAt: number;
      /** When its background refresh is due (epoch ms). */
      readonly refreshAt: number;
    }
  | {
      /** A new token was fetched and stored. */
      readonly type: "token_refreshed";
      /** How long the acquisition took, retries included, in ms. */
      readonly durationMs: number;
      /** When the new token expires (epoch ms). */
      readonly expiresAt: number;
      /** Whether a request was waiting for it (false: a background refresh). */
      readonly background: boolean;
    }
  | {
      /** Getting a token failed. */
      readonly type: "refresh_failed";
      /** The error's stable code. */
      readonly code: TokenRefreshErrorCode;
      /** Whether the cached token is still being served (a background refresh failed). */
      readonly servingCachedToken: boolean;
    }
  | {
      /** A token-endpoint attempt failed transiently and will be retried. */
      readonly type: "request_retried";
      /** The attempt that failed, from 1. */
      readonly attempt: number;
      /** The wait before the next attempt, in ms. */
      readonly delayMs: number;
      /** The failure's stable code. */
      readonly code: TokenRefreshErrorCode;
    }
  | {
      /** The token endpoint asked us to wait (`Retry-After`); calls fail fast until then unless a cached token serves them. */
      readonly type: "throttled";
      /** How long, in ms. */
      readonly retryAfterMs: number;
    }
  | {
      /** The token store failed; the request went on with the token held in memory, or fetched one. */
      readonly type: "store_failed";
      /** Which store operation failed (`lock`: acquiring or releasing the refresh lock). */
      readonly operation: "get" | "set" | "delete" | "lock";
    }
  | {
      /** A resource answered a replay status (401) and the request was replayed once with a new token. */
      readonly type: "unauthorized_replayed";
      /** The status that caused the replay. */
      readonly status: number;
      /** Whether the rejected token was dropped from the store (false: a newer token was already there). */
      readonly invalidated: boolean;
    };

/** Calls the user's listener without letting it break a request. */
export function emit(listener: ((event: TokenEvent) => void) | undefined, event: TokenEvent): void {
  if (listener === undefined) return;
  try {
    listener(event);
  } catch {
    // A throwing listener must not turn a working request into a failed one.
  }
}
