/**
 * The user's store, as the token source sees it: every call bounded in time, every answer
 * checked, every failure reported as an event and turned into "no answer". A store can be slow,
 * hang, throw, lie or hand back another key's entry; none of that may hang, fail or mislead a
 * request: the source then goes on with the token it holds in memory, or fetches one.
 */
import { monotonicNow } from "./clock.js";
import { emit, type StoreFailureReason, type StoreOperation, type TokenEvent } from "./events.js";
import { unrefTimer } from "./retry.js";
import { isStoredToken, type StoredToken, type TokenStore } from "./store.js";

/** Longest wait for one store call; a call never runs past the token budget either. */
export const STORE_CALL_TIMEOUT_MS = 1_000;

/** What a store call gave back: its value, or nothing because it failed, timed out or was unusable. */
const FAILED: unique symbol = Symbol("store call failed");
const TIMED_OUT: unique symbol = Symbol("store call timed out");
type Outcome<T> = T | typeof FAILED;

/** The outcome of compare-and-delete for a token a resource rejected. */
export type RejectOutcome =
  | { readonly kind: "deleted" }
  | { readonly kind: "replaced"; readonly entry: StoredToken | undefined }
  | { readonly kind: "failed" };

/** One try at the refresh lock. */
export type LockAttempt = { readonly kind: "acquired"; readonly lockId: string } | { readonly kind: "held" } | { readonly kind: "failed" };

/** The store of one cache key, with bounds, validation and events. */
export class GuardedStore {
  readonly #store: TokenStore;
  readonly #key: string;
  readonly #onEvent: ((event: TokenEvent) => void) | undefined;

  constructor(store: TokenStore, key: string, onEvent: ((event: TokenEvent) => void) | undefined) {
    this.#store = store;
    this.#key = key;
    this.#onEvent = onEvent;
  }

  /** Whether the store offers the cross-process refresh lock. */
  get locks(): boolean {
    return typeof this.#store.acquireRefreshLock === "function" && typeof this.#store.releaseRefreshLock === "function";
  }

  /**
   * The entry stored under our key (undefined for a miss, a malformed or a foreign entry), and
   * whether the store failed, so the caller can go on without it for the rest of its work.
   */
  async read(deadline: number): Promise<{ readonly entry: StoredToken | undefined; readonly failed: boolean }> {
    const value = await this.#call("get", deadline, () => this.#store.get(this.#key));
    return value === FAILED ? { entry: undefined, failed: true } : { entry: this.#check(value), failed: false };
  }

  /** Stores `entry`: `written`, `kept-newer` (the store holds a newer entry and kept it), or `failed`. */
  async write(entry: StoredToken, deadline: number): Promise<"written" | "kept-newer" | "failed"> {
    const result = await this.#call("set", deadline, () => this.#store.set(this.#key, entry));
    return result === FAILED ? "failed" : result === false ? "kept-newer" : "written";
  }

  /** Removes whatever is stored under our key. */
  async remove(deadline: number): Promise<void> {
    await this.#call("delete", deadline, () => this.#store.delete(this.#key));
  }

  /**
   * Compare-and-delete: removes the entry only while it still holds `accessToken`, atomically when
   * the store can, else by reading first. `replaced` carries the newer entry another process stored.
   */
  async removeIfCurrent(accessToken: string, deadline: number): Promise<RejectOutcome> {
    const store = this.#store;
    if (typeof store.deleteIfCurrent === "function") {
      const deleted = await this.#call("delete", deadline, () => store.deleteIfCurrent?.(this.#key, accessToken));
      if (deleted === FAILED) return { kind: "failed" };
      if (deleted === true) return { kind: "deleted" };
      return { kind: "replaced", entry: (await this.read(deadline)).entry };
    }
    const value = await this.#call("get", deadline, () => store.get(this.#key));
    if (value === FAILED) return { kind: "failed" };
    const entry = this.#check(value);
    if (entry?.accessToken !== accessToken) return { kind: "replaced", entry };
    await this.remove(deadline);
    return { kind: "deleted" };
  }

  /** Tries the refresh lock once: acquired (with its id), held by another process, or failed. */
  async acquireLock(ttlMs: number, deadline: number): Promise<LockAttempt> {
    const lockId = await this.#call("lock", deadline, () => this.#store.acquireRefreshLock?.(this.#key, ttlMs));
    if (lockId === FAILED) return { kind: "failed" };
    return typeof lockId === "string" ? { kind: "acquired", lockId } : { kind: "held" };
  }

  /** Releases the lock, without making anyone wait for it. */
  releaseLock(lockId: string): void {
    void this.#call("lock", monotonicNow() + STORE_CALL_TIMEOUT_MS, () => this.#store.releaseRefreshLock?.(this.#key, lockId));
  }

  /** The epoch ms until which another process was told to wait (`Retry-After`), if the store shares that. */
  async throttledUntil(deadline: number): Promise<number | undefined> {
    const store = this.#store;
    if (typeof store.getThrottle !== "function") return undefined;
    const until = await this.#call("throttle", deadline, () => store.getThrottle?.(this.#key));
    return typeof until === "number" && Number.isFinite(until) ? until : undefined;
  }

  /** Shares a `Retry-After` with the fleet, without making anyone wait for it. */
  shareThrottle(untilMs: number): void {
    const store = this.#store;
    if (typeof store.setThrottle !== "function") return;
    void this.#call("throttle", monotonicNow() + STORE_CALL_TIMEOUT_MS, () => store.setThrottle?.(this.#key, untilMs));
  }

  #check(value: unknown): StoredToken | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isStoredToken(value)) {
      this.#failed("get", "malformed");
      return undefined;
    }
    if (value.cacheKey !== this.#key) {
      this.#failed("get", "wrong_key");
      return undefined;
    }
    return value;
  }

  /** Runs one store call within min(STORE_CALL_TIMEOUT_MS, what is left before `deadline`). */
  async #call<T>(operation: StoreOperation, deadline: number, run: () => T | PromiseLike<T>): Promise<Outcome<Awaited<T>>> {
    let pending: T | PromiseLike<T>;
    try {
      pending = run();
    } catch {
      this.#failed(operation, "error");
      return FAILED;
    }
    if (!isThenable(pending)) return pending as Awaited<T>;
    const limitMs = Math.max(0, Math.min(STORE_CALL_TIMEOUT_MS, deadline - monotonicNow()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), limitMs);
      unrefTimer(timer);
    });
    const settled = Promise.resolve(pending).then(
      (value) => value as Awaited<T>,
      (): typeof FAILED => {
        this.#failed(operation, "error");
        return FAILED;
      },
    );
    try {
      let result = await Promise.race([settled, timedOut]);
      // On a loaded machine the timer and the answer can come due in the same turn: look once more.
      if (result === TIMED_OUT) result = await Promise.race([settled, nextTurn().then((): typeof TIMED_OUT => TIMED_OUT)]);
      if (result !== TIMED_OUT) return result;
      // A call that never settles is a failure too; whatever it does later, nobody waits for it.
      this.#failed(operation, "timeout");
      return FAILED;
    } finally {
      clearTimeout(timer);
    }
  }

  #failed(operation: StoreOperation, reason: StoreFailureReason): void {
    emit(this.#onEvent, { type: "store_failed", operation, reason });
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as { then?: unknown }).then === "function"
  );
}
