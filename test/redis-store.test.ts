import { createHash } from "node:crypto";
import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { Cluster, Redis } from "ioredis";
import { createClient, createCluster } from "redis";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { createTokenRefreshInterceptor, InvalidOptionError, type StoredToken } from "../src/index.js";
import { createRedisTokenStore, type RedisClientLike, type RedisStoreOperation, type RedisTokenStoreOptions } from "../src/redis.js";
import { connectRedis, redisSuite, skipTarget, uniquePrefix, type ClientKind, type RedisTarget } from "./helpers/redis.js";
import { startTokenServer } from "./helpers/servers.js";

const KEY = "0123456789abcdef-test-encryption-key";
const OTHER_KEY = "another-key-entirely-0123456789";
const CACHE_KEY = "axios-token-refresh:test";
const HOUR_MS = 3_600_000;
/** `v2.<obtainedAt>.<HMAC tag>.<iv ‖ ciphertext ‖ GCM tag>` */
const VALUE_FORMAT = /^v2\.(\d+)\.([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{40,}$/;
/** `<prefix>{<fingerprint>.<id>}:<kind>` */
const KEY_FORMAT = /^(.*)\{([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{43})\}:(token|lock|throttle)$/;

function storedToken(accessToken: string, lifetimeMs = 60_000, obtainedAt = Date.now()): StoredToken {
  return { accessToken, obtainedAt, expiresAt: obtainedAt + lifetimeMs, refreshAt: obtainedAt + lifetimeMs / 2, cacheKey: CACHE_KEY };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Moves the wall clock (Date.now) by `offsetMs` from now on; restored after the test (restoreMocks). */
function stepWallClock(offsetMs: number): void {
  const realNow = Date.now.bind(Date);
  vi.spyOn(Date, "now").mockImplementation(() => realNow() + offsetMs);
}

const base64url = (bytes: Buffer): string => bytes.toString("base64url");

/** A store on a fresh key prefix, and the Redis it writes to. */
async function setup(kind: ClientKind, target: RedisTarget, options: Partial<RedisTokenStoreOptions> = {}) {
  const keyPrefix = uniquePrefix(kind);
  const redis = await connectRedis(kind, keyPrefix, target);
  const errors: [RedisStoreOperation, string][] = [];
  const store = createRedisTokenStore({
    client: redis.client,
    encryptionKey: KEY,
    keyPrefix,
    onError: (error, operation) => errors.push([operation, error.message]),
    ...options,
  });
  /** The one key of this kind under the prefix. */
  const only = async (kindOfKey: "token" | "lock" | "throttle"): Promise<string> => {
    const keys = await redis.keys(`${keyPrefix}*:${kindOfKey}`);
    expect(keys).toHaveLength(1);
    return keys[0] as string;
  };
  /** Another store on the same Redis and prefix. */
  const another = (extra: Partial<RedisTokenStoreOptions> = {}) =>
    createRedisTokenStore({ client: redis.client, encryptionKey: KEY, keyPrefix, ...extra });
  return { redis, store, keyPrefix, errors, only, another };
}

describe("createRedisTokenStore options", () => {
  const client = { get() {}, del() {}, eval() {}, defineCommand() {} } as unknown as RedisClientLike;

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
    const store = createRedisTokenStore({ client: io, encryptionKey: bytes });
    for (const method of ["acquireRefreshLock", "deleteIfCurrent", "setThrottle", "getThrottle"] as const)
      expect(store[method]).toBeTypeOf("function");
    expect(createRedisTokenStore({ client: createClient(), clientSecret: KEY }).releaseRefreshLock).toBeTypeOf("function");
  });

  it("accepts ioredis Cluster and node-redis createCluster clients, without connecting", () => {
    const cluster = new Cluster([{ host: "127.0.0.1", port: 1 }], { lazyConnect: true });
    onTestFinished(() => cluster.disconnect());
    expect(createRedisTokenStore({ client: cluster, encryptionKey: KEY }).getThrottle).toBeTypeOf("function");
    const nodeCluster = createCluster({ rootNodes: [{ url: "redis://127.0.0.1:1" }] });
    expect(createRedisTokenStore({ client: nodeCluster, encryptionKey: KEY }).deleteIfCurrent).toBeTypeOf("function");
  });
});

for (const target of ["single", "cluster"] as const satisfies readonly RedisTarget[]) {
  describe.skipIf(skipTarget(target)).each<ClientKind>(["ioredis", "node-redis"])(
    redisSuite(`Redis token store (${target}) with %s`, target),
    (kind) => {
      it("round-trips a token with its cache key, and a second store on the same Redis reads it", async () => {
        const { store, another } = await setup(kind, target);
        const token = storedToken("round-trip-token");
        await store.set(CACHE_KEY, token);
        expect(await store.get(CACHE_KEY)).toEqual(token);
        const read = await another().get(CACHE_KEY);
        expect(read).toEqual(token);
        expect(read?.cacheKey).toBe(CACHE_KEY);
        expect(await another().get("another-cache-key")).toBeUndefined();
      });

      it("stores with PX set to the token's remaining lifetime, and skips expired tokens", async () => {
        const { redis, store, keyPrefix, only } = await setup(kind, target);
        await store.set(CACHE_KEY, storedToken("px-token", 30_000));
        const pttl = await redis.pttl(await only("token"));
        expect(pttl).toBeGreaterThan(29_000);
        expect(pttl).toBeLessThanOrEqual(30_000);
        await store.set("expired", { ...storedToken("old", 1000), expiresAt: Date.now() - 1 });
        expect(await redis.keys(`${keyPrefix}*`)).toHaveLength(1);
      });

      it("keeps the token encrypted: Redis holds obtainedAt and a keyed tag in clear, never the token or a plain hash of it", async () => {
        const { redis, store, only, another } = await setup(kind, target);
        const token = storedToken("plain-secret-access-token");
        await store.set(CACHE_KEY, token);
        const key = await only("token");
        expect(key).not.toContain(CACHE_KEY); // the cache key is hashed into the Redis key
        const raw = (await redis.rawGet(key)) ?? "";
        const [, obtainedAt, tag] = VALUE_FORMAT.exec(raw) ?? [];
        expect(Number(obtainedAt)).toBe(token.obtainedAt);
        for (const plain of ["plain-secret-access-token", "accessToken", "expiresAt", CACHE_KEY]) expect(raw).not.toContain(plain);
        // Anyone can hash a guessed token; only holders of the secret can compute the tag.
        const sha256 = createHash("sha256").update(token.accessToken).digest();
        expect(raw).not.toContain(base64url(sha256).slice(0, 22));
        expect(raw).not.toContain(sha256.toString("hex").slice(0, 22));
        // The same token under another secret gets another tag, in a Redis key of its own.
        await another({ encryptionKey: OTHER_KEY }).set(CACHE_KEY, token);
        const keys = await redis.keys(key.replace(/\{.*$/, "*:token"));
        expect(keys).toHaveLength(2);
        const otherRaw = (await redis.rawGet(keys.find((k) => k !== key) as string)) ?? "";
        expect(VALUE_FORMAT.exec(otherRaw)?.[2]).not.toBe(tag);
      });

      it("names keys <prefix>{<fingerprint>.<id>}:kind, the keys of one cache key in one hash slot", async () => {
        const { redis, store, keyPrefix, only, another } = await setup(kind, target);
        await store.set(CACHE_KEY, storedToken("layout-token"));
        const lockId = await store.acquireRefreshLock(CACHE_KEY, 10_000);
        await store.setThrottle(CACHE_KEY, Date.now() + 10_000);
        const keys = await Promise.all((["token", "lock", "throttle"] as const).map((kindOfKey) => only(kindOfKey)));
        const parts = keys.map((key) => KEY_FORMAT.exec(key));
        for (const part of parts) expect(part?.[1]).toBe(keyPrefix);
        const tags = new Set(parts.map((part) => `${part?.[2]}.${part?.[3]}`));
        expect(tags.size).toBe(1);
        // A script over all three keys runs: on a cluster it would fail with CROSSSLOT otherwise.
        await expect(redis.evalOnKeys(`return redis.call("EXISTS", KEYS[1], KEYS[2], KEYS[3])`, keys)).resolves.toBe(3);
        const fingerprint = parts[0]?.[2] as string;
        for (const secret of [KEY, base64url(Buffer.from(KEY)), base64url(createHash("sha256").update(KEY).digest())]) {
          expect(secret).not.toContain(fingerprint);
        }
        // Another cache key: same fingerprint, another id. Another secret: another fingerprint.
        await store.set("second-cache-key", storedToken("second"));
        await another({ encryptionKey: OTHER_KEY }).set(CACHE_KEY, storedToken("other-group"));
        const tokenKeys = (await redis.keys(`${keyPrefix}*:token`)).map((key) => KEY_FORMAT.exec(key));
        expect(tokenKeys).toHaveLength(3);
        expect(tokenKeys.filter((part) => part?.[2] === fingerprint)).toHaveLength(2);
        expect(tokenKeys.filter((part) => part?.[3] === parts[0]?.[3])).toHaveLength(2);
        await store.releaseRefreshLock(CACHE_KEY, lockId as string);
      });

      it("gives a store with another key Redis keys of its own: neither group overwrites the other", async () => {
        const { redis, store, keyPrefix, errors, another } = await setup(kind, target);
        const otherErrors: RedisStoreOperation[] = [];
        const otherGroup = another({ encryptionKey: OTHER_KEY, onError: (_error, operation) => otherErrors.push(operation) });
        const mine = storedToken("token-under-key-a");
        await store.set(CACHE_KEY, mine);
        await expect(otherGroup.get(CACHE_KEY)).resolves.toBeUndefined();
        const theirs = storedToken("token-under-key-b");
        await otherGroup.set(CACHE_KEY, theirs);
        await expect(store.get(CACHE_KEY)).resolves.toEqual(mine);
        await expect(otherGroup.get(CACHE_KEY)).resolves.toEqual(theirs);
        const derived = createRedisTokenStore({ client: redis.client, clientSecret: "client-secret-0123456789", keyPrefix });
        await expect(derived.get(CACHE_KEY)).resolves.toBeUndefined();
        expect(await redis.keys(`${keyPrefix}*:token`)).toHaveLength(2);
        expect(errors).toEqual([]);
        expect(otherErrors).toEqual([]);
      });

      it("treats garbage, a tampered value or header, and a value moved to another key as misses, reported once each", async () => {
        const { redis, store, only, errors } = await setup(kind, target);
        await store.set(CACHE_KEY, storedToken("tamper-token"));
        const key = await only("token");
        const sealed = (await redis.rawGet(key)) as string;
        await store.set("second-key", storedToken("second-token"));
        const second = (await redis.keys(key.replace(/\{.*$/, "*:token"))).find((k) => k !== key) as string;
        await redis.rawSet(second, sealed, 60_000); // a valid ciphertext under the wrong Redis key (associated data)
        await expect(store.get("second-key")).resolves.toBeUndefined();
        await expect(store.get("second-key")).resolves.toBeUndefined();
        expect(errors.map(([operation]) => operation)).toEqual(["get"]); // once per stored value, not once per request
        // Replace the next-to-last character (whole bits of the GCM tag; the last may be padding) with another one.
        const flipped = sealed.slice(0, -2) + (sealed.at(-2) === "A" ? "B" : "A") + sealed.slice(-1);
        const olderHeader = sealed.replace(/^v2\.(\d+)\./, (_match, at: string) => `v2.${Number(at) - 1000}.`);
        for (const bad of ["not-ours", "v2.", "v2.1.x.!!!", flipped, olderHeader, `v2.1.${"A".repeat(22)}.${"A".repeat(60)}`]) {
          await redis.rawSet(key, bad, 60_000);
          await expect(store.get(CACHE_KEY)).resolves.toBeUndefined();
        }
      });

      it("deletes the token", async () => {
        const { store } = await setup(kind, target);
        await store.set(CACHE_KEY, storedToken("to-delete"));
        await store.delete(CACHE_KEY);
        expect(await store.get(CACHE_KEY)).toBeUndefined();
      });

      it("fences writes: an older token never replaces a newer one another store wrote", async () => {
        const { redis, store, only, another } = await setup(kind, target);
        const paused = another();
        const older = storedToken("token-1", 60_000, Date.now() - 5_000); // requested before the pause
        const newer = storedToken("token-2", 60_000);
        await store.set(CACHE_KEY, newer);
        const key = await only("token");
        const rawNewer = await redis.rawGet(key);
        await paused.set(CACHE_KEY, older); // the paused holder resumes and stores what it fetched
        expect(await redis.rawGet(key)).toBe(rawNewer);
        const pttl = await redis.pttl(key);
        expect(pttl).toBeGreaterThan(58_000); // still the newer token's expiry, not the older one's (55 s)
        expect(await another().get(CACHE_KEY)).toEqual(newer);
        expect(await paused.get(CACHE_KEY)).toEqual(newer);

        // In order, newer after older, the write lands; so does a token of the same age.
        const newest = storedToken("token-3", 30_000, newer.obtainedAt + 1);
        await paused.set(CACHE_KEY, newest);
        expect(await another().get(CACHE_KEY)).toEqual(newest);
        const sameAge = storedToken("token-4", 30_000, newest.obtainedAt);
        await store.set(CACHE_KEY, sameAge);
        expect(await another().get(CACHE_KEY)).toEqual(sameAge);
      });

      it("does not let a forged or far-future obtainedAt block writes", async () => {
        const { redis, store, only } = await setup(kind, target);
        await store.set(CACHE_KEY, storedToken("token-1"));
        const key = await only("token");
        await redis.rawSet(key, `v2.${Date.now() + 10 * HOUR_MS}.${"A".repeat(22)}.${"A".repeat(60)}`); // no expiry either
        const token = storedToken("token-2");
        await store.set(CACHE_KEY, token);
        expect(await store.get(CACHE_KEY)).toEqual(token);
        expect(await redis.pttl(key)).toBeGreaterThan(58_000);
      });

      it("deleteIfCurrent removes only the token it names: an old token's 401 leaves a newer one alone", async () => {
        const { redis, store, only, another } = await setup(kind, target);
        const other = another();
        await store.set(CACHE_KEY, storedToken("token-1", 60_000, Date.now() - 1000));
        await other.set(CACHE_KEY, storedToken("token-2"));
        const key = await only("token");
        const raw = await redis.rawGet(key);
        await expect(store.deleteIfCurrent(CACHE_KEY, "token-1")).resolves.toBe(false);
        expect(await redis.rawGet(key)).toBe(raw);
        expect((await store.get(CACHE_KEY))?.accessToken).toBe("token-2");
        // Another secret computes another tag, so it cannot delete either.
        await expect(another({ encryptionKey: OTHER_KEY }).deleteIfCurrent(CACHE_KEY, "token-2")).resolves.toBe(false);
        expect(await redis.rawGet(key)).toBe(raw);
        await expect(store.deleteIfCurrent(CACHE_KEY, "token-2")).resolves.toBe(true);
        expect(await redis.rawGet(key)).toBeNull();
        await expect(store.get(CACHE_KEY)).resolves.toBeUndefined();
        await expect(store.deleteIfCurrent(CACHE_KEY, "token-2")).resolves.toBe(false);
        await redis.rawSet(key, "garbage", 60_000);
        await expect(store.deleteIfCurrent(CACHE_KEY, "token-2")).resolves.toBe(false);
        expect(await redis.rawGet(key)).toBe("garbage");
      });

      it("shares a Retry-After with every store: authenticated, the later time wins, expiring with it", async () => {
        const { redis, store, only, another } = await setup(kind, target);
        const until = Date.now() + 20_000;
        await store.setThrottle(CACHE_KEY, until);
        const key = await only("throttle");
        expect(await another().getThrottle(CACHE_KEY)).toBe(until);
        const pttl = await redis.pttl(key);
        expect(pttl).toBeGreaterThan(19_000);
        expect(pttl).toBeLessThanOrEqual(20_000);
        expect(await redis.rawGet(key)).toMatch(new RegExp(`^${until}\\.[A-Za-z0-9_-]{22}$`));

        await another().setThrottle(CACHE_KEY, until - 10_000); // a shorter wait does not cut a longer one
        expect(await store.getThrottle(CACHE_KEY)).toBe(until);
        await another().setThrottle(CACHE_KEY, until + 10_000);
        expect(await store.getThrottle(CACHE_KEY)).toBe(until + 10_000);
        expect(await redis.pttl(key)).toBeGreaterThan(29_000);
        await expect(another({ encryptionKey: OTHER_KEY }).getThrottle(CACHE_KEY)).resolves.toBeUndefined();

        // Whoever can write to Redis but has no secret cannot stall the fleet.
        await redis.rawSet(key, `${Date.now() + HOUR_MS}.${"A".repeat(22)}`);
        await expect(store.getThrottle(CACHE_KEY)).resolves.toBeUndefined();
        await redis.del(key);
        await store.setThrottle(CACHE_KEY, Date.now() - 1); // already over: nothing stored
        expect(await redis.keys(key)).toEqual([]);
        await store.setThrottle(CACHE_KEY, Date.now() + 150);
        expect(await store.getThrottle(CACHE_KEY)).toBeTypeOf("number");
        await pause(250);
        await expect(store.getThrottle(CACHE_KEY)).resolves.toBeUndefined();
        expect(await redis.rawGet(key)).toBeNull();
      });

      it("locks with SET NX PX and releases only with the holder's id", async () => {
        const { redis, store, only } = await setup(kind, target, { lockTtlMs: 5000 });
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
        const { redis, store, only } = await setup(kind, target);
        await store.acquireRefreshLock(CACHE_KEY, askedMs);
        const pttl = await redis.pttl(await only("lock"));
        expect(pttl).toBeGreaterThan(expectedMs - 200);
        expect(pttl).toBeLessThanOrEqual(expectedMs);
      });

      it("renews a held lock until released, never past the interceptor's budget, whatever the wall clock does", async () => {
        const { redis, store, keyPrefix } = await setup(kind, target, { lockTtlMs: 200 });
        const held = (await store.acquireRefreshLock("held", 5000)) as string;
        await store.acquireRefreshLock("bounded", 450);
        // Renewal deadlines are on the monotonic clock: a wall clock stepped forward must not drop
        // "held", one stepped back must not keep "bounded" past its budget.
        stepWallClock(HOUR_MS);
        await pause(300);
        vi.restoreAllMocks();
        stepWallClock(-HOUR_MS);
        await pause(400);
        const lockKeys = await redis.keys(`${keyPrefix}*:lock`);
        expect(lockKeys).toHaveLength(1); // "bounded" expired once its 450 ms budget was spent; "held" lives on
        expect(await redis.rawGet(lockKeys[0] as string)).toBe(held);
        await store.releaseRefreshLock("held", held);
        expect(await redis.keys(`${keyPrefix}*:lock`)).toEqual([]);
      });

      it("gives a lock left without expiry, or with more than lockTtlMs, an expiry; leaves a live lock alone", async () => {
        const { redis, store, only, errors, another } = await setup(kind, target, { lockTtlMs: 300 });
        const live = (await another({ lockTtlMs: 300 }).acquireRefreshLock(CACHE_KEY, 10_000)) as string;
        const lockKey = await only("lock");
        await expect(store.acquireRefreshLock(CACHE_KEY, 10_000)).resolves.toBeUndefined();
        expect(await redis.rawGet(lockKey)).toBe(live);
        expect(errors).toEqual([]);

        for (const pxMs of [undefined, HOUR_MS]) {
          await redis.rawSet(lockKey, "left-by-a-crashed-script", pxMs);
          await expect(store.acquireRefreshLock(CACHE_KEY, 10_000)).resolves.toBeUndefined();
          const pttl = await redis.pttl(lockKey);
          expect(pttl).toBeGreaterThan(0);
          expect(pttl).toBeLessThanOrEqual(300);
          expect(await redis.rawGet(lockKey)).toBe("left-by-a-crashed-script");
        }
        expect(errors.map(([operation]) => operation)).toEqual(["acquireRefreshLock", "acquireRefreshLock"]);
        await pause(350);
        const mine = await store.acquireRefreshLock(CACHE_KEY, 10_000);
        expect(await redis.rawGet(lockKey)).toBe(mine);
      });

      it("a cold call on a lock left without expiry waits about one lock TTL and costs one token request", async () => {
        const { redis, store, only, errors } = await setup(kind, target, { lockTtlMs: 300 });
        const server = await startTokenServer();
        const probe = (await store.acquireRefreshLock(CACHE_KEY, 1000)) as string; // to learn the lock's key
        const lockKey = await only("lock");
        await store.releaseRefreshLock(CACHE_KEY, probe);
        await redis.rawSet(lockKey, "left-by-a-crashed-script");
        expect(await redis.pttl(lockKey)).toBe(-1);

        const clientSecret = "cold-client-secret-0123456789";
        const auth = createTokenRefreshInterceptor({
          tokenUrl: server.url,
          clientId: "cold",
          clientSecret,
          cacheKey: CACHE_KEY,
          store,
          timeoutMs: 10_000,
        });
        onTestFinished(() => auth.dispose());
        const startedAt = performance.now();
        expect(await auth.getAccessToken()).toBe("token-1");
        const waitedMs = performance.now() - startedAt;
        process.stdout.write(
          `[redis figures] ${target}/${kind}: cold call on a lock without expiry (lockTtlMs 300) took ${Math.round(waitedMs)} ms\n`,
        );
        expect(waitedMs).toBeLessThan(300 + 700);
        expect(server.count).toBe(1);
        expect(errors.map(([operation]) => operation)).toContain("acquireRefreshLock");
        expect(await redis.rawGet(lockKey)).toBeNull(); // expired, and ours released
        const tokenKey = await only("token");
        expect(await redis.rawGet(tokenKey)).toMatch(VALUE_FORMAT);
        expect(await redis.pttl(tokenKey)).toBeGreaterThan(3_500_000);
      });

      it("shares one token between two interceptors with their own stores: one token request", async () => {
        const { redis, keyPrefix, only } = await setup(kind, target);
        const server = await startTokenServer();
        const options = { tokenUrl: server.url, clientId: "shared", clientSecret: "shared-client-secret-0123" };
        const [first, second] = [1, 2].map(() =>
          createTokenRefreshInterceptor({
            ...options,
            store: createRedisTokenStore({ client: redis.client, clientSecret: options.clientSecret, keyPrefix }),
          }),
        ) as [ReturnType<typeof createTokenRefreshInterceptor>, ReturnType<typeof createTokenRefreshInterceptor>];
        onTestFinished(() => {
          first.dispose();
          second.dispose();
        });
        expect(await first.getAccessToken()).toBe("token-1");
        expect(await second.getAccessToken()).toBe("token-1");
        expect(server.count).toBe(1);
        expect(await redis.rawGet(await only("token"))).toMatch(VALUE_FORMAT);
      });

      it("during a key rollout, two groups of replicas cost one token request each, not one per request", async () => {
        const { redis, keyPrefix } = await setup(kind, target);
        const server = await startTokenServer();
        const clientSecret = "rollout-client-secret-0123456789";
        const served: string[] = [];
        // A new interceptor for every call, as a fleet of short-lived processes would be: each reads
        // Redis, where before, each group found the other's value, could not decrypt it and refetched.
        for (let round = 0; round < 20; round += 1) {
          for (const encryptionKey of [KEY, OTHER_KEY]) {
            const store = createRedisTokenStore({ client: redis.client, encryptionKey, keyPrefix });
            const auth = createTokenRefreshInterceptor({
              tokenUrl: server.url,
              clientId: "rollout",
              clientSecret,
              cacheKey: CACHE_KEY,
              store,
            });
            served.push(await auth.getAccessToken());
            auth.dispose();
          }
        }
        process.stdout.write(
          `[redis figures] ${target}/${kind}: key rollout, 40 calls from 2 key groups cost ${server.count} token requests\n`,
        );
        expect(server.count).toBe(2);
        expect(new Set(served)).toEqual(new Set(["token-1", "token-2"]));
        const tokenKeys = await redis.keys(`${keyPrefix}*:token`);
        expect(tokenKeys).toHaveLength(2);
        for (const key of tokenKeys) expect(await redis.rawGet(key)).toMatch(VALUE_FORMAT);
      });
    },
  );
}

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

  it("ends the cool-down after cooldownMs of monotonic time, whichever way the wall clock steps", async () => {
    const store = createRedisTokenStore({ client: await hungClient(kind), encryptionKey: KEY, commandTimeoutMs: 100, cooldownMs: 300 });
    await expect(store.get(CACHE_KEY)).rejects.toThrow(/timed out/);
    stepWallClock(HOUR_MS); // forward: must not end it early
    await expect(store.get(CACHE_KEY)).rejects.toThrow(/skipped/);
    vi.restoreAllMocks();
    stepWallClock(-HOUR_MS); // back: must not stretch it by an hour
    await expect(store.getThrottle(CACHE_KEY)).rejects.toThrow(/skipped/);
    await pause(350);
    await expect(store.get(CACHE_KEY)).rejects.toThrow(/timed out/); // Redis is tried again
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
    const startedAt = performance.now();
    expect(await auth.getAccessToken()).toBe("token-1");
    expect(server.count).toBe(1);
    // Which store calls the core still tries after the first failure is the core's business; each
    // costs at most one command timeout, once.
    expect(operations[0]).toBe("get");
    expect(operations.at(-1)).toBe("set");
    expect(new Set(operations).size).toBe(operations.length);
    expect(performance.now() - startedAt).toBeLessThan(operations.length * 100 + 1000);
  });
});
