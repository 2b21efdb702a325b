/**
 * The cache rule, after golang/oauth2's reuseTokenSource and Azure's tokenCycler:
 *
 * - The token this process last fetched or read is kept in memory. While it is fresh it is
 *   returned at once, synchronously, without touching the store: a warm request costs a clock
 *   read and two comparisons, whatever store is configured.
 * - Inside the refresh margin it is still returned, and one background refresh starts. If that
 *   fails, the token keeps being served and the next attempt waits a backoff.
 * - Near expiry, or with nothing in memory, callers wait for a refresh. A refresh first looks in
 *   the store, where another process may have put a newer token, and fetches only if it finds none.
 * - At most one refresh runs at a time and every caller shares it. Its slot is cleared when it
 *   settles, either way, so a failure is never replayed to later callers; and since every store
 *   call is bounded, no store can keep the slot occupied.
 * - After a refusal that will not change by itself (a wrong secret: `invalid_client` and the
 *   like), callers get that same error without a token request for a back-off window that starts
 *   at 1 s and doubles up to 30 s while the refusals go on; while the endpoint's `Retry-After` runs,
 *   they fail fast unless a token in memory can still serve them.
 * - `invalidate()` is final: it bumps a generation, and a refresh started before it neither
 *   serves its token to later callers nor leaves it in the store.
 * - A 401 for a token we handed out drops that token (compare-and-delete) whatever its age. A
 *   token that was itself fetched because of a 401 is not dropped again by a 401 during a short
 *   cool-down: a resource that rejects every token then costs two token requests per cool-down.
 * - With a store that offers a refresh lock, one process of a fleet fetches; the others wait for
 *   what it stores, and fetch themselves only if nothing arrives in time or the store fails.
 */
import { throttledError, type AcquireLimits } from "./acquire-token.js";
import { obtainToken, type Acquisition } from "./acquisition.js";
import { monotonicNow, wallNow } from "./clock.js";
import { TokenRefreshError, TokenRequestError } from "./errors.js";
import { emit } from "./events.js";
import { CLOCK_SKEW_TOLERANCE_MS, mustRefresh, shouldRefresh } from "./expiry.js";
import { GuardedStore } from "./guarded-store.js";
import type { Settings } from "./options.js";
import { isPermanentRefusal } from "./retry.js";
import type { StoredToken } from "./store.js";

/** Options of a single token lookup. */
export interface GetTokenOptions {
  /** Stops this caller waiting; the shared refresh goes on for the others. */
  signal?: AbortSignal | undefined;
  /** Skip the cache and wait for a newly fetched token. */
  forceRefresh?: boolean | undefined;
}

/** What a 401 for one of our tokens did: see {@link TokenCache.rejected}. */
export type RejectedOutcome = "dropped" | "replaced" | "cooldown";

/** Longest wait between background refresh attempts while the old token is still valid (Azure's 30 s). */
const BACKGROUND_RETRY_MS = 30_000;
/** The back-off window after a permanent refusal: from 1 s, doubling while refusals go on, to 30 s. */
const REFUSAL_WINDOW_MS = { first: 1_000, max: 30_000 } as const;
/** How long a token fetched because of a 401 is protected from being dropped by another 401 (at most a tenth of its lifetime). */
const UNAUTHORIZED_COOLDOWN_MS = 30_000;
/** Tokens remembered as ours (to tell our Authorization from a caller's) and as rejected. */
const REMEMBERED_TOKENS = 4;

interface Refusal {
  readonly error: unknown;
  readonly until: number;
  readonly windowMs: number;
}

/** Gets one token from the endpoint within the limits: the client-credentials request and its retries. */
export type TokenFetcher = (limits: AcquireLimits) => Promise<StoredToken>;

/** Holds one client's token: the cache rule above, over the configured store. */
export class TokenCache {
  // The warm path's fields come first, so that a warm peek() reads the object's first cache line and
  // nothing else: with many clients in one process, each touch of another object is a cache miss.
  /** The window (epoch ms) in which peek() needs two comparisons only; 0 when nothing is held or after dispose(). */
  #freshUntil = 0;
  #freshFrom = 0;
  /** `#current.accessToken`, kept here so that the warm path does not read the entry. */
  #heldToken: string | undefined;
  /** The token this process serves; its one owner is this field. */
  #current: StoredToken | undefined;
  readonly #settings: Settings;
  readonly #fetchToken: TokenFetcher;
  readonly #store: GuardedStore;
  readonly #lifetime = new AbortController();
  #inflight: Promise<StoredToken> | undefined;
  #generation = 0;
  #throttledUntil = 0;
  #nextBackgroundAt = 0;
  #refusal: Refusal | undefined;
  #fetchedAny = false;
  /** Set when a 401 dropped a token: the next token fetched is under the 401 cool-down. */
  #refetchForUnauthorized = false;
  #unauthorizedRefetch: { readonly accessToken: string; readonly until: number } | undefined;
  readonly #handedOut: string[] = [];
  readonly #rejected: string[] = [];

  constructor(settings: Settings, fetchToken: TokenFetcher) {
    this.#settings = settings;
    this.#fetchToken = fetchToken;
    this.#store = new GuardedStore(settings.store, settings.cacheKey, settings.onEvent);
  }

  /** Returns a usable token: synchronously when one is held in memory and fresh, else a promise. */
  token(signal?: AbortSignal, forceRefresh?: boolean): string | Promise<string> {
    if (forceRefresh !== true) {
      const ready = this.peek();
      if (ready !== undefined) return ready;
    }
    return this.#entry(signal, forceRefresh, accessTokenOf);
  }

  /**
   * The token held in memory when it can be served at once (starting the background refresh when it
   * is due), else undefined. The warm path: one clock read and two comparisons in the common case.
   */
  peek(): string | undefined {
    const at = wallNow();
    if (at < this.#freshUntil && at >= this.#freshFrom) return this.#heldToken;
    const current = this.#current;
    if (current === undefined) return undefined;
    if (this.disposed || mustRefresh(current, at, this.#settings.expiryBufferMs)) return undefined;
    if (shouldRefresh(current, at)) this.#refreshInBackground(current);
    return current.accessToken;
  }

  /** The token with its timing (epoch ms), fetched if needed. */
  async tokenEntry(signal?: AbortSignal, forceRefresh?: boolean): Promise<StoredToken> {
    return this.#entry(signal, forceRefresh, (entry) => entry);
  }

  #entry<T>(signal: AbortSignal | undefined, forceRefresh: boolean | undefined, pick: (entry: StoredToken) => T): T | Promise<T> {
    if (this.disposed) return Promise.reject(disposedError());
    if (forceRefresh === true) {
      this.#refusal = undefined;
      return this.#wait(this.#refresh({ force: true }), signal, pick);
    }
    const current = this.#current;
    if (current !== undefined) {
      const at = wallNow();
      if (!mustRefresh(current, at, this.#settings.expiryBufferMs)) {
        if (shouldRefresh(current, at)) this.#refreshInBackground(current);
        return pick(current);
      }
    }
    return this.#blocking(current, signal, pick);
  }

  /** The token held in memory, whatever its freshness (no clock read). */
  get held(): string | undefined {
    return this.#heldToken;
  }

  /** `DPoP` when the token held is DPoP-bound. */
  get heldTokenType(): "DPoP" | undefined {
    return this.#current?.tokenType;
  }

  /** Whether `accessToken` is one this source handed out recently. */
  handedOut(accessToken: string): boolean {
    return this.#handedOut.includes(accessToken);
  }

  /** Drops the cached token, here and in the store; a refresh already under way is superseded. */
  async invalidate(): Promise<void> {
    this.#generation += 1;
    this.#inflight = undefined;
    this.#drop();
    this.#refusal = undefined;
    await this.#store.remove(monotonicNow() + this.#settings.timeoutMs);
  }

  /**
   * A resource rejected `accessToken` (compare-and-delete): `dropped` when it was the current token
   * and is gone now, so the next caller fetches; `replaced` when a newer token is already here or in
   * the store; `cooldown` (only with `cooldown` set) when it was fetched moments ago because of a
   * 401, so it is kept.
   */
  async rejected(accessToken: string, cooldown: boolean): Promise<RejectedOutcome> {
    const recent = this.#unauthorizedRefetch;
    if (cooldown && recent?.accessToken === accessToken && monotonicNow() < recent.until) return "cooldown";
    remember(this.#rejected, accessToken);
    const current = this.#current;
    if (current !== undefined && current.accessToken !== accessToken) return "replaced";
    const generation = this.#generation;
    const outcome = await this.#store.removeIfCurrent(accessToken, monotonicNow() + this.#settings.timeoutMs);
    if (this.#current !== undefined && this.#current.accessToken !== accessToken) return "replaced";
    if (outcome.kind === "replaced" && outcome.entry !== undefined && generation === this.#generation && this.#usable(outcome.entry)) {
      this.#adopt(outcome.entry);
      return "replaced";
    }
    if (this.#current?.accessToken === accessToken) this.#drop();
    this.#refetchForUnauthorized = true;
    return "dropped";
  }

  /** Ends backoff waits and aborts a token request on the wire; nothing more is stored. */
  dispose(): void {
    this.#inflight = undefined;
    this.#freshUntil = 0; // peek() then takes the slow path, which sees the disposal
    this.#lifetime.abort(disposedError());
  }

  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.#lifetime.signal.aborted;
  }

  #blocking<T>(current: StoredToken | undefined, signal: AbortSignal | undefined, pick: (entry: StoredToken) => T): T | Promise<T> {
    const at = monotonicNow();
    const refusal = this.#refusal;
    if (refusal !== undefined && at < refusal.until) return Promise.reject(refusal.error);
    if (at < this.#throttledUntil) {
      if (current !== undefined && wallNow() < current.expiresAt) return pick(current);
      return Promise.reject(throttledError(this.#throttledUntil - at));
    }
    return this.#wait(this.#refresh({ replacing: current?.accessToken }), signal, pick);
  }

  #refreshInBackground(current: StoredToken): void {
    const at = monotonicNow();
    if (this.#inflight !== undefined || at < this.#nextBackgroundAt || at < this.#throttledUntil) return;
    this.#refresh({ background: true, replacing: current.accessToken }).catch(() => {
      const lifetime = current.expiresAt - current.obtainedAt;
      this.#nextBackgroundAt = monotonicNow() + Math.min(BACKGROUND_RETRY_MS, lifetime / 10);
    });
  }

  /** Joins the refresh in flight, or starts the one refresh everybody shares. */
  #refresh(how: { background?: boolean; force?: boolean; replacing?: string | undefined }): Promise<StoredToken> {
    if (this.#inflight !== undefined) return this.#inflight;
    const background = how.background === true;
    const generation = this.#generation;
    const startedAt = monotonicNow();
    const refresh: Promise<StoredToken> = obtainToken(this.#acquisition(generation), {
      force: how.force === true,
      replacing: how.replacing ?? this.#current?.accessToken,
    })
      .then(
        ({ entry, fetched }) => {
          if (generation !== this.#generation) return entry; // superseded by invalidate(): not ours to serve
          this.#adopt(entry);
          this.#throttledUntil = 0;
          this.#nextBackgroundAt = 0;
          this.#refusal = undefined;
          if (fetched) {
            this.#fetchedAny = true;
            if (this.#refetchForUnauthorized) {
              const cooldownMs = Math.min(UNAUTHORIZED_COOLDOWN_MS, (entry.expiresAt - entry.obtainedAt) / 10);
              this.#unauthorizedRefetch = { accessToken: entry.accessToken, until: monotonicNow() + cooldownMs };
            }
            this.#refetchForUnauthorized = false;
            emit(this.#settings.onEvent, {
              type: "token_refreshed",
              durationMs: monotonicNow() - startedAt,
              expiresAt: entry.expiresAt,
              background,
            });
          }
          return entry;
        },
        (error: unknown) => {
          const failure = this.#explain(error);
          if (!background && isPermanentRefusal(failure)) {
            const windowMs =
              this.#refusal === undefined ? REFUSAL_WINDOW_MS.first : Math.min(this.#refusal.windowMs * 2, REFUSAL_WINDOW_MS.max);
            this.#refusal = { error: failure, until: monotonicNow() + windowMs, windowMs };
          }
          const code = failure instanceof TokenRefreshError ? failure.code : "ERR_TOKEN_REQUEST";
          emit(this.#settings.onEvent, { type: "refresh_failed", code, servingCachedToken: background });
          throw failure;
        },
      )
      .finally(() => {
        if (this.#inflight === refresh) this.#inflight = undefined;
      });
    // Every waiter has its own chain; this one only keeps a refresh nobody awaits from going unhandled.
    refresh.catch(() => {});
    this.#inflight = refresh;
    return refresh;
  }

  #drop(): void {
    this.#current = undefined;
    this.#heldToken = undefined;
    this.#freshUntil = 0;
  }

  #adopt(entry: StoredToken): void {
    this.#current = entry;
    this.#heldToken = entry.accessToken;
    // The window in which peek() needs no more than two comparisons: neither rule applies inside it.
    const hardDeadline = entry.expiresAt - Math.min(this.#settings.expiryBufferMs, (entry.expiresAt - entry.obtainedAt) / 10);
    this.#freshUntil = Math.min(entry.refreshAt, hardDeadline);
    this.#freshFrom = entry.obtainedAt - CLOCK_SKEW_TOLERANCE_MS;
    remember(this.#handedOut, entry.accessToken);
  }

  /** Whether an entry from the store can be served: not one a resource rejected, and not near expiry. */
  #usable(entry: StoredToken): boolean {
    return !this.#rejected.includes(entry.accessToken) && !mustRefresh(entry, wallNow(), this.#settings.expiryBufferMs);
  }

  /** What one acquisition needs from the cache; `generation` tells it whether invalidate() ran meanwhile. */
  #acquisition(generation: number): Acquisition {
    return {
      settings: this.#settings,
      store: this.#store,
      fetchToken: this.#fetchToken,
      lifetime: this.#lifetime.signal,
      superseded: () => generation !== this.#generation || this.disposed,
      invalidated: () => generation !== this.#generation,
      usable: (entry) => this.#usable(entry),
      onRetryAfter: (retryAfterMs) => this.#throttle(retryAfterMs),
      onSharedThrottle: (untilMonotonic) => {
        this.#throttledUntil = Math.max(this.#throttledUntil, untilMonotonic);
      },
    };
  }

  #throttle(retryAfterMs: number): void {
    this.#throttledUntil = Math.max(this.#throttledUntil, monotonicNow() + retryAfterMs);
    this.#store.shareThrottle(wallNow() + retryAfterMs);
    emit(this.#settings.onEvent, { type: "throttled", retryAfterMs });
  }

  /** Adds what only the source knows to an endpoint's refusal: a fixed assertion that was already used. */
  #explain(error: unknown): unknown {
    if (
      error instanceof TokenRequestError &&
      error.error === "invalid_client" &&
      this.#fetchedAny &&
      this.#settings.credential.kind === "assertion" &&
      this.#settings.credential.fixed
    ) {
      return new TokenRequestError(
        `${error.message} (the fixed "clientAssertion" string already served a token, and this server refuses an assertion it has seen: pass a function that returns a fresh assertion)`,
        error.code,
        error,
      );
    }
    return error;
  }

  /** Waits for the shared refresh, or until this caller's signal aborts. */
  #wait<T>(refresh: Promise<StoredToken>, signal: AbortSignal | undefined, pick: (entry: StoredToken) => T): Promise<T> {
    const generation = this.#generation;
    // A refresh superseded by invalidate() while this caller waited is not served: the caller waits for the next one.
    const token = refresh.then((entry) => (generation === this.#generation ? entry : this.#retryAfterInvalidate(signal))).then(pick);
    if (signal === undefined || typeof signal.addEventListener !== "function") return token;
    if (signal.aborted) return Promise.reject(abortedError(signal.reason));
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(abortedError(signal.reason));
      signal.addEventListener("abort", onAbort, { once: true });
      token.then(
        (value) => {
          signal.removeEventListener("abort", onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(error);
        },
      );
    });
  }

  #retryAfterInvalidate(signal: AbortSignal | undefined): Promise<StoredToken> {
    const generation = this.#generation;
    return this.#refresh({}).then(
      (entry) => {
        if (generation !== this.#generation)
          throw new TokenRefreshError("the token was invalidated again while it was being fetched", "ERR_TOKEN_ABORTED");
        return entry;
      },
      (error: unknown) => {
        throw signal?.aborted === true ? abortedError(signal.reason) : error;
      },
    );
  }
}

const accessTokenOf = (entry: StoredToken): string => entry.accessToken;

function remember(list: string[], accessToken: string): void {
  if (list[0] === accessToken) return;
  const at = list.indexOf(accessToken);
  if (at !== -1) list.splice(at, 1);
  list.unshift(accessToken);
  if (list.length > REMEMBERED_TOKENS) list.pop();
}

/** The error every call gets after `dispose()`. */
export function disposedError(): TokenRefreshError {
  return new TokenRefreshError("the token refresh interceptor was disposed", "ERR_DISPOSED");
}

function abortedError(reason: unknown): TokenRefreshError {
  return new TokenRefreshError("stopped waiting for a token: the caller's signal aborted", "ERR_TOKEN_ABORTED", { cause: reason });
}
