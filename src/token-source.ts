/**
 * The cache rule, after golang/oauth2's reuseTokenSource and Azure's tokenCycler:
 *
 * - A fresh cached token is returned at once; a request costs a store lookup and two comparisons.
 * - Inside the refresh margin the cached token is still returned, and one background refresh starts.
 *   If it fails, the cached token keeps being served and the next attempt waits a backoff (SF-3, ERR-4).
 * - Past the hard buffer, or with nothing cached, callers wait for a refresh.
 * - At most one refresh runs at a time; every caller shares it (SF-1). Its slot is cleared when it
 *   settles, either way, so a failure is never replayed to later callers (SF-2).
 * - `invalidate()` bumps a generation: a refresh started before it never writes to the store (SF-4).
 * - A caller's AbortSignal only stops that caller waiting; the shared refresh goes on (SF-5).
 * - While the endpoint's `Retry-After` runs, callers fail fast unless a cached token can serve them.
 * - With a store that offers a refresh lock, one process of a fleet fetches; the others wait for what
 *   it stores, and fetch themselves only if nothing arrives in time or the store fails.
 */
import type { AxiosInstance } from "axios";
import { requestToken } from "./client-credentials.js";
import { TokenRefreshError, TokenRequestError } from "./errors.js";
import { emit } from "./events.js";
import { freshness, now, resolveToken } from "./expiry.js";
import type { Settings } from "./options.js";
import { backoffDelay, isTransient, sleep, unrefTimer } from "./retry.js";
import { isStoredToken, type StoredToken } from "./store.js";

/** Options of a single token lookup. */
export interface GetTokenOptions {
  /** Stops this caller waiting; the shared refresh goes on for the others. */
  signal?: AbortSignal | undefined;
  /** Skip the cache and wait for a newly fetched token. */
  forceRefresh?: boolean | undefined;
}

const BACKGROUND_RETRY_MS = 30_000; // Azure Java design: 30 s between attempts while the old token is valid
const noop = (): void => {};

/** Holds one client's token: the cache rule above, over the configured store. */
export class TokenSource {
  readonly #settings: Settings;
  readonly #client: AxiosInstance;
  readonly #lifetime = new AbortController();
  #inflight: Promise<string> | undefined;
  #generation = 0;
  #throttledUntil = 0;
  #nextBackgroundAt = 0;
  #lastValid: StoredToken | undefined;
  /** The last few tokens this source handed out, to tell our Authorization from a caller's on a 401. */
  readonly #handedOut: string[] = [];
  /** The newest token we fetched, used only when the store itself fails (CACHE-4). */
  #fallback: StoredToken | undefined;

  constructor(settings: Settings, client: AxiosInstance) {
    this.#settings = settings;
    this.#client = client;
  }

  /** Returns a usable token: synchronously when the store answered synchronously with one, else a promise. */
  token(signal?: AbortSignal, forceRefresh?: boolean): string | Promise<string> {
    if (this.#lifetime.signal.aborted) return Promise.reject(disposedError());
    if (forceRefresh === true) return this.#wait(this.#refresh(false, this.#fallback), signal);
    const entry = this.#read();
    if (entry instanceof Promise) return entry.then((value) => this.#serve(value, signal));
    return this.#serve(entry, signal);
  }

  /** Whether `accessToken` is one this source handed out recently (the current one or up to three before it). */
  handedOut(accessToken: string): boolean {
    return this.#handedOut.includes(accessToken);
  }

  #remember(accessToken: string): void {
    if (this.#handedOut[0] === accessToken) return;
    this.#handedOut.unshift(accessToken);
    if (this.#handedOut.length > 4) this.#handedOut.pop();
  }

  /**
   * Drops the cached token. With `rejected`, only if the store still holds that token
   * (compare-and-delete), so a late 401 cannot evict a newer token (SF-8). Returns what happened:
   * `dropped`; `replaced` (the store holds another token, or none); or `too-fresh` when the rejected
   * token is younger than `minAgeMs`, so a resource that answers 401 for other reasons cannot make
   * every request fetch a token (401-4).
   */
  async invalidate(rejected?: string, minAgeMs = 0): Promise<"dropped" | "replaced" | "too-fresh"> {
    if (rejected === undefined) {
      this.#generation += 1;
      this.#inflight = undefined;
      this.#fallback = undefined;
      await this.#delete();
      return "dropped";
    }
    const entry = await this.#read();
    if (entry?.accessToken !== rejected) {
      if (this.#fallback?.accessToken === rejected) this.#fallback = undefined;
      return "replaced";
    }
    const cooldown = Math.min(minAgeMs, (entry.expiresAt - entry.obtainedAt) / 10);
    if (now() - entry.obtainedAt < cooldown) return "too-fresh";
    if (this.#fallback?.accessToken === rejected) this.#fallback = undefined;
    await this.#delete();
    return "dropped";
  }

  /** Stops backoff waits and timers; a request already on the wire may finish, but nothing more is stored. */
  dispose(): void {
    this.#inflight = undefined;
    this.#lifetime.abort(disposedError());
  }

  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.#lifetime.signal.aborted;
  }

  #serve(entry: StoredToken | undefined, signal: AbortSignal | undefined): string | Promise<string> {
    const at = now();
    if (entry !== undefined) {
      const state = freshness(entry, at, this.#settings.expiryBufferMs);
      if (state === "fresh") return entry.accessToken;
      if (state === "refresh-due") {
        this.#refreshInBackground(at, entry);
        return entry.accessToken;
      }
    }
    if (at < this.#throttledUntil) {
      if (entry !== undefined && at < entry.expiresAt) return entry.accessToken;
      return Promise.reject(throttledError(this.#throttledUntil - at));
    }
    return this.#wait(this.#refresh(false, entry), signal);
  }

  #refreshInBackground(at: number, entry: StoredToken): void {
    if (this.#inflight !== undefined || at < this.#nextBackgroundAt || at < this.#throttledUntil) return;
    this.#refresh(true, entry).catch(() => {
      const lifetime = entry.expiresAt - entry.obtainedAt;
      this.#nextBackgroundAt = now() + Math.min(BACKGROUND_RETRY_MS, lifetime / 10);
    });
  }

  /** Joins the refresh in flight, or starts the one refresh everybody shares; `replacing` is the token it supersedes. */
  #refresh(background: boolean, replacing: StoredToken | undefined): Promise<string> {
    if (this.#inflight !== undefined) return this.#inflight;
    const generation = this.#generation;
    const startedAt = now();
    const refresh: Promise<string> = this.#acquire(generation, replacing?.accessToken)
      .then(
        (entry) => {
          this.#remember(entry.accessToken);
          this.#throttledUntil = 0;
          this.#nextBackgroundAt = 0;
          emit(this.#settings.onEvent, {
            type: "token_refreshed",
            durationMs: now() - startedAt,
            expiresAt: entry.expiresAt,
            background,
          });
          return entry.accessToken;
        },
        (error: unknown) => {
          const code = error instanceof TokenRefreshError ? error.code : "ERR_TOKEN_REQUEST";
          emit(this.#settings.onEvent, { type: "refresh_failed", code, servingCachedToken: background });
          throw error;
        },
      )
      .finally(() => {
        if (this.#inflight === refresh) this.#inflight = undefined;
      });
    refresh.catch(noop); // every waiter has its own chain; this one only keeps a refresh nobody awaits from going unhandled (SF-7)
    this.#inflight = refresh;
    return refresh;
  }

  /** Gets a new token within the time budget and stores it, unless an invalidation or dispose superseded it. */
  async #acquire(generation: number, replacing: string | undefined): Promise<StoredToken> {
    const { timeoutMs } = this.#settings;
    const deadline = now() + timeoutMs;
    const budget = new AbortController();
    const timer = setTimeout(() => budget.abort(timeoutError(timeoutMs)), timeoutMs);
    unrefTimer(timer);
    // Waits end on dispose too; a request already on the wire is left to finish.
    const waits = AbortSignal.any([budget.signal, this.#lifetime.signal]);
    const fetchAndStore = async (): Promise<StoredToken> => {
      const entry = await this.#fetch(deadline, budget.signal, waits);
      if (generation === this.#generation && !this.disposed) await this.#write(entry);
      return entry;
    };
    try {
      const shared = await this.#underSharedLock(deadline, waits, replacing, fetchAndStore);
      return shared ?? (await fetchAndStore());
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * With a store that offers a refresh lock: fetch while holding it, or wait for the holder's token.
   * Returns undefined when there is no lock, the store fails, or nothing arrived in time: the caller
   * then fetches by itself rather than hang.
   */
  async #underSharedLock(
    deadline: number,
    waits: AbortSignal,
    replacing: string | undefined,
    fetchAndStore: () => Promise<StoredToken>,
  ): Promise<StoredToken | undefined> {
    const { store, cacheKey, timeoutMs, expiryBufferMs } = this.#settings;
    if (typeof store.acquireRefreshLock !== "function" || typeof store.releaseRefreshLock !== "function") return undefined;
    // Keep part of the budget for fetching ourselves if the holder never delivers.
    const waitUntil = deadline - Math.min(timeoutMs / 4, 2_000);
    const arrived = async (): Promise<StoredToken | undefined> => {
      const entry = await this.#read();
      return entry !== undefined && entry.accessToken !== replacing && freshness(entry, now(), expiryBufferMs) !== "expired"
        ? entry
        : undefined;
    };
    for (let delayMs = 25; now() < waitUntil; delayMs = Math.min(delayMs * 2, 250)) {
      let lockId: string | undefined;
      try {
        // A dead holder's lock frees halfway through our wait, so we are still here to take over.
        lockId = await store.acquireRefreshLock(cacheKey, Math.max(1, Math.floor((waitUntil - now()) / 2)));
      } catch {
        this.#storeFailed("lock");
        return undefined;
      }
      if (typeof lockId === "string") {
        const held = lockId;
        try {
          // Another process may have stored a token between our read and our lock.
          return (await arrived()) ?? (await fetchAndStore());
        } finally {
          await Promise.resolve()
            .then(() => store.releaseRefreshLock?.(cacheKey, held))
            .catch(() => this.#storeFailed("lock"));
        }
      }
      const entry = await arrived();
      if (entry !== undefined) return entry;
      // Jittered, so a fleet of waiters does not poll in step.
      await sleep(Math.min(delayMs * (0.5 + Math.random() / 2), Math.max(0, waitUntil - now())), waits);
    }
    return undefined;
  }

  /** One token from the endpoint, retrying transient failures within the budget (ERR-2, ERR-3). */
  async #fetch(deadline: number, budget: AbortSignal, waits: AbortSignal): Promise<StoredToken> {
    const { retry } = this.#settings;
    for (let attempt = 1; ; attempt += 1) {
      if (this.disposed) throw disposedError();
      const sentAt = now();
      let failure: unknown;
      try {
        const response = await requestToken(this.#client, this.#settings, { timeoutMs: deadline - sentAt, signal: budget });
        return resolveToken(
          { accessToken: response.access_token, expiresIn: response.expires_in, refreshIn: response.refresh_in, cacheKey: this.#settings.cacheKey },
          sentAt,
          this.#settings,
        );
      } catch (error) {
        failure = budget.aborted ? (budget.reason as unknown) : error;
      }
      const retryAfterMs =
        failure instanceof TokenRequestError && failure.retryAfterMs !== undefined
          ? Math.min(failure.retryAfterMs, retry.maxRetryAfterMs)
          : undefined;
      if (retryAfterMs !== undefined) this.#throttle(retryAfterMs);
      if (attempt >= retry.attempts || !isTransient(failure) || this.disposed) throw failure;
      const delayMs = retryAfterMs ?? backoffDelay(attempt, retry.baseDelayMs, retry.maxDelayMs);
      if (now() + delayMs >= deadline) {
        throw retryAfterMs === undefined ? failure : throttledError(retryAfterMs, failure as TokenRequestError);
      }
      emit(this.#settings.onEvent, { type: "request_retried", attempt, delayMs, code: (failure as TokenRequestError).code });
      await sleep(delayMs, waits);
    }
  }

  #throttle(retryAfterMs: number): void {
    this.#throttledUntil = Math.max(this.#throttledUntil, now() + retryAfterMs);
    emit(this.#settings.onEvent, { type: "throttled", retryAfterMs });
  }

  /** Waits for the shared refresh, or until this caller's signal aborts. */
  #wait(refresh: Promise<string>, signal: AbortSignal | undefined): Promise<string> {
    if (signal === undefined || typeof signal.addEventListener !== "function") return refresh;
    if (signal.aborted) return Promise.reject(abortedError(signal.reason));
    return new Promise<string>((resolve, reject) => {
      const onAbort = (): void => reject(abortedError(signal.reason));
      signal.addEventListener("abort", onAbort, { once: true });
      refresh.then(
        (token) => {
          signal.removeEventListener("abort", onAbort);
          resolve(token);
        },
        (error: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(error);
        },
      );
    });
  }

  /** Reads the store; a throw, a rejection or a malformed entry is a miss (CACHE-4). */
  #read(): StoredToken | undefined | Promise<StoredToken | undefined> {
    const { store, cacheKey } = this.#settings;
    let value: unknown;
    try {
      value = store.get(cacheKey);
    } catch {
      this.#storeFailed("get");
      return this.#fallback;
    }
    if (value === this.#lastValid) return value as StoredToken;
    if (isThenable(value)) {
      return Promise.resolve(value).then(
        (resolved) => this.#validate(resolved),
        () => {
          this.#storeFailed("get");
          return this.#fallback;
        },
      );
    }
    return this.#validate(value);
  }

  #validate(value: unknown): StoredToken | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isStoredToken(value)) return undefined;
    this.#lastValid = value;
    this.#remember(value.accessToken);
    return value;
  }

  async #write(entry: StoredToken): Promise<void> {
    this.#fallback = entry;
    try {
      await this.#settings.store.set(this.#settings.cacheKey, entry);
    } catch {
      // The token still reaches its callers; the fallback serves it while the store is down.
      this.#storeFailed("set");
    }
    emit(this.#settings.onEvent, { type: "token_cached", expiresAt: entry.expiresAt, refreshAt: entry.refreshAt });
  }

  async #delete(): Promise<void> {
    this.#lastValid = undefined;
    try {
      await this.#settings.store.delete(this.#settings.cacheKey);
    } catch {
      // A store that cannot delete will be overwritten by the next refresh.
      this.#storeFailed("delete");
    }
  }

  #storeFailed(operation: "get" | "set" | "delete" | "lock"): void {
    emit(this.#settings.onEvent, { type: "store_failed", operation });
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" && typeof (value as { then?: unknown }).then === "function";
}

/** The error every call gets after `dispose()`. */
export function disposedError(): TokenRefreshError {
  return new TokenRefreshError("the token refresh interceptor was disposed", "ERR_DISPOSED");
}

function timeoutError(timeoutMs: number): TokenRequestError {
  return new TokenRequestError(`no token within the ${timeoutMs} ms budget ("timeoutMs")`, "ERR_TOKEN_TIMEOUT");
}

function abortedError(reason: unknown): TokenRefreshError {
  return new TokenRefreshError("stopped waiting for a token: the caller's signal aborted", "ERR_TOKEN_ABORTED", { cause: reason });
}

function throttledError(retryAfterMs: number, from?: TokenRequestError): TokenRequestError {
  const seconds = Math.ceil(retryAfterMs / 1000);
  return new TokenRequestError(`token endpoint is throttling requests; try again in ${seconds} s`, "ERR_TOKEN_THROTTLED", {
    status: from?.status,
    error: from?.error,
    errorDescription: from?.errorDescription,
    errorUri: from?.errorUri,
    retryAfterMs,
  });
}
