/**
 * `axios-token-refresh/redis`: one token for a fleet of processes, kept in the Redis the user
 * already runs. The store implements the optional refresh lock, compare-and-delete and throttle of
 * `TokenStore`, so when every replica finds the token missing or due, one fetches and the others
 * read what it stored.
 *
 * - Values are encrypted at rest: AES-256-GCM (WebCrypto) with a key derived by HKDF-SHA-256 from
 *   `encryptionKey` or the client secret, bound to the Redis key, so a copied value does not decrypt.
 * - Keys are `<prefix>{<fingerprint>.<id>}:token|lock|throttle`: the fingerprint (HKDF, not the key)
 *   gives replicas with another secret keys of their own, so during a key rollout two groups do
 *   not keep overwriting values the other cannot read; the braces put the keys of one cache key in
 *   one Redis Cluster slot.
 * - Writes are fenced: a value carries its `obtainedAt` in clear (authenticated, not secret), and a
 *   Lua script stores it only if what Redis holds is not newer, so a holder that was paused past its
 *   lock never replaces the token another replica stored meanwhile.
 * - Entries expire in Redis with the token (`PX`), so Redis never serves a stale token.
 * - Lock: `SET lock id NX PX ttl`, renewed by its live holder; release compares the id and deletes.
 *   A holder that dies stops renewing, and its lock frees within one TTL; a lock left without
 *   expiry (or with a longer one) is cut to one TTL by the next replica that wants it.
 * - Every write and every compare is one Lua script on one key, so it is atomic, on a cluster too.
 * - Redis is never allowed to break a request: every command has a timeout, after a timeout Redis
 *   is skipped for a cool-down, and the core treats any store failure as a miss and fetches itself.
 * - Neither ioredis nor redis is imported: the client is passed in and recognised by its methods.
 */
import { InvalidOptionError } from "./errors.js";
import {
  ACQUIRE_LOCK,
  adaptClient,
  COMPARE_AND_DELETE,
  COMPARE_AND_EXTEND,
  DELETE_IF_CURRENT,
  type RedisClientLike,
  type RedisCommands,
  SET_IF_NOT_OLDER,
  SET_THROTTLE,
} from "./redis/commands.js";
import { copyToken, encryptionSecret, fenceTime, randomId, Sealer } from "./redis/sealing.js";
import { unrefTimer } from "./retry.js";
import type { StoredToken, TokenStore } from "./store.js";
import { base64url } from "./encoding.js";
import { duration } from "./validate-options.js";

export type { IoRedisClientLike, NodeRedisClientLike, RedisClientLike } from "./redis/commands.js";

/** A store operation, as reported to `onError`. */
export type RedisStoreOperation =
  | "get"
  | "set"
  | "delete"
  | "deleteIfCurrent"
  | "acquireRefreshLock"
  | "extendRefreshLock"
  | "releaseRefreshLock"
  | "setThrottle"
  | "getThrottle";

/** Options of {@link createRedisTokenStore}. */
export interface RedisTokenStoreOptions {
  /**
   * An ioredis v5 or node-redis v5 client, connected by you; every replica points at the same Redis.
   * A Redis Cluster client (ioredis `Cluster`, node-redis `createCluster()`) works too.
   */
  client: RedisClientLike;
  /**
   * Secret the encryption key is derived from (HKDF-SHA-256), at least 16 bytes, the same on every replica.
   * Give this or `clientSecret`, not both. Generate one with `openssl rand -base64 32`. Replicas with
   * another secret use keys of their own (a short HKDF fingerprint in the key name), so during a
   * rollout each group shares a token within itself.
   */
  encryptionKey?: string | Uint8Array;
  /**
   * The OAuth client secret, to derive the encryption key from when there is no `encryptionKey`:
   * only holders of the secret can then read the token. At least 16 bytes, since whoever can read
   * Redis can try to guess it offline.
   */
  clientSecret?: string;
  /**
   * Prefix of every key this store writes (`<prefix>{<fingerprint>.<id>}:token`, `…:lock`, `…:throttle`).
   * @default "axios-token-refresh:"
   */
  keyPrefix?: string;
  /**
   * How soon the refresh lock of a holder that died frees, so another replica can fetch. A live holder
   * renews its lock every third of this until it releases it (for at most the interceptor's `timeoutMs`),
   * so a slow token endpoint does not let a second replica in. By default half the interceptor's
   * `timeoutMs`, at most 2 s: short enough that the others are still waiting when a dead holder's lock frees.
   * A lock found without expiry, or with more than this (at most 2 s by default) left, is cut to it,
   * so give every replica the same value.
   */
  lockTtlMs?: number;
  /**
   * Longest wait for one Redis command; a command that takes longer fails, and the request goes on without Redis.
   * @default 1000
   */
  commandTimeoutMs?: number;
  /**
   * After a command times out, every command fails at once for this long, so a hung Redis costs one
   * timeout rather than one per request; `0` turns this off.
   * @default 5000
   */
  cooldownMs?: number;
  /**
   * Told about Redis failures, timeouts, values that do not decrypt and locks found without expiry;
   * the error never holds a token or the encryption secret. The store carries on either way.
   */
  onError?: (error: Error, operation: RedisStoreOperation) => void;
}

/** The store {@link createRedisTokenStore} returns: every method returns a promise, and every optional method is there. */
export interface RedisTokenStore extends TokenStore {
  /** Returns the token under `key`; a value that does not decrypt or parse is a miss. Rejects when Redis fails or times out. */
  get(key: string): Promise<StoredToken | undefined>;
  /**
   * Stores `token` encrypted under `key`, expiring with it (`PX`), unless Redis holds a token obtained
   * later (so a late writer never replaces a newer token): then it resolves `false`, and the core reads
   * the newer token back. An expired token is not stored.
   */
  set(key: string, token: StoredToken): Promise<boolean>;
  /** Removes the token under `key`. */
  delete(key: string): Promise<void>;
  /** Removes the token under `key` only if it is `accessToken` (one Lua script); resolves with whether it did. */
  deleteIfCurrent(key: string, accessToken: string): Promise<boolean>;
  /** Takes the refresh lock of `key` (`SET NX PX`) and returns its id, or `undefined` when another process holds it. */
  acquireRefreshLock(key: string, ttlMs: number): Promise<string | undefined>;
  /** Releases the lock of `key` if `lockId` still holds it (compare-and-delete). */
  releaseRefreshLock(key: string, lockId: string): Promise<void>;
  /** Records, for every replica, that the token endpoint asked to wait until `untilMs` (epoch ms); a later time wins. */
  setThrottle(key: string, untilMs: number): Promise<void>;
  /** The epoch ms until which the token endpoint asked to wait, or `undefined` when that has passed or nothing was recorded. */
  getThrottle(key: string): Promise<number | undefined>;
}

/** Defaults of {@link createRedisTokenStore}. */
export const REDIS_STORE_DEFAULTS = {
  keyPrefix: "axios-token-refresh:",
  commandTimeoutMs: 1_000, // a hung Redis must not stall requests for longer than this
  cooldownMs: 5_000,
} as const;

/**
 * Returns a {@link TokenStore} on Redis that shares one encrypted token, and one refresh, across
 * every process that uses the same Redis, key prefix and encryption secret (or client secret).
 * Throws an `InvalidOptionError` (a `TypeError` with a `code`) for bad options.
 * @example
 * import { Redis } from "ioredis";
 * import { createRedisTokenStore } from "axios-token-refresh/redis";
 * const store = createRedisTokenStore({ client: new Redis(process.env.REDIS_URL), clientSecret });
 * const auth = createTokenRefreshInterceptor({ tokenUrl, clientId, clientSecret, store });
 */
export function createRedisTokenStore(options: RedisTokenStoreOptions): RedisTokenStore {
  if (options === null || typeof options !== "object") {
    throw new InvalidOptionError("options must be an object", "ERR_INVALID_ARG_TYPE");
  }
  const own = <K extends keyof RedisTokenStoreOptions>(key: K): unknown => (Object.hasOwn(options, key) ? options[key] : undefined);
  if (globalThis.crypto?.subtle === undefined) {
    throw new InvalidOptionError("WebCrypto (globalThis.crypto.subtle) is required to encrypt tokens at rest");
  }
  const onError = own("onError");
  if (onError !== undefined && typeof onError !== "function") {
    throw new InvalidOptionError('"onError" must be a function', "ERR_INVALID_ARG_TYPE");
  }
  const keyPrefix = own("keyPrefix") ?? REDIS_STORE_DEFAULTS.keyPrefix;
  if (typeof keyPrefix !== "string") throw new InvalidOptionError('"keyPrefix" must be a string', "ERR_INVALID_ARG_TYPE");
  const lockTtlMs = own("lockTtlMs");
  return new RedisStore(encryptionSecret(own("encryptionKey"), own("clientSecret")), {
    commands: adaptClient(own("client")),
    keyPrefix,
    lockTtlMs: lockTtlMs === undefined ? undefined : duration("lockTtlMs", lockTtlMs, 0, 1),
    commandTimeoutMs: duration("commandTimeoutMs", own("commandTimeoutMs"), REDIS_STORE_DEFAULTS.commandTimeoutMs, 1),
    cooldownMs: duration("cooldownMs", own("cooldownMs"), REDIS_STORE_DEFAULTS.cooldownMs, 0),
    onError: onError as RedisTokenStoreOptions["onError"],
  });
}

interface StoreConfig {
  readonly commands: RedisCommands;
  readonly keyPrefix: string;
  readonly lockTtlMs: number | undefined;
  readonly commandTimeoutMs: number;
  readonly cooldownMs: number;
  readonly onError: ((error: Error, operation: RedisStoreOperation) => void) | undefined;
}

/** How far ahead of a writer's clock a stored obtainedAt may be and still fence its write. */
const MAX_FENCE_AHEAD_MS = 60_000;
const MAX_MEMO = 100;
const DEFAULT_MAX_LOCK_TTL_MS = 2_000;
const noop = (): void => {};

class RedisStore implements RedisTokenStore {
  readonly #config: StoreConfig;
  readonly #sealer: Sealer;
  /** `{<fingerprint>.<id>}` per cache key. */
  readonly #tags = new Map<string, Promise<string>>();
  /**
   * The last value read or written per Redis key, decrypted (undefined: it did not decrypt), so an
   * unchanged value is neither decrypted nor reported again.
   */
  readonly #memo = new Map<string, { readonly raw: string; readonly token: StoredToken | undefined }>();
  /** On the monotonic clock: a wall clock stepped back must not stretch the cool-down. */
  #skipUntil = 0;
  /** Renewal timers of the locks this store holds, by lock id. */
  readonly #renewals = new Map<string, ReturnType<typeof setInterval>>();

  constructor(secret: Uint8Array<ArrayBuffer>, config: StoreConfig) {
    this.#config = config;
    this.#sealer = new Sealer(secret);
  }

  async get(key: string): Promise<StoredToken | undefined> {
    const redisKey = await this.#key("token", key);
    const raw = await this.#run("get", () => this.#config.commands.get(redisKey));
    if (raw === undefined) {
      this.#memo.delete(redisKey);
      return undefined;
    }
    const known = this.#memo.get(redisKey);
    if (known?.raw === raw) return known.token;
    const token = await this.#sealer.open(redisKey, raw);
    this.#remember(redisKey, raw, token);
    if (token === undefined) {
      this.#report(new Error("a stored token could not be decrypted or read; treated as a miss"), "get");
    }
    return token;
  }

  async set(key: string, token: StoredToken): Promise<boolean> {
    const ttlMs = Math.floor(token.expiresAt - Date.now());
    if (ttlMs <= 0) return true; // already expired: nothing worth sharing, nothing newer to read back
    const redisKey = await this.#key("token", key);
    const entry = copyToken(token);
    const raw = await this.#sealer.seal(redisKey, entry);
    const fence = String(fenceTime(entry.obtainedAt));
    const aheadLimit = String(Math.floor(Date.now() + MAX_FENCE_AHEAD_MS));
    const written = await this.#run("set", () =>
      this.#config.commands.evalOnKey(SET_IF_NOT_OLDER, redisKey, [raw, fence, String(ttlMs), aheadLimit]),
    );
    if (Number(written) !== 1) return false; // Redis holds a newer token: the core reads it back
    this.#remember(redisKey, raw, entry);
    return true;
  }

  async delete(key: string): Promise<void> {
    const redisKey = await this.#key("token", key);
    this.#memo.delete(redisKey);
    await this.#run("delete", () => this.#config.commands.del(redisKey));
  }

  async deleteIfCurrent(key: string, accessToken: string): Promise<boolean> {
    const redisKey = await this.#key("token", key);
    const tag = await this.#sealer.mac(redisKey, accessToken);
    const deleted = await this.#run("deleteIfCurrent", () => this.#config.commands.evalOnKey(DELETE_IF_CURRENT, redisKey, [tag]));
    if (Number(deleted) !== 1) return false;
    this.#memo.delete(redisKey);
    return true;
  }

  async acquireRefreshLock(key: string, ttlMs: number): Promise<string | undefined> {
    const lockKey = await this.#key("lock", key);
    const lockId = randomId();
    const longestTtlMs = Math.max(1, Math.ceil(this.#config.lockTtlMs ?? DEFAULT_MAX_LOCK_TTL_MS));
    const lockTtlMs = Math.max(1, Math.ceil(this.#config.lockTtlMs ?? Math.min(ttlMs / 2, DEFAULT_MAX_LOCK_TTL_MS)));
    const reply = await this.#run("acquireRefreshLock", () =>
      this.#config.commands.evalOnKey(ACQUIRE_LOCK, lockKey, [lockId, String(lockTtlMs), String(longestTtlMs)]),
    );
    if (Number(reply) === -1) {
      this.#report(
        new Error(`found the refresh lock without expiry or with more than ${longestTtlMs} ms left; it now expires in ${longestTtlMs} ms`),
        "acquireRefreshLock",
      );
    }
    if (Number(reply) !== 1) return undefined;
    this.#renew(lockKey, lockId, lockTtlMs, performance.now() + Math.max(ttlMs, lockTtlMs));
    return lockId;
  }

  async releaseRefreshLock(key: string, lockId: string): Promise<void> {
    this.#stopRenewing(lockId);
    const lockKey = await this.#key("lock", key);
    await this.#run("releaseRefreshLock", () => this.#config.commands.evalOnKey(COMPARE_AND_DELETE, lockKey, [lockId]));
  }

  async setThrottle(key: string, untilMs: number): Promise<void> {
    if (!Number.isFinite(untilMs)) return;
    const until = Math.ceil(untilMs);
    // Epoch ms by contract, so the wall clock: the key expires when the wait is over.
    const ttlMs = until - Date.now();
    if (ttlMs <= 0) return;
    const throttleKey = await this.#key("throttle", key);
    const value = await this.#sealer.throttleValue(throttleKey, until);
    await this.#run("setThrottle", () => this.#config.commands.evalOnKey(SET_THROTTLE, throttleKey, [value, String(until), String(ttlMs)]));
  }

  async getThrottle(key: string): Promise<number | undefined> {
    const throttleKey = await this.#key("throttle", key);
    const raw = await this.#run("getThrottle", () => this.#config.commands.get(throttleKey));
    const until = await this.#sealer.readThrottle(throttleKey, raw);
    return until !== undefined && until > Date.now() ? until : undefined;
  }

  /**
   * Prolongs a held lock every third of its TTL, never past `until` (the interceptor's budget, on the
   * monotonic clock): a slow fetch keeps the lock, a dead process stops renewing and its lock frees
   * within one TTL.
   */
  #renew(lockKey: string, lockId: string, lockTtlMs: number, until: number): void {
    let pending = false;
    const timer = setInterval(
      () => {
        const remainingMs = Math.floor(until - performance.now());
        if (remainingMs <= 0) {
          this.#stopRenewing(lockId);
          return;
        }
        if (pending) return;
        pending = true;
        const ttl = String(Math.min(lockTtlMs, remainingMs));
        this.#run("extendRefreshLock", () => this.#config.commands.evalOnKey(COMPARE_AND_EXTEND, lockKey, [lockId, ttl]))
          .then((extended) => {
            if (Number(extended) === 0) this.#stopRenewing(lockId); // expired and maybe taken: it is not ours any more
          })
          .catch(noop) // a failed renewal at worst lets a second replica fetch
          .finally(() => {
            pending = false;
          });
      },
      Math.max(1, Math.floor(lockTtlMs / 3)),
    );
    unrefTimer(timer);
    this.#renewals.set(lockId, timer);
  }

  #stopRenewing(lockId: string): void {
    clearInterval(this.#renewals.get(lockId));
    this.#renewals.delete(lockId);
  }

  /** Runs one command within `commandTimeoutMs`; a timeout makes the next commands fail at once for `cooldownMs`. */
  async #run<T>(operation: RedisStoreOperation, command: () => Promise<T>): Promise<T> {
    const { commandTimeoutMs, cooldownMs } = this.#config;
    if (performance.now() < this.#skipUntil) throw new Error(`redis skipped for ${cooldownMs} ms after a command timed out`);
    const pending = Promise.resolve().then(command);
    const timedOut = new Error(`redis command timed out after ${commandTimeoutMs} ms ("commandTimeoutMs")`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let turn: ReturnType<typeof setImmediate> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        // After a stall (a GC pause, a starved process) the timer and the reply are due together,
        // and timers run before I/O: let one round of I/O deliver a reply that is already here.
        turn = setImmediate(() => reject(timedOut));
      }, commandTimeoutMs);
      unrefTimer(timer);
    });
    try {
      return await Promise.race([pending, timeout]);
    } catch (error) {
      if (error === timedOut) {
        pending.catch(noop); // it may still settle; nobody is listening any more
        if (cooldownMs > 0) this.#skipUntil = performance.now() + cooldownMs;
      }
      this.#report(error instanceof Error ? error : new Error("redis command failed", { cause: error }), operation);
      throw error;
    } finally {
      clearTimeout(timer);
      if (turn !== undefined) clearImmediate(turn);
    }
  }

  #report(error: Error, operation: RedisStoreOperation): void {
    try {
      this.#config.onError?.(error, operation);
    } catch {
      // A throwing listener must not turn a working request into a failed one.
    }
  }

  /**
   * `<prefix>{<fingerprint>.<id>}:<kind>`, the id being the base64url SHA-256 of the core's cache
   * key: fixed length, and no client id or tenant in KEYS output.
   */
  async #key(kind: "token" | "lock" | "throttle", cacheKey: string): Promise<string> {
    let tag = this.#tags.get(cacheKey);
    if (tag === undefined) {
      if (this.#tags.size >= MAX_MEMO) this.#tags.clear();
      const hash = crypto.subtle.digest("SHA-256", new TextEncoder().encode(cacheKey));
      tag = Promise.all([this.#sealer.fingerprint(), hash]).then(
        ([fingerprint, id]) => `{${fingerprint}.${base64url(new Uint8Array(id))}}`,
      );
      this.#tags.set(cacheKey, tag);
    }
    return `${this.#config.keyPrefix}${await tag}:${kind}`;
  }

  #remember(redisKey: string, raw: string, token: StoredToken | undefined): void {
    if (this.#memo.size >= MAX_MEMO && !this.#memo.has(redisKey)) this.#memo.clear();
    this.#memo.set(redisKey, { raw, token });
  }
}
