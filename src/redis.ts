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
import { duration } from "./validate-options.js";
import { unrefTimer } from "./retry.js";
import { isStoredToken, type StoredToken, type TokenStore } from "./store.js";

/** The methods of an ioredis v5 client (`new Redis()` or `new Cluster()`) this store calls. */
export interface IoRedisClientLike {
  /** `GET key`. */
  get(key: string): Promise<string | null>;
  /** `DEL key`. */
  del(key: string): Promise<number>;
  /** `EVAL script numkeys key… arg…`. */
  eval(script: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** Present on ioredis clients only; used to tell the two client libraries apart. */
  defineCommand: unknown;
}

/**
 * The methods of a node-redis client (`createClient()` or `createCluster()`; v5, and v4 has the same
 * methods) this store calls.
 */
export interface NodeRedisClientLike {
  /** `GET key`. */
  get(key: string): Promise<unknown>;
  /** `DEL key`. */
  del(key: string): Promise<unknown>;
  /** `EVAL script numkeys key… arg…`. */
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** node-redis's upper-case command alias; used to tell the two client libraries apart. */
  EVAL: unknown;
}

/** A connected ioredis or node-redis client, single node or cluster; the store never connects, quits or configures it. */
export type RedisClientLike = IoRedisClientLike | NodeRedisClientLike;

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

/** The three commands the store needs, whichever client library sends them; every write is a script. */
interface RedisCommands {
  get(key: string): Promise<string | undefined>;
  del(key: string): Promise<void>;
  /** EVAL with one key; returns the script's reply. A cluster client routes it by that key. */
  evalOnKey(script: string, key: string, args: string[]): Promise<unknown>;
}

// Each script touches one key; the keys of one cache key share a hash tag, so they live on one
// cluster slot and a script reading two of them would work there too.

// Both lock scripts act only if the lock still holds our id: a holder whose lock expired and was
// taken by another process must neither release nor prolong the new holder's lock.
const COMPARE_AND_DELETE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;
const COMPARE_AND_EXTEND = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;

// ARGV: lock id, its TTL, the longest TTL a holder ever sets. A lock without expiry (a SET without
// PX by a script, a failover) or with more left than any holder sets would make every cold cache
// wait for the waiters' own give-up; cut to the longest TTL, it frees within one TTL unless its
// holder is alive and renews it. Returns 1 when acquired, -1 when it cut a lock, 0 otherwise.
const ACQUIRE_LOCK = `
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then return 1 end
local ttl = redis.call("PTTL", KEYS[1])
if ttl == -1 or ttl > tonumber(ARGV[3]) then
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
  return -1
end
return 0`;

// ARGV: value, its obtainedAt, its TTL, the writer's clock plus the skew it tolerates. The write is
// refused only if Redis holds one of our values obtained later: a holder paused past its lock must
// not replace the token another replica stored meanwhile. A stored obtainedAt far ahead of the
// writer's clock is a broken clock or a forged value, and no reason to keep a fleet from writing.
const SET_IF_NOT_OLDER = `
local current = redis.call("GET", KEYS[1])
if current then
  local stored = tonumber(string.match(current, "^v2%.(%d+)%."))
  if stored and stored > tonumber(ARGV[2]) and stored <= tonumber(ARGV[4]) then return 0 end
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
return 1`;

// ARGV: the HMAC of the access token. The value holds that HMAC next to the ciphertext, as the
// ciphertext itself differs on every write (random IV) and Lua has no key to decrypt it.
const DELETE_IF_CURRENT = `
local current = redis.call("GET", KEYS[1])
if current and string.match(current, "^v2%.%d+%.([%w_%-]+)%.") == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`;

// ARGV: value, its until, its TTL. A later until wins, so two replicas throttled at once keep the longer wait.
const SET_THROTTLE = `
local current = redis.call("GET", KEYS[1])
if current then
  local stored = tonumber(string.match(current, "^(%d+)%."))
  if stored and stored >= tonumber(ARGV[2]) then return 0 end
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
return 1`;

function adaptClient(client: unknown): RedisCommands {
  if (client === null || typeof client !== "object") {
    throw new InvalidOptionError('"client" must be an ioredis or node-redis client', "ERR_INVALID_ARG_TYPE");
  }
  const methods = client as Record<string, unknown>;
  const hasCommands = ["get", "del", "eval"].every((name) => typeof methods[name] === "function");
  // ioredis (Redis and Cluster) has defineCommand; node-redis (client and cluster) has upper-case
  // aliases (GET, EVAL) of every command.
  if (hasCommands && typeof methods.defineCommand === "function") {
    const io = client as IoRedisClientLike;
    return {
      get: async (key) => text(await io.get(key)),
      del: async (key) => {
        await io.del(key);
      },
      evalOnKey: (script, key, args) => io.eval(script, 1, key, ...args),
    };
  }
  if (hasCommands && typeof methods.EVAL === "function") {
    const node = client as NodeRedisClientLike;
    return {
      get: async (key) => text(await node.get(key)),
      del: async (key) => {
        await node.del(key);
      },
      evalOnKey: (script, key, args) => node.eval(script, { keys: [key], arguments: args }),
    };
  }
  throw new InvalidOptionError('"client" must be an ioredis or node-redis client', "ERR_INVALID_ARG_TYPE");
}

/** A GET reply as text; clients configured to return buffers give bytes. */
function text(reply: unknown): string | undefined {
  if (typeof reply === "string") return reply;
  if (reply instanceof Uint8Array) return new TextDecoder().decode(reply);
  return undefined;
}

const MIN_SECRET_BYTES = 16;

function encryptionSecret(encryptionKey: unknown, clientSecret: unknown): Uint8Array<ArrayBuffer> {
  if ((encryptionKey === undefined) === (clientSecret === undefined)) {
    throw new InvalidOptionError('exactly one of "encryptionKey" and "clientSecret" must be given');
  }
  const name = encryptionKey !== undefined ? "encryptionKey" : "clientSecret";
  const value = encryptionKey ?? clientSecret;
  let bytes: Uint8Array<ArrayBuffer>;
  if (typeof value === "string") bytes = new TextEncoder().encode(value);
  else if (value instanceof Uint8Array && name === "encryptionKey") bytes = Uint8Array.from(value);
  else {
    const expected = name === "encryptionKey" ? "a string or a Uint8Array" : "a string";
    throw new InvalidOptionError(`"${name}" must be ${expected}`, "ERR_INVALID_ARG_TYPE");
  }
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new InvalidOptionError(`"${name}" must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  return bytes;
}

interface StoreConfig {
  readonly commands: RedisCommands;
  readonly keyPrefix: string;
  readonly lockTtlMs: number | undefined;
  readonly commandTimeoutMs: number;
  readonly cooldownMs: number;
  readonly onError: ((error: Error, operation: RedisStoreOperation) => void) | undefined;
}

/** What the secret yields; none of it can be turned back into the secret. */
interface DerivedKeys {
  /** AES-256-GCM, not extractable. */
  readonly aes: CryptoKey;
  /** HMAC-SHA-256, not extractable: tags Lua can compare without learning the token. */
  readonly mac: CryptoKey;
  /** Names this secret's keys in Redis. */
  readonly fingerprint: string;
}

/**
 * A token value: `v2.<obtainedAt>.<tag>.<base64url(iv ‖ ciphertext ‖ GCM tag)>`. The header is in
 * clear for the Lua scripts (obtainedAt to fence writes, tag to compare-and-delete) and is part of
 * the associated data, so changing it makes the value not decrypt.
 */
const VALUE = /^v2\.(\d{1,16})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]+)$/;
/** A throttle value: `<untilMs>.<tag>`; the tag keeps whoever can write to Redis without the secret from stalling the fleet. */
const THROTTLE = /^(\d{1,16})\.([A-Za-z0-9_-]{22})$/;
const IV_BYTES = 12; // the GCM standard nonce size (NIST SP 800-38D)
const TAG_BYTES = 16;
const MAC_BYTES = 16; // 128 bits: unforgeable, and short enough to keep next to every value
const FINGERPRINT_BYTES = 9; // 72 bits, 12 characters: two secrets of one deployment never collide
const HKDF_SALT = new TextEncoder().encode("axios-token-refresh/redis");
const HKDF_INFO = new TextEncoder().encode("token store: AES-256-GCM v1");
const HKDF_INFO_MAC = new TextEncoder().encode("token store: HMAC-SHA-256 v2");
const HKDF_INFO_FINGERPRINT = new TextEncoder().encode("token store: key fingerprint v2");
/** How far ahead of a writer's clock a stored obtainedAt may be and still fence its write. */
const MAX_FENCE_AHEAD_MS = 60_000;
const MAX_MEMO = 100;
const DEFAULT_MAX_LOCK_TTL_MS = 2_000;
const noop = (): void => {};

class RedisStore implements RedisTokenStore {
  readonly #config: StoreConfig;
  /** The secret it came from is not kept. */
  readonly #keys: Promise<DerivedKeys>;
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
    this.#keys = deriveKeys(secret);
    this.#keys.catch(noop); // surfaces, as a failed command, in the first call
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
    const token = await this.#decrypt(redisKey, raw);
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
    const raw = await this.#encrypt(redisKey, entry);
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
    const tag = await this.#mac(redisKey, accessToken);
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
    const value = `${until}.${await this.#mac(throttleKey, String(until))}`;
    await this.#run("setThrottle", () => this.#config.commands.evalOnKey(SET_THROTTLE, throttleKey, [value, String(until), String(ttlMs)]));
  }

  async getThrottle(key: string): Promise<number | undefined> {
    const throttleKey = await this.#key("throttle", key);
    const raw = await this.#run("getThrottle", () => this.#config.commands.get(throttleKey));
    const match = raw === undefined ? null : THROTTLE.exec(raw);
    if (match === null) return undefined;
    const until = Number(match[1]);
    if (!sameText(match[2] as string, await this.#mac(throttleKey, String(until)))) return undefined;
    return until > Date.now() ? until : undefined;
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
      tag = Promise.all([this.#keys, hash]).then(([keys, id]) => `{${keys.fingerprint}.${base64url(new Uint8Array(id))}}`);
      this.#tags.set(cacheKey, tag);
    }
    return `${this.#config.keyPrefix}${await tag}:${kind}`;
  }

  /** base64url HMAC of `data` under the derived MAC key, bound to the Redis key it is stored under. */
  async #mac(redisKey: string, data: string): Promise<string> {
    const { mac } = await this.#keys;
    const signature = await crypto.subtle.sign("HMAC", mac, new TextEncoder().encode(`${redisKey}\n${data}`));
    return base64url(new Uint8Array(signature, 0, MAC_BYTES));
  }

  #remember(redisKey: string, raw: string, token: StoredToken | undefined): void {
    if (this.#memo.size >= MAX_MEMO && !this.#memo.has(redisKey)) this.#memo.clear();
    this.#memo.set(redisKey, { raw, token });
  }

  async #encrypt(redisKey: string, token: StoredToken): Promise<string> {
    const header = `v2.${fenceTime(token.obtainedAt)}.${await this.#mac(redisKey, token.accessToken)}.`;
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: associatedData(redisKey, header) },
      (await this.#keys).aes,
      new TextEncoder().encode(JSON.stringify(token)),
    );
    const out = new Uint8Array(IV_BYTES + sealed.byteLength);
    out.set(iv);
    out.set(new Uint8Array(sealed), IV_BYTES);
    return header + base64url(out);
  }

  /** The token in `raw`, or undefined for anything that does not decrypt, parse and validate. */
  async #decrypt(redisKey: string, raw: string): Promise<StoredToken | undefined> {
    try {
      const match = VALUE.exec(raw);
      if (match === null) return undefined;
      const bytes = fromBase64url(match[3] as string);
      if (bytes === undefined || bytes.byteLength < IV_BYTES + TAG_BYTES) return undefined;
      const header = raw.slice(0, raw.length - (match[3] as string).length);
      const plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: bytes.subarray(0, IV_BYTES), additionalData: associatedData(redisKey, header) },
        (await this.#keys).aes,
        bytes.subarray(IV_BYTES),
      );
      const value: unknown = JSON.parse(new TextDecoder().decode(plain));
      if (!isStoredToken(value) || String(fenceTime(value.obtainedAt)) !== match[1]) return undefined;
      return copyToken(value);
    } catch {
      return undefined;
    }
  }
}

/** The fields of a token entry and nothing else (what a caller's object or a decrypted one may carry besides). */
function copyToken(token: StoredToken): StoredToken {
  const { accessToken, expiresAt, refreshAt, obtainedAt, cacheKey, scope } = token;
  return scope === undefined
    ? { accessToken, expiresAt, refreshAt, obtainedAt, cacheKey }
    : { accessToken, expiresAt, refreshAt, obtainedAt, cacheKey, scope };
}

/** obtainedAt as the whole, non-negative milliseconds the Lua scripts compare. */
function fenceTime(obtainedAt: number): number {
  return Math.max(0, Math.floor(obtainedAt));
}

function associatedData(redisKey: string, header: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${redisKey}\n${header}`);
}

/** Compares two tags without stopping at the first difference. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** The AES-256-GCM and HMAC keys, derived with HKDF-SHA-256 (RFC 5869) and not extractable, and the key fingerprint. */
async function deriveKeys(secret: Uint8Array<ArrayBuffer>): Promise<DerivedKeys> {
  const base = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveKey", "deriveBits"]);
  secret.fill(0); // our own copy: the imported key is all that is needed from here on
  const hkdf = (info: Uint8Array<ArrayBuffer>): HkdfParams => ({ name: "HKDF", hash: "SHA-256", salt: HKDF_SALT, info });
  const [aes, mac, fingerprint] = await Promise.all([
    crypto.subtle.deriveKey(hkdf(HKDF_INFO), base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]),
    crypto.subtle.deriveKey(hkdf(HKDF_INFO_MAC), base, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]),
    crypto.subtle.deriveBits(hkdf(HKDF_INFO_FINGERPRINT), base, FINGERPRINT_BYTES * 8),
  ]);
  return { aes, mac, fingerprint: base64url(new Uint8Array(fingerprint)) };
}

function randomId(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(value: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(value)) return undefined;
  const binary = atob(value.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
