/**
 * `axios-token-refresh/redis`: one token for a fleet of processes, kept in the Redis the user
 * already runs. The store implements the optional refresh lock of `TokenStore`, so when every
 * replica finds the token missing or due, one fetches and the others read what it stored.
 *
 * - Values are encrypted at rest: AES-256-GCM (WebCrypto) with a key derived by HKDF-SHA-256 from
 *   `encryptionKey` or the client secret, bound to the Redis key, so a copied value does not decrypt.
 * - Entries expire in Redis with the token (`SET … PX`), so Redis never serves a stale token.
 * - Lock: `SET lock id NX PX ttl`, renewed by its live holder; release compares the id and deletes
 *   in one Lua script. A holder that dies stops renewing, and its lock frees within one TTL.
 * - Redis is never allowed to break a request: every command has a timeout, after a timeout Redis
 *   is skipped for a cool-down, and the core treats any store failure as a miss and fetches itself.
 * - Neither ioredis nor redis is imported: the client is passed in and recognised by its methods.
 */
import { InvalidOptionError } from "./errors.js";
import { duration } from "./options.js";
import { unrefTimer } from "./retry.js";
import { isStoredToken, type StoredToken, type TokenStore } from "./store.js";

/** The methods of an ioredis v5 client this store calls. */
export interface IoRedisClientLike {
  /** `GET key`. */
  get(key: string): Promise<string | null>;
  /** `SET key value PX ttl`. */
  set(key: string, value: string, expiryMode: "PX", ttlMs: number): Promise<unknown>;
  /** `SET key value PX ttl NX`: null when the key exists. */
  set(key: string, value: string, expiryMode: "PX", ttlMs: number, condition: "NX"): Promise<unknown>;
  /** `DEL key`. */
  del(key: string): Promise<number>;
  /** `EVAL script numkeys key… arg…`. */
  eval(script: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** Present on ioredis clients only; used to tell the two client libraries apart. */
  defineCommand: unknown;
}

/** The methods of a node-redis client (`createClient()`; v5, and v4 has the same methods) this store calls. */
export interface NodeRedisClientLike {
  /** `GET key`. */
  get(key: string): Promise<unknown>;
  /** `SET key value PX ttl [NX]`. */
  set(key: string, value: string, options: { PX: number; NX?: boolean }): Promise<unknown>;
  /** `DEL key`. */
  del(key: string): Promise<unknown>;
  /** `EVAL script numkeys key… arg…`. */
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** node-redis's upper-case command alias; used to tell the two client libraries apart. */
  EVAL: unknown;
}

/** A connected ioredis or node-redis client; the store never connects, quits or configures it. */
export type RedisClientLike = IoRedisClientLike | NodeRedisClientLike;

/** A store operation, as reported to `onError`. */
export type RedisStoreOperation = "get" | "set" | "delete" | "acquireRefreshLock" | "extendRefreshLock" | "releaseRefreshLock";

/** Options of {@link createRedisTokenStore}. */
export interface RedisTokenStoreOptions {
  /** An ioredis v5 or node-redis v5 client, connected by you; every replica points at the same Redis. */
  client: RedisClientLike;
  /**
   * Secret the encryption key is derived from (HKDF-SHA-256), at least 16 bytes, the same on every replica.
   * Give this or `clientSecret`, not both. Generate one with `openssl rand -base64 32`.
   */
  encryptionKey?: string | Uint8Array;
  /**
   * The OAuth client secret, to derive the encryption key from when there is no `encryptionKey`:
   * only holders of the secret can then read the token. At least 16 bytes, since whoever can read
   * Redis can try to guess it offline.
   */
  clientSecret?: string;
  /**
   * Prefix of every key this store writes (`<prefix>token:<id>`, `<prefix>lock:<id>`).
   * @default "axios-token-refresh:"
   */
  keyPrefix?: string;
  /**
   * How soon the refresh lock of a holder that died frees, so another replica can fetch. A live holder
   * renews its lock every third of this until it releases it (for at most the interceptor's `timeoutMs`),
   * so a slow token endpoint does not let a second replica in. By default half the interceptor's
   * `timeoutMs`, at most 2 s: short enough that the others are still waiting when a dead holder's lock frees.
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
   * Told about Redis failures, timeouts and values that do not decrypt (such as a replica with another
   * key); the error never holds a token or the encryption secret. The store carries on either way.
   */
  onError?: (error: Error, operation: RedisStoreOperation) => void;
}

/** The store {@link createRedisTokenStore} returns: every method returns a promise, and the refresh lock is always there. */
export interface RedisTokenStore extends TokenStore {
  /** Returns the token under `key`; a value that does not decrypt or parse is a miss. Rejects when Redis fails or times out. */
  get(key: string): Promise<StoredToken | undefined>;
  /** Stores `token` encrypted under `key`, expiring with it (`PX`); an expired token is not stored. */
  set(key: string, token: StoredToken): Promise<void>;
  /** Removes the token under `key`. */
  delete(key: string): Promise<void>;
  /** Takes the refresh lock of `key` (`SET NX PX`) and returns its id, or `undefined` when another process holds it. */
  acquireRefreshLock(key: string, ttlMs: number): Promise<string | undefined>;
  /** Releases the lock of `key` if `lockId` still holds it (compare-and-delete). */
  releaseRefreshLock(key: string, lockId: string): Promise<void>;
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
  const own = <K extends keyof RedisTokenStoreOptions>(key: K): unknown =>
    Object.prototype.hasOwnProperty.call(options, key) ? options[key] : undefined;
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

/** The four commands the store needs, whichever client library sends them. */
interface RedisCommands {
  get(key: string): Promise<string | undefined>;
  /** SET with PX; with `onlyIfAbsent`, NX. Returns whether the value was written. */
  set(key: string, value: string, ttlMs: number, onlyIfAbsent: boolean): Promise<boolean>;
  del(key: string): Promise<void>;
  /** EVAL with one key; returns the script's reply. */
  evalOnKey(script: string, key: string, args: string[]): Promise<unknown>;
}

// Both lock scripts act only if the lock still holds our id: a holder whose lock expired and was
// taken by another process must neither release nor prolong the new holder's lock.
const COMPARE_AND_DELETE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;
const COMPARE_AND_EXTEND = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;

function adaptClient(client: unknown): RedisCommands {
  if (client === null || typeof client !== "object") {
    throw new InvalidOptionError('"client" must be an ioredis or node-redis client', "ERR_INVALID_ARG_TYPE");
  }
  const methods = client as Record<string, unknown>;
  const hasCommands = ["get", "set", "del", "eval"].every((name) => typeof methods[name] === "function");
  // ioredis has defineCommand; node-redis has upper-case aliases (SET, EVAL) of every command.
  if (hasCommands && typeof methods.defineCommand === "function") {
    const io = client as IoRedisClientLike;
    return {
      get: async (key) => text(await io.get(key)),
      set: async (key, value, ttlMs, onlyIfAbsent) => {
        const reply = await (onlyIfAbsent ? io.set(key, value, "PX", ttlMs, "NX") : io.set(key, value, "PX", ttlMs));
        return reply !== null && reply !== undefined;
      },
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
      // The PX/NX option names work in node-redis v4 and v5 alike.
      set: async (key, value, ttlMs, onlyIfAbsent) => {
        const reply = await node.set(key, value, onlyIfAbsent ? { PX: ttlMs, NX: true } : { PX: ttlMs });
        return reply !== null && reply !== undefined;
      },
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

const FORMAT = "v1.";
const IV_BYTES = 12; // the GCM standard nonce size (NIST SP 800-38D)
const TAG_BYTES = 16;
const HKDF_SALT = new TextEncoder().encode("axios-token-refresh/redis");
const HKDF_INFO = new TextEncoder().encode("token store: AES-256-GCM v1");
const MAX_MEMO = 100;
const DEFAULT_MAX_LOCK_TTL_MS = 2_000;
const noop = (): void => {};

class RedisStore implements RedisTokenStore {
  readonly #config: StoreConfig;
  /** Non-extractable; the secret it came from is not kept. */
  readonly #aesKey: Promise<CryptoKey>;
  readonly #redisIds = new Map<string, Promise<string>>();
  /**
   * The last value read or written per Redis key, decrypted (undefined: it did not decrypt), so an
   * unchanged value is neither decrypted nor reported again.
   */
  readonly #memo = new Map<string, { readonly raw: string; readonly token: StoredToken | undefined }>();
  #skipUntil = 0;
  /** Renewal timers of the locks this store holds, by lock id. */
  readonly #renewals = new Map<string, ReturnType<typeof setInterval>>();

  constructor(secret: Uint8Array<ArrayBuffer>, config: StoreConfig) {
    this.#config = config;
    this.#aesKey = deriveKey(secret);
    this.#aesKey.catch(noop); // surfaces, as a miss, in the first get or set
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
      this.#report(new Error("a stored token could not be decrypted or read; treated as a miss (another encryption key?)"), "get");
    }
    return token;
  }

  async set(key: string, token: StoredToken): Promise<void> {
    const ttlMs = Math.floor(token.expiresAt - Date.now());
    if (ttlMs <= 0) return; // already expired: nothing worth sharing
    const redisKey = await this.#key("token", key);
    const entry: StoredToken = {
      accessToken: token.accessToken,
      expiresAt: token.expiresAt,
      refreshAt: token.refreshAt,
      obtainedAt: token.obtainedAt,
      cacheKey: token.cacheKey,
    };
    const raw = await this.#encrypt(redisKey, entry);
    await this.#run("set", () => this.#config.commands.set(redisKey, raw, ttlMs, false));
    this.#remember(redisKey, raw, entry);
  }

  async delete(key: string): Promise<void> {
    const redisKey = await this.#key("token", key);
    this.#memo.delete(redisKey);
    await this.#run("delete", () => this.#config.commands.del(redisKey));
  }

  async acquireRefreshLock(key: string, ttlMs: number): Promise<string | undefined> {
    const lockKey = await this.#key("lock", key);
    const lockId = randomId();
    const lockTtlMs = Math.max(1, Math.ceil(this.#config.lockTtlMs ?? Math.min(ttlMs / 2, DEFAULT_MAX_LOCK_TTL_MS)));
    const acquired = await this.#run("acquireRefreshLock", () => this.#config.commands.set(lockKey, lockId, lockTtlMs, true));
    if (!acquired) return undefined;
    this.#renew(lockKey, lockId, lockTtlMs, Date.now() + Math.max(ttlMs, lockTtlMs));
    return lockId;
  }

  async releaseRefreshLock(key: string, lockId: string): Promise<void> {
    this.#stopRenewing(lockId);
    const lockKey = await this.#key("lock", key);
    await this.#run("releaseRefreshLock", () => this.#config.commands.evalOnKey(COMPARE_AND_DELETE, lockKey, [lockId]));
  }

  /**
   * Prolongs a held lock every third of its TTL, never past `until` (the interceptor's budget): a slow
   * fetch keeps the lock, a dead process stops renewing and its lock frees within one TTL.
   */
  #renew(lockKey: string, lockId: string, lockTtlMs: number, until: number): void {
    let pending = false;
    const timer = setInterval(() => {
      const remainingMs = Math.floor(until - Date.now());
      if (remainingMs <= 0) {
        this.#stopRenewing(lockId);
        return;
      }
      if (pending) return;
      pending = true;
      const ttl = String(Math.min(lockTtlMs, remainingMs));
      this.#run("extendRefreshLock", () => this.#config.commands.evalOnKey(COMPARE_AND_EXTEND, lockKey, [lockId, ttl]))
        .then((extended) => {
          if (extended === 0) this.#stopRenewing(lockId); // expired and maybe taken: it is not ours any more
        })
        .catch(noop) // a failed renewal at worst lets a second replica fetch
        .finally(() => {
          pending = false;
        });
    }, Math.max(1, Math.floor(lockTtlMs / 3)));
    unrefTimer(timer);
    this.#renewals.set(lockId, timer);
  }

  #stopRenewing(lockId: string): void {
    clearInterval(this.#renewals.get(lockId));
    this.#renewals.delete(lockId);
  }

  /** Runs one command within `commandTimeoutMs`; a timeout makes the next commands fail at once for `cooldownMs`. */
  async #run<T>(operation: RedisStoreOperation, command: () => Promise<T>): Promise<T> {
    if (Date.now() < this.#skipUntil) throw new Error(`redis skipped for ${this.#config.cooldownMs} ms after a command timed out`);
    const { commandTimeoutMs, cooldownMs } = this.#config;
    const pending = Promise.resolve().then(command);
    const timedOut = new Error(`redis command timed out after ${commandTimeoutMs} ms ("commandTimeoutMs")`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(timedOut), commandTimeoutMs);
      unrefTimer(timer);
    });
    try {
      return await Promise.race([pending, timeout]);
    } catch (error) {
      if (error === timedOut) {
        pending.catch(noop); // it may still settle; nobody is listening any more
        if (cooldownMs > 0) this.#skipUntil = Date.now() + cooldownMs;
      }
      this.#report(error instanceof Error ? error : new Error("redis command failed", { cause: error }), operation);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  #report(error: Error, operation: RedisStoreOperation): void {
    try {
      this.#config.onError?.(error, operation);
    } catch {
      // A throwing listener must not turn a working request into a failed one.
    }
  }

  /** `<prefix><kind>:<base64url SHA-256 of the core's cache key>`: fixed length, and no client id or tenant in KEYS output. */
  #key(kind: "token" | "lock", cacheKey: string): Promise<string> {
    let id = this.#redisIds.get(cacheKey);
    if (id === undefined) {
      if (this.#redisIds.size >= MAX_MEMO) this.#redisIds.clear();
      id = crypto.subtle.digest("SHA-256", new TextEncoder().encode(cacheKey)).then((hash) => base64url(new Uint8Array(hash)));
      this.#redisIds.set(cacheKey, id);
    }
    return id.then((hashed) => `${this.#config.keyPrefix}${kind}:${hashed}`);
  }

  #remember(redisKey: string, raw: string, token: StoredToken | undefined): void {
    if (this.#memo.size >= MAX_MEMO && !this.#memo.has(redisKey)) this.#memo.clear();
    this.#memo.set(redisKey, { raw, token });
  }

  /** `v1.` + base64url(iv ‖ ciphertext ‖ tag); the Redis key is the associated data. */
  async #encrypt(redisKey: string, token: StoredToken): Promise<string> {
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(redisKey) },
      await this.#aesKey,
      new TextEncoder().encode(JSON.stringify(token)),
    );
    const out = new Uint8Array(IV_BYTES + sealed.byteLength);
    out.set(iv);
    out.set(new Uint8Array(sealed), IV_BYTES);
    return FORMAT + base64url(out);
  }

  /** The token in `raw`, or undefined for anything that does not decrypt, parse and validate. */
  async #decrypt(redisKey: string, raw: string): Promise<StoredToken | undefined> {
    try {
      if (!raw.startsWith(FORMAT)) return undefined;
      const bytes = fromBase64url(raw.slice(FORMAT.length));
      if (bytes === undefined || bytes.byteLength < IV_BYTES + TAG_BYTES) return undefined;
      const plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: bytes.subarray(0, IV_BYTES), additionalData: new TextEncoder().encode(redisKey) },
        await this.#aesKey,
        bytes.subarray(IV_BYTES),
      );
      const value: unknown = JSON.parse(new TextDecoder().decode(plain));
      if (!isStoredToken(value)) return undefined;
      return { accessToken: value.accessToken, expiresAt: value.expiresAt, refreshAt: value.refreshAt, obtainedAt: value.obtainedAt, cacheKey: value.cacheKey };
    } catch {
      return undefined;
    }
  }
}

/** The AES-256-GCM key, derived with HKDF-SHA-256 (RFC 5869) and not extractable. */
async function deriveKey(secret: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveKey"]);
  secret.fill(0); // our own copy: the imported key is all that is needed from here on
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: HKDF_SALT, info: HKDF_INFO },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
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
