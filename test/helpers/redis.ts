/**
 * Where the Redis tests find their servers: `REDIS_URL` (one node) and `REDIS_CLUSTER_URLS` (the
 * comma-separated nodes of a Redis Cluster). Without them the tests are skipped locally, with a
 * message saying how to run them; in CI (`CI=true`) a missing Redis fails them instead.
 */
import { Cluster, Redis } from "ioredis";
import { createClient, createCluster } from "redis";
import { onTestFinished } from "vitest";
import type { RedisClientLike } from "../../src/redis.js";

const fromEnv = (name: string): string | undefined => (process.env[name] === "" ? undefined : process.env[name]);

/** The Redis the tests use, e.g. redis://127.0.0.1:6390. */
export const redisUrl: string | undefined = fromEnv("REDIS_URL");

/** The nodes of the Redis Cluster the tests use, e.g. redis://127.0.0.1:7001,redis://127.0.0.1:7002. */
export const redisClusterUrls: string[] | undefined = fromEnv("REDIS_CLUSTER_URLS")
  ?.split(",")
  .map((url) => url.trim())
  .filter((url) => url !== "");

const inCI = process.env.CI === "true";

/** Which Redis a test talks to. */
export type RedisTarget = "single" | "cluster";

const missing = (target: RedisTarget): boolean => (target === "single" ? redisUrl === undefined : (redisClusterUrls ?? []).length === 0);

/** True when the Redis tests should be skipped: no REDIS_URL, and not in CI. */
export const skipRedis = missing("single") && !inCI;

/** True when the Redis Cluster tests should be skipped: no REDIS_CLUSTER_URLS, and not in CI. */
export const skipRedisCluster = missing("cluster") && !inCI;

/** Whether the tests on `target` should be skipped. */
export const skipTarget = (target: RedisTarget): boolean => (target === "single" ? skipRedis : skipRedisCluster);

/** How to run the Redis tests; shown in the skipped suite's title. */
export const HOW_TO_RUN = "start a redis-server and run: REDIS_URL=redis://127.0.0.1:PORT npm test";
const HOW_TO_RUN_CLUSTER =
  "start a 3-node Redis Cluster (see .ci/run) and run: REDIS_CLUSTER_URLS=redis://127.0.0.1:P1,redis://127.0.0.1:P2,… npm test";

if (skipRedis) process.stderr.write(`[redis tests skipped] no REDIS_URL: ${HOW_TO_RUN}\n`);
if (skipRedisCluster) process.stderr.write(`[redis cluster tests skipped] no REDIS_CLUSTER_URLS: ${HOW_TO_RUN_CLUSTER}\n`);

/** Title for a Redis suite, saying why it was skipped when it was. */
export function redisSuite(name: string, target: RedisTarget = "single"): string {
  if (!skipTarget(target)) return name;
  return target === "single"
    ? `${name} (skipped: no REDIS_URL; ${HOW_TO_RUN})`
    : `${name} (skipped: no REDIS_CLUSTER_URLS; ${HOW_TO_RUN_CLUSTER})`;
}

/** The URL, or a failure that says what is missing (CI without a Redis must fail, not skip). */
export function requireRedisUrl(): string {
  if (redisUrl === undefined) {
    throw new Error(`CI=true but REDIS_URL is not set: the Redis tests must run in CI (${HOW_TO_RUN})`);
  }
  return redisUrl;
}

/** The cluster's node URLs, or a failure that says what is missing. */
export function requireRedisClusterUrls(): string[] {
  if (redisClusterUrls === undefined || redisClusterUrls.length === 0) {
    throw new Error(`CI=true but REDIS_CLUSTER_URLS is not set: the Redis Cluster tests must run in CI (${HOW_TO_RUN_CLUSTER})`);
  }
  return redisClusterUrls;
}

/** Which client library a test drives. */
export type ClientKind = "ioredis" | "node-redis";

/** A connected client of either library plus a raw view for assertions; closed when the test ends. */
export interface TestRedis {
  client: RedisClientLike;
  target: RedisTarget;
  /** GET without the store: what an attacker with Redis access reads. */
  rawGet(key: string): Promise<string | null>;
  /** SET without the store; without `pxMs` the key never expires. */
  rawSet(key: string, value: string, pxMs?: number): Promise<void>;
  pttl(key: string): Promise<number>;
  /** KEYS on every node (every master of a cluster). */
  keys(pattern: string): Promise<string[]>;
  del(key: string): Promise<void>;
  /** EVAL of a script over several keys, as a script of ours would run; on a cluster it fails unless they share a slot. */
  evalOnKeys(script: string, keys: string[]): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Connects a client of `kind` to REDIS_URL (or the cluster); when the current test finishes,
 * deletes the keys under `cleanPrefix` (if given) and closes the client.
 */
export async function connectRedis(kind: ClientKind, cleanPrefix?: string, target: RedisTarget = "single"): Promise<TestRedis> {
  let redis: TestRedis;
  if (target === "single") {
    const url = requireRedisUrl();
    redis = kind === "ioredis" ? await connectIoRedis(url) : await connectNodeRedis(url);
  } else {
    const urls = requireRedisClusterUrls();
    redis = kind === "ioredis" ? await connectIoRedisCluster(urls) : await connectNodeRedisCluster(urls);
  }
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
    target: "single",
    rawGet: (key) => client.get(key),
    rawSet: async (key, value, pxMs) => {
      await (pxMs === undefined ? client.set(key, value) : client.set(key, value, "PX", pxMs));
    },
    pttl: (key) => client.pttl(key),
    keys: (pattern) => client.keys(pattern),
    del: async (key) => {
      await client.del(key);
    },
    evalOnKeys: (script, keys) => client.eval(script, keys.length, ...keys),
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
    target: "single",
    rawGet: (key) => client.get(key),
    rawSet: async (key, value, pxMs) => {
      await client.set(key, value, pxMs === undefined ? {} : { PX: pxMs });
    },
    pttl: (key) => client.pTTL(key),
    keys: (pattern) => client.keys(pattern),
    del: async (key) => {
      await client.del(key);
    },
    evalOnKeys: (script, keys) => client.eval(script, { keys, arguments: [] }),
    close: async () => {
      if (client.isOpen) client.destroy();
    },
  };
}

function hostAndPort(url: string): { host: string; port: number } {
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port) };
}

async function connectIoRedisCluster(urls: string[]): Promise<TestRedis> {
  const client = new Cluster(urls.map(hostAndPort), { lazyConnect: true, redisOptions: { maxRetriesPerRequest: 1 } });
  client.on("error", () => {});
  await client.connect();
  return {
    client,
    target: "cluster",
    rawGet: (key) => client.get(key),
    rawSet: async (key, value, pxMs) => {
      await (pxMs === undefined ? client.set(key, value) : client.set(key, value, "PX", pxMs));
    },
    pttl: (key) => client.pttl(key),
    keys: async (pattern) => (await Promise.all(client.nodes("master").map((node) => node.keys(pattern)))).flat(),
    del: async (key) => {
      await client.del(key);
    },
    evalOnKeys: (script, keys) => client.eval(script, keys.length, ...keys),
    close: async () => {
      client.disconnect();
    },
  };
}

async function connectNodeRedisCluster(urls: string[]): Promise<TestRedis> {
  const client = createCluster({ rootNodes: urls.map((url) => ({ url })) });
  client.on("error", () => {});
  await client.connect();
  return {
    client,
    target: "cluster",
    rawGet: (key) => client.get(key),
    rawSet: async (key, value, pxMs) => {
      await client.set(key, value, pxMs === undefined ? {} : { PX: pxMs });
    },
    pttl: (key) => client.pTTL(key),
    keys: async (pattern) => {
      const found: string[] = [];
      for (const master of client.masters) found.push(...(await (await client.nodeClient(master)).keys(pattern)));
      return found;
    },
    del: async (key) => {
      await client.del(key);
    },
    evalOnKeys: (script, keys) => client.eval(script, { keys, arguments: [] }),
    close: async () => {
      client.destroy();
    },
  };
}

/** A key prefix no other test run uses, so tests never see each other's keys. */
export function uniquePrefix(label: string): string {
  return `atr-test:${label}:${process.pid}:${Date.now().toString(36)}:${Math.random().toString(36).slice(2, 8)}:`;
}
