import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { createClient } from "redis";
import { describe, expect, it, onTestFinished } from "vitest";
import { createTokenRefreshInterceptor, InvalidOptionError, type StoredToken } from "../src/index.js";
import { createRedisTokenStore, type RedisClientLike, type RedisStoreOperation, type RedisTokenStoreOptions } from "../src/redis.js";
import { connectRedis, redisSuite, skipRedis, uniquePrefix, type ClientKind } from "./helpers/redis.js";
import { startTokenServer } from "./helpers/servers.js";

const KEY = "0123456789abcdef-test-encryption-key";
const CACHE_KEY = "axios-token-refresh:test";

function storedToken(accessToken: string, lifetimeMs = 60_000): StoredToken {
  const obtainedAt = Date.now();
  return { accessToken, obtainedAt, expiresAt: obtainedAt + lifetimeMs, refreshAt: obtainedAt + lifetimeMs / 2, cacheKey: CACHE_KEY };
}

/** A store on a fresh key prefix, and the Redis it writes to. */
async function setup(kind: ClientKind, options: Partial<RedisTokenStoreOptions> = {}) {
  const keyPrefix = uniquePrefix(kind);
  const redis = await connectRedis(kind, keyPrefix);
  const errors: [RedisStoreOperation, string][] = [];
  const store = createRedisTokenStore({
    client: redis.client,
    encryptionKey: KEY,
    keyPrefix,
    onError: (error, operation) => errors.push([operation, error.message]),
    ...options,
  });
  const only = async (kindOfKey: "token" | "lock"): Promise<string> => {
    const keys = await redis.keys(`${keyPrefix}${kindOfKey}:*`);
    expect(keys).toHaveLength(1);
    return keys[0] as string;
  };
  return { redis, store, keyPrefix, errors, only };
}

describe("createRedisTokenStore options", () => {
  const client = { get() {}, set() {}, del() {}, eval() {}, defineCommand() {} } as unknown as RedisClientLike;

  it.each([
    ["no secret at all", { client }],
    ["both secrets", { client, encryptionKey: KEY, clientSecret: KEY }],
    ["a short encryption key", { client, encryptionKey: "short" }],
    ["a short client secret", { client, clientSecret: "s3cret" }],
    ["something that is not a Redis client", { client: { get() {} } as unknown as RedisClientLike, encryptionKey: KEY }],
    ["a zero command timeout", { client, encryptionKey: KEY, commandTimeoutMs: 0 }],
  ])("refuses %s with an InvalidOptionError", (_name, options) => {
    expect(() => createRedisTokenStore(options as RedisTokenStoreOptions)).toThrow(InvalidOptionError);
  });

  it("accepts a Uint8Array key and either client shape, without connecting", () => {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const io = new Redis({ lazyConnect: true });
    onTestFinished(() => io.disconnect());
    expect(createRedisTokenStore({ client: io, encryptionKey: bytes }).acquireRefreshLock).toBeTypeOf("function");
    expect(createRedisTokenStore({ client: createClient(), clientSecret: KEY }).releaseRefreshLock).toBeTypeOf("function");
  });
});

describe.skipIf(skipRedis).each<ClientKind>(["ioredis", "node-redis"])(redisSuite("Redis token store with %s"), (kind) => {
  it("round-trips a token, and a second store on the same Redis reads it", async () => {
    const { redis, store, keyPrefix } = await setup(kind);
    const token = storedToken("round-trip-token");
    await store.set(CACHE_KEY, token);
    expect(await store.get(CACHE_KEY)).toEqual(token);
    const other = createRedisTokenStore({ client: redis.client, encryptionKey: KEY, keyPrefix });
    expect(await other.get(CACHE_KEY)).toEqual(token);
    expect(await other.get("another-cache-key")).toBeUndefined();
  });

  it("stores with PX set to the token's remaining lifetime, and skips expired tokens", async () => {
    const { redis, store, keyPrefix, only } = await setup(kind);
    await store.set(CACHE_KEY, storedToken("px-token", 30_000));
    const pttl = await redis.pttl(await only("token"));
    expect(pttl).toBeGreaterThan(29_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
    await store.set("expired", { ...storedToken("old", 1000), expiresAt: Date.now() - 1 });
    expect(await redis.keys(`${keyPrefix}*`)).toHaveLength(1);
  });

  it("keeps the token encrypted in Redis: the raw value holds neither token nor field names", async () => {
    const { redis, store, only } = await setup(kind);
    await store.set(CACHE_KEY, storedToken("plain-secret-access-token"));
    const key = await only("token");
    expect(key).not.toContain(CACHE_KEY); // the cache key is hashed into the Redis key
    const raw = (await redis.rawGet(key)) ?? "";
    expect(raw).toMatch(/^v1\.[A-Za-z0-9_-]{40,}$/);
    for (const plain of ["plain-secret-access-token", "accessToken", "expiresAt"]) expect(raw).not.toContain(plain);
  });

  it("treats a value encrypted with another key as a miss and reports it, never throws", async () => {
    const { redis, store, keyPrefix, errors } = await setup(kind);
    await store.set(CACHE_KEY, storedToken("token-under-key-a"));
    const otherErrors: RedisStoreOperation[] = [];
    const wrongKey = createRedisTokenStore({
      client: redis.client,
      encryptionKey: "another-key-entirely-0123456789",
      keyPrefix,
      onError: (_error, operation) => otherErrors.push(operation),
    });
    await expect(wrongKey.get(CACHE_KEY)).resolves.toBeUndefined();
    await expect(wrongKey.get(CACHE_KEY)).resolves.toBeUndefined();
    expect(otherErrors).toEqual(["get"]); // once per stored value, not once per request
    const derived = createRedisTokenStore({ client: redis.client, clientSecret: "client-secret-0123456789", keyPrefix });
    await expect(derived.get(CACHE_KEY)).resolves.toBeUndefined();
    expect(errors).toEqual([]);
  });

  it("treats garbage, a tampered value and a value moved to another key as misses", async () => {
    const { redis, store, only } = await setup(kind);
    await store.set(CACHE_KEY, storedToken("tamper-token"));
    const key = await only("token");
    const sealed = (await redis.rawGet(key)) as string;
    await store.set("second-key", storedToken("second-token"));
    const second = (await redis.keys(key.replace(/token:.*/, "token:*"))).find((k) => k !== key) as string;
    await redis.rawSet(second, sealed); // a valid ciphertext under the wrong Redis key (associated data)
    await expect(store.get("second-key")).resolves.toBeUndefined();
    const flipped = sealed.slice(0, -2) + (sealed.endsWith("A") ? "B" : "A") + sealed.slice(-1);
    for (const bad of ["not-ours", "v1.", "v1.!!!", flipped, `v1.${"A".repeat(60)}`]) {
      await redis.rawSet(key, bad);
      await expect(store.get(CACHE_KEY)).resolves.toBeUndefined();
    }
  });

  it("deletes the token", async () => {
    const { store } = await setup(kind);
    await store.set(CACHE_KEY, storedToken("to-delete"));
    await store.delete(CACHE_KEY);
    expect(await store.get(CACHE_KEY)).toBeUndefined();
  });

  it("locks with SET NX PX and releases only with the holder's id", async () => {
    const { redis, store, only } = await setup(kind, { lockTtlMs: 5000 });
    const lockId = await store.acquireRefreshLock(CACHE_KEY, 60_000);
    expect(lockId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    await expect(store.acquireRefreshLock(CACHE_KEY, 60_000)).resolves.toBeUndefined();
    const lockKey = await only("lock");
    const pttl = await redis.pttl(lockKey);
    expect(pttl).toBeGreaterThan(4000);
    expect(pttl).toBeLessThanOrEqual(5000);
    await store.releaseRefreshLock(CACHE_KEY, "not-the-holder");
    expect(await redis.rawGet(lockKey)).toBe(lockId);
    await store.releaseRefreshLock(CACHE_KEY, lockId as string);
    expect(await redis.rawGet(lockKey)).toBeNull();
    const again = await store.acquireRefreshLock(CACHE_KEY, 60_000);
    expect(again).toBeTypeOf("string");
    expect(again).not.toBe(lockId);
  });

  it.each([
    [1000, 500],
    [10_000, 2000],
  ])("gives the lock half the %i ms the interceptor asks for, at most 2 s, by default", async (askedMs, expectedMs) => {
    const { redis, store, only } = await setup(kind);
    await store.acquireRefreshLock(CACHE_KEY, askedMs);
    const pttl = await redis.pttl(await only("lock"));
    expect(pttl).toBeGreaterThan(expectedMs - 200);
    expect(pttl).toBeLessThanOrEqual(expectedMs);
  });

  it("renews a held lock until released, and never past the interceptor's budget", async () => {
    const { redis, store, keyPrefix } = await setup(kind, { lockTtlMs: 200 });
    const held = (await store.acquireRefreshLock("held", 5000)) as string;
    await store.acquireRefreshLock("bounded", 450);
    await new Promise((resolve) => setTimeout(resolve, 700));
    const lockKeys = (await redis.keys(`${keyPrefix}lock:*`)).sort();
    expect(lockKeys).toHaveLength(1); // "bounded" expired once its 450 ms budget was spent; "held" lives on
    expect(await redis.rawGet(lockKeys[0] as string)).toBe(held);
    await store.releaseRefreshLock("held", held);
    expect(await redis.keys(`${keyPrefix}lock:*`)).toEqual([]);
  });

  it("shares one token between two interceptors with their own stores: one token request", async () => {
    const { redis, keyPrefix } = await setup(kind);
    const server = await startTokenServer();
    const options = { tokenUrl: server.url, clientId: "shared", clientSecret: "shared-client-secret-0123" };
    const [first, second] = [1, 2].map(() =>
      createTokenRefreshInterceptor({ ...options, store: createRedisTokenStore({ client: redis.client, clientSecret: options.clientSecret, keyPrefix }) }),
    ) as [ReturnType<typeof createTokenRefreshInterceptor>, ReturnType<typeof createTokenRefreshInterceptor>];
    onTestFinished(() => [first, second].forEach((auth) => auth.dispose()));
    expect(await first.getAccessToken()).toBe("token-1");
    expect(await second.getAccessToken()).toBe("token-1");
    expect(server.count).toBe(1);
  });
});

/** A TCP server that accepts connections and never answers: a hung Redis. */
async function startHungRedis(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return `redis://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function hungClient(kind: ClientKind): Promise<RedisClientLike> {
  const url = await startHungRedis();
  if (kind === "ioredis") {
    const client = new Redis(url, { maxRetriesPerRequest: null });
    client.on("error", () => {});
    onTestFinished(() => client.disconnect());
    return client;
  }
  const client = createClient({ url, socket: { reconnectStrategy: false } });
  client.on("error", () => {});
  void client.connect().catch(() => {});
  onTestFinished(() => {
    if (client.isOpen) client.destroy();
  });
  return client;
}

describe.each<ClientKind>(["ioredis", "node-redis"])("a hung Redis behind %s", (kind) => {
  it("fails each command within commandTimeoutMs, then fails fast during the cool-down", async () => {
    const operations: RedisStoreOperation[] = [];
    const store = createRedisTokenStore({
      client: await hungClient(kind),
      encryptionKey: KEY,
      commandTimeoutMs: 150,
      onError: (_error, operation) => operations.push(operation),
    });
    let startedAt = Date.now();
    await expect(store.get(CACHE_KEY)).rejects.toThrow(/timed out after 150 ms/);
    expect(Date.now() - startedAt).toBeLessThan(1000);
    startedAt = Date.now();
    await expect(store.acquireRefreshLock(CACHE_KEY, 1000)).rejects.toThrow(/skipped/);
    expect(Date.now() - startedAt).toBeLessThan(50);
    expect(operations).toEqual(["get"]);
  });

  it("costs a request one command timeout: the core fetches directly and serves from memory", async () => {
    const server = await startTokenServer();
    const operations: RedisStoreOperation[] = [];
    const store = createRedisTokenStore({
      client: await hungClient(kind),
      clientSecret: "client-secret-0123456789",
      commandTimeoutMs: 150,
      onError: (_error, operation) => operations.push(operation),
    });
    const auth = createTokenRefreshInterceptor({ tokenUrl: server.url, clientId: "c", clientSecret: "client-secret-0123456789", store });
    onTestFinished(() => auth.dispose());
    const startedAt = Date.now();
    expect(await auth.getAccessToken()).toBe("token-1");
    expect(Date.now() - startedAt).toBeLessThan(1000);
    expect(await auth.getAccessToken()).toBe("token-1");
    expect(server.count).toBe(1);
    expect(operations).toEqual(["get"]);
  });

  it("without a cool-down, a lock that cannot be taken makes the core fetch directly", async () => {
    const server = await startTokenServer();
    const operations: RedisStoreOperation[] = [];
    const store = createRedisTokenStore({
      client: await hungClient(kind),
      encryptionKey: KEY,
      commandTimeoutMs: 100,
      cooldownMs: 0,
      onError: (_error, operation) => operations.push(operation),
    });
    const auth = createTokenRefreshInterceptor({ tokenUrl: server.url, clientId: "c", clientSecret: "s", store, timeoutMs: 5000 });
    onTestFinished(() => auth.dispose());
    expect(await auth.getAccessToken()).toBe("token-1");
    expect(server.count).toBe(1);
    expect(operations).toEqual(["get", "acquireRefreshLock", "set"]);
  });
});
