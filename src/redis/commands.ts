/**
 * The Redis commands the store sends, whichever client library sends them: ioredis or node-redis,
 * single node or cluster, recognised by their methods (neither is imported). Every write and every
 * compare is one Lua script on one key, so it is atomic, on a cluster too.
 */
import { InvalidOptionError } from "../errors.js";

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

/** The three commands the store needs, whichever client library sends them; every write is a script. */
export interface RedisCommands {
  get(key: string): Promise<string | undefined>;
  del(key: string): Promise<void>;
  /** EVAL with one key; returns the script's reply. A cluster client routes it by that key. */
  evalOnKey(script: string, key: string, args: string[]): Promise<unknown>;
}

// Each script touches one key; the keys of one cache key share a hash tag, so they live on one
// cluster slot and a script reading two of them would work there too.

// Both lock scripts act only if the lock still holds our id: a holder whose lock expired and was
// taken by another process must neither release nor prolong the new holder's lock.
export const COMPARE_AND_DELETE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;
export const COMPARE_AND_EXTEND = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;

// ARGV: lock id, its TTL, the longest TTL a holder ever sets. A lock without expiry (a SET without
// PX by a script, a failover) or with more left than any holder sets would make every cold cache
// wait for the waiters' own give-up; cut to the longest TTL, it frees within one TTL unless its
// holder is alive and renews it. Returns 1 when acquired, -1 when it cut a lock, 0 otherwise.
export const ACQUIRE_LOCK = `
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
export const SET_IF_NOT_OLDER = `
local current = redis.call("GET", KEYS[1])
if current then
  local stored = tonumber(string.match(current, "^v2%.(%d+)%."))
  if stored and stored > tonumber(ARGV[2]) and stored <= tonumber(ARGV[4]) then return 0 end
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
return 1`;

// ARGV: the HMAC of the access token. The value holds that HMAC next to the ciphertext, as the
// ciphertext itself differs on every write (random IV) and Lua has no key to decrypt it.
export const DELETE_IF_CURRENT = `
local current = redis.call("GET", KEYS[1])
if current and string.match(current, "^v2%.%d+%.([%w_%-]+)%.") == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`;

// ARGV: value, its until, its TTL. A later until wins, so two replicas throttled at once keep the longer wait.
export const SET_THROTTLE = `
local current = redis.call("GET", KEYS[1])
if current then
  local stored = tonumber(string.match(current, "^(%d+)%."))
  if stored and stored >= tonumber(ARGV[2]) then return 0 end
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
return 1`;

export function adaptClient(client: unknown): RedisCommands {
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
