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
      /** A new token was fetched from the token endpoint (not one read from a shared store). */
      readonly type: "token_refreshed";
      /** How long the acquisition took, retries included, in ms. */
      readonly durationMs: number;
      /** When the new token expires (epoch ms). */
      readonly expiresAt: number;
      /** True for a background refresh that no request waited for; false when requests waited for it. */
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
      /** Which store operation failed (`lock`: the refresh lock; `throttle`: the shared `Retry-After`). */
      readonly operation: StoreOperation;
      /** What went wrong: it threw or rejected, did not settle in time, or returned an entry that is malformed or another key's. */
      readonly reason: StoreFailureReason;
    }
  | {
      /**
       * The token endpoint granted less scope than requested (RFC 6749 §3.3); sent once per token, when
       * it is fetched. Calls that need a missing scope will get 403 from the API.
       */
      readonly type: "scope_narrowed";
      /** The scopes requested (`scope`). */
      readonly requested: readonly string[];
      /** The scopes granted, as the token response's `scope` states them. */
      readonly granted: readonly string[];
      /** The requested scopes not granted. */
      readonly missing: readonly string[];
    }
  | {
      /** A resource answered a replay status (401) and the request was replayed once with a new token. */
      readonly type: "unauthorized_replayed";
      /** The status that caused the replay. */
      readonly status: number;
      /** Whether the rejected token was dropped from the store (false: a newer token was already there). */
      readonly invalidated: boolean;
    }
  | {
      /** A resource answered a replay status for our token, and the request was not replayed: the caller gets that response. */
      readonly type: "unauthorized_not_replayed";
      /** The status the resource answered. */
      readonly status: number;
      /** Why not: see {@link NotReplayedReason}. */
      readonly reason: NotReplayedReason;
    };

/** A store operation, as reported in `store_failed`. */
export type StoreOperation = "get" | "set" | "delete" | "lock" | "throttle";

/** Why a store call counted as failed. */
export type StoreFailureReason = "error" | "timeout" | "malformed" | "wrong_key";

/**
 * Why a 401 was handed to the caller instead of replayed:
 * - `already_replayed`: the request was itself the replay;
 * - `cooldown`: the token was fetched moments ago because of a 401, so a new one would not help
 *   (a resource that rejects for another reason, such as a wrong audience);
 * - `no_replay`: the request asked for none (`tokenRefresh.noReplay`);
 * - `body_not_replayable`: its body was a stream, consumed by the first attempt;
 * - `disposed`: the interceptor was disposed;
 * - `dpop_nonce`: a DPoP resource asked for its nonce (`use_dpop_nonce`) again after the one retry
 *   with it, or without a nonce the proof did not already carry (the token is kept).
 */
export type NotReplayedReason = "already_replayed" | "cooldown" | "no_replay" | "body_not_replayable" | "disposed" | "dpop_nonce";

/** Calls the user's listener without letting it break a request. */
export function emit(listener: ((event: TokenEvent) => void) | undefined, event: TokenEvent): void {
  if (listener === undefined) return;
  try {
    listener(event);
  } catch {
    // A throwing listener must not turn a working request into a failed one.
  }
}
