/**
 * Where tokens live between requests. The contract is small and may be sync or async
 * (p-memoize's CacheStorage), so a Map, Redis or a database can back it.
 */

/** A cached access token with its timing; times are epoch milliseconds. */
export interface StoredToken {
  /** The access token, sent as `Authorization: Bearer <accessToken>`. */
  readonly accessToken: string;
  /** When the token stops being valid, measured from when its request was sent. */
  readonly expiresAt: number;
  /** From when a background refresh starts (refresh margin, jitter and `refresh_in` applied). */
  readonly refreshAt: number;
  /** When the request that got this token was sent. */
  readonly obtainedAt: number;
  /**
   * The cache key the entry was stored under. A store that answers one key with another key's
   * entry (a shared map keyed wrongly, an adapter bug) would otherwise send one client's token
   * for another; an entry whose `cacheKey` is not the key asked for is a miss. Stores must keep it.
   */
  readonly cacheKey: string;
  /** The scope granted with the token (the requested one when the server did not say); stores should keep it. */
  readonly scope?: string;
  /** `DPoP` for a token bound to a DPoP key (sent as `Authorization: DPoP`); absent for Bearer. Stores must keep it. */
  readonly tokenType?: "DPoP";
}

/**
 * Pluggable token storage; every method may return a value or a promise. A store that throws or
 * returns something that is not a {@link StoredToken} is treated as a miss, never as a failure.
 * Stored tokens are bearer credentials: a shared store needs access control (RFC 6749 §10.3).
 */
export interface TokenStore {
  /** Returns the token stored under `key`, or `undefined`. */
  get(key: string): StoredToken | undefined | Promise<StoredToken | undefined>;
  /**
   * Stores `token` under `key`. A shared store may refuse to replace a newer entry (one obtained
   * later, by another process) and say so by returning `false`: the library then reads the store and
   * serves the newer token, so a process that was paused mid-fetch does not keep an older one.
   */
  set(key: string, token: StoredToken): void | boolean | Promise<void | boolean>;
  /** Removes what is stored under `key`. */
  delete(key: string): void | Promise<void>;
  /**
   * Optional cross-process refresh lock, so one process of a fleet fetches while the others wait for
   * the stored result. Returns a lock id when acquired, `undefined` when another holder has it. The
   * lock must expire by itself after `ttlMs`, so a holder that dies cannot block the others.
   */
  acquireRefreshLock?(key: string, ttlMs: number): string | undefined | Promise<string | undefined>;
  /** Releases the lock only if `lockId` still holds it (compare-and-delete). */
  releaseRefreshLock?(key: string, lockId: string): void | Promise<void>;
  /**
   * Optional atomic compare-and-delete: removes the entry under `key` only if it still holds
   * `accessToken`, and returns whether it did. Without it the library reads, compares and deletes,
   * which across processes can drop a token another process stored in between.
   */
  deleteIfCurrent?(key: string, accessToken: string): boolean | Promise<boolean>;
  /**
   * Optional, for fleets: records that the token endpoint asked clients to wait until `untilMs`
   * (epoch ms, from `Retry-After`), so other processes wait too instead of each earning its own 429.
   */
  setThrottle?(key: string, untilMs: number): void | Promise<void>;
  /** Returns the epoch ms until which the token endpoint asked to wait (see `setThrottle`), or `undefined`. */
  getThrottle?(key: string): number | undefined | Promise<number | undefined>;
}

/** Options of {@link InMemoryTokenStore}. */
export interface InMemoryTokenStoreOptions {
  /**
   * Most keys kept; the least recently used goes first.
   * @default 1000
   */
  maxEntries?: number;
}

/** The default store: a bounded, least-recently-used map that drops expired entries. */
export class InMemoryTokenStore implements TokenStore {
  readonly #entries = new Map<string, StoredToken>();
  readonly #maxEntries: number;
  #recentKey: string | undefined;

  constructor(options: InMemoryTokenStoreOptions = {}) {
    const maxEntries = options.maxEntries ?? 1000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError('"maxEntries" must be a positive integer');
    }
    this.#maxEntries = maxEntries;
  }

  /** Number of entries held, expired ones included until they are read or evicted. */
  get size(): number {
    return this.#entries.size;
  }

  /** Returns the unexpired token under `key` and marks it most recently used. */
  get(key: string): StoredToken | undefined {
    const token = this.#entries.get(key);
    if (token === undefined) return undefined;
    if (token.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    // Map keeps insertion order, so re-inserting marks recency; skip it for the hot key.
    if (key !== this.#recentKey) {
      this.#entries.delete(key);
      this.#entries.set(key, token);
      this.#recentKey = key;
    }
    return token;
  }

  /** Stores `token` under `key`, evicting the least recently used key when full. */
  set(key: string, token: StoredToken): void {
    this.#entries.delete(key);
    this.#entries.set(key, token);
    this.#recentKey = key;
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** Removes the token under `key`. */
  delete(key: string): void {
    this.#entries.delete(key);
    if (key === this.#recentKey) this.#recentKey = undefined;
  }

  /** Removes every token. */
  clear(): void {
    this.#entries.clear();
    this.#recentKey = undefined;
  }
}

/** Returns true for a well-formed entry; anything else read from a store counts as a miss. */
export function isStoredToken(value: unknown): value is StoredToken {
  if (value === null || typeof value !== "object") return false;
  const token = value as Record<string, unknown>;
  return (
    typeof token.accessToken === "string" &&
    token.accessToken !== "" &&
    Number.isFinite(token.expiresAt) &&
    Number.isFinite(token.refreshAt) &&
    Number.isFinite(token.obtainedAt) &&
    (token.obtainedAt as number) < (token.expiresAt as number) &&
    typeof token.cacheKey === "string" &&
    (token.scope === undefined || typeof token.scope === "string") &&
    (token.tokenType === undefined || token.tokenType === "DPoP")
  );
}
