/**
 * Where the Redis tests find their server: `REDIS_URL`. Without it they are skipped locally, with a
 * message saying how to run them; in CI (`CI=true`) a missing Redis fails them instead.
 */
import { Redis } from "ioredis";
import { createClient } from "redis";
import { onTestFinished } from "vitest";
import type { RedisClientLike } from "../../src/redis.js";

/** The Redis the tests use, e.g. redis://127.0.0.1:6390. */
export const redisUrl: string | undefined = process.env.REDIS_URL === "" ? undefined : process.env.REDIS_URL;

const inCI = process.env.CI === "true";

/** True when the Redis tests should be skipped: no REDIS_URL, and not in CI. */
export const skipRedis = redisUrl === undefined && !inCI;

/** How to run the Redis tests; shown in the skipped suite's title. */
export const HOW_TO_RUN = "start a redis-server and run: REDIS_URL=redis://127.0.0.1:PORT npm test";

if (skipRedis) process.stderr.write(`[redis tests skipped] no REDIS_URL: ${HOW_TO_RUN}\n`);

/** Title for a Redis suite, saying why it was skipped when it was. */
export function redisSuite(name: string): string {
  return skipRedis ? `${name} (skipped: no REDIS_URL; ${HOW_TO_RUN})` : name;
}

/** The URL, or a failure that says what is missing (CI without a Redis must fail, not skip). */
export function requireRedisUrl(): string {
  if (redisUrl === undefined) {
    throw new Error(`CI=true but REDIS_URL is not set: the Redis tests must run in CI (${HOW_TO_RUN})`);
  }
  return redisUrl;
}

/** Which client library a test drives. */
export type ClientKind = "ioredis" | "node-redis";

/** A connected client of either library plus a raw view for assertions; closed when the test ends. */
export interface TestRedis {
  client: RedisClientLike;
  /** GET without the store: what an attacker with Redis access reads. */
  rawGet(key: string): Promise<string | null>;
  rawSet(key: string, value: string): Promise<void>;
  pttl(key: string): Promise<number>;
  keys(pattern: string): Promise<string[]>;
  del(key: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Connects a client of `kind` to REDIS_URL; when the current test finishes, deletes the keys under
 * `cleanPrefix` (if given) and closes the client.
 */
export async function connectRedis(kind: ClientKind, cleanPrefix?: string): Promise<TestRedis> {
  const url = requireRedisUrl();
  const redis = kind === "ioredis" ? await connectIoRedis(url) : await connectNodeRedis(url);
  onTestFinished(async () => {
    try {
      if (cleanPrefix !== undefined) for (const key of await redis.keys(`${cleanPrefix}*`)) await redis.del(key);
    } finally {
      await redis.close();
    }
  });
  return redis;
}

async function connectIoRedis(url: string): Promise<TestRedis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  return {
    client,
    rawGet: (key) => client.get(key),
    rawSet: async (key, value) => {
      await client.set(key, value);
    },
    pttl: (key) => client.pttl(key),
    keys: (pattern) => client.keys(pattern),
    del: async (key) => {
      await client.del(key);
    },
    close: async () => {
      client.disconnect();
    },
  };
}

async function connectNodeRedis(url: string): Promise<TestRedis> {
  const client = createClient({ url });
  client.on("error", () => {}); // reconnect noise; a test that needs Redis fails on its own
  await client.connect();
  return {
    client,
    rawGet: (key) => client.get(key),
    rawSet: async (key, value) => {
      await client.set(key, value);
    },
    pttl: (key) => client.pTTL(key),
    keys: (pattern) => client.keys(pattern),
    del: async (key) => {
      await client.del(key);
    },
    close: async () => {
      if (client.isOpen) client.destroy();
    },
  };
}

/** A key prefix no other test run uses, so tests never see each other's keys. */
export function uniquePrefix(label: string): string {
  return `atr-test:${label}:${process.pid}:${Date.now().toString(36)}:${Math.random().toString(36).slice(2, 8)}:`;
}
