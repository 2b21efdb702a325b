/**
 * A fleet of 8 processes (test/fixtures/fleet-worker.ts), each with its own interceptor and its own
 * store, against one loopback token server that counts token requests, plus a 9th whose wall clock
 * runs 2 s behind. The fleet starts once (that is most of the time) and runs the scenarios in order;
 * the last one kills a replica.
 *
 * What the scenarios wait for are events, not durations: the token server holds its answer until
 * every replica has reported its first try at the refresh lock, so a slow machine only makes the
 * test slower, never makes a replica come too late and fetch a second token.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTokenStore } from "../src/redis.js";
import { FLEET_CLIENT_SECRET, spawnReplica, type Replica, type Scenario, type TrafficResult } from "./fixtures/fleet-protocol.js";
import { defer } from "./helpers/defer.js";
import { connectRedis, redisSuite, requireRedisUrl, skipRedis, uniquePrefix, type TestRedis } from "./helpers/redis.js";
import { startResourceServer, startTokenServer, type Handler, type TokenServer } from "./helpers/servers.js";

const REPLICAS = 8;
const BURST = 100;
const LIFETIME_S = 2;
const CACHE_KEY = "fleet-cache-key";
const SKEW_MS = -2000;

/** Issues `token-<n>` valid for LIFETIME_S seconds: for the scenarios that watch refreshes. */
const shortTokens: Handler = (_request, n) => ({ body: { access_token: `token-${n}`, token_type: "Bearer", expires_in: LIFETIME_S } });
/** Issues `token-<n>` valid for a minute: no refresh falls inside a scenario, however slow the machine. */
const longTokens: Handler = (_request, n) => ({ body: { access_token: `token-${n}`, token_type: "Bearer", expires_in: 60 } });

/** A token server that also notes when each token request arrived. */
async function startTimedTokenServer(handler: Handler = shortTokens): Promise<{ server: TokenServer; arrivals: number[] }> {
  const arrivals: number[] = [];
  const server = await startTokenServer((request, n) => {
    arrivals.push(Date.now());
    return handler(request, n);
  });
  return { server, arrivals };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `done` every 10 ms for at most `timeoutMs`; returns whether it came true. */
async function until(done: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  for (let waited = 0; waited < timeoutMs; waited += 10) {
    if (await done()) return true;
    await pause(10);
  }
  return done();
}

/** What Redis holds for a scenario: the raw token value, its PTTL, and what it decrypts to. */
async function heldToken(
  redis: TestRedis,
  keyPrefix: string,
  encryptionKey?: string,
): Promise<{ raw: string | null; pttl: number; accessToken: string | undefined }> {
  const keys = await redis.keys(`${keyPrefix}*:token`);
  const store = createRedisTokenStore({
    client: redis.client,
    ...(encryptionKey === undefined ? { clientSecret: FLEET_CLIENT_SECRET } : { encryptionKey }),
    keyPrefix,
  });
  const accessToken = (await store.get(CACHE_KEY))?.accessToken;
  const key = keys.length === 1 ? (keys[0] as string) : undefined;
  return { raw: key === undefined ? null : await redis.rawGet(key), pttl: key === undefined ? -2 : await redis.pttl(key), accessToken };
}

const succeeded = (results: TrafficResult[]): number => results.reduce((sum, r) => sum + r.ok, 0);
const everyToken = (results: TrafficResult[], token: string): boolean => results.every((result) => result.tokens.join() === token);

describe.skipIf(skipRedis)(redisSuite(`a fleet of ${REPLICAS} processes sharing one Redis`), () => {
  let replicas: Replica[] = [];
  let skewed: Replica | undefined;
  /** Left by the paused-holder scenario for the one after it. */
  let pausedScenario: { resumedServed: string[] } | undefined;
  const figures: Record<string, unknown> = {};

  beforeAll(async () => {
    const redisUrl = requireRedisUrl();
    replicas = Array.from({ length: REPLICAS }, (_, id) => spawnReplica(id, redisUrl));
    skewed = spawnReplica(REPLICAS, redisUrl, { FLEET_CLOCK_OFFSET_MS: String(SKEW_MS) });
    await Promise.all([...replicas, skewed].map((replica) => replica.next("started", 60_000)));
  }, 65_000);

  afterAll(async () => {
    const all = skewed === undefined ? replicas : [...replicas, skewed];
    const running = all.filter((replica) => !replica.exited);
    for (const replica of running) {
      replica.child.kill("SIGCONT"); // in case a failed scenario left one stopped
      replica.send({ type: "exit" });
    }
    await Promise.race([
      Promise.all(running.map((replica) => new Promise((resolve) => replica.child.once("exit", resolve)))),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]);
    for (const replica of all) if (!replica.exited) replica.child.kill("SIGKILL");
    process.stdout.write(`[fleet figures] ${JSON.stringify(figures)}\n`);
  });

  const live = (): Replica[] => replicas.filter((replica) => !replica.exited);

  /** Sets every replica in `to` up for one scenario; `each` adds per-replica settings. */
  async function configure(
    tokenServer: TokenServer,
    shared: boolean,
    overrides: Partial<Scenario> = {},
    { to = live(), each = () => ({}) }: { to?: Replica[]; each?: (replica: Replica) => Partial<Scenario> } = {},
  ): Promise<Scenario> {
    const resource = await startResourceServer();
    const scenario: Scenario = {
      shared,
      tokenUrl: tokenServer.url,
      resourceOrigin: resource.origin,
      keyPrefix: uniquePrefix("fleet"),
      cacheKey: CACHE_KEY,
      timeoutMs: 5000,
      refreshMarginMs: 500,
      expiryBufferMs: 200,
      lockTtlMs: 1000,
      ...overrides,
    };
    const ready = to.map((replica) => replica.next("ready", 15_000));
    for (const replica of to) replica.send({ type: "setup", scenario: { ...scenario, ...each(replica) } });
    await Promise.all(ready);
    return scenario;
  }

  /** Bursts from `from`; results in the same order. */
  function startBurst(from: Replica[], reportLock = false, timeoutMs = 20_000): Promise<TrafficResult>[] {
    const results = from.map((replica) => replica.result("burst-done", timeoutMs));
    for (const replica of from) replica.send({ type: "burst", count: BURST, reportLock });
    return results;
  }

  /**
   * A token server whose first answer waits until every replica of `from` tried the refresh lock
   * (one holds it, the others wait), at most `holdMs`.
   */
  async function startGatedTokenServer(handler: Handler, holdMs = 15_000) {
    const everyoneWaits = defer();
    const { server, arrivals } = await startTimedTokenServer(async (request, n) => {
      if (n === 1) await Promise.race([everyoneWaits.promise, pause(holdMs)]);
      return handler(request, n);
    });
    const burst = (from: Replica[]): Promise<TrafficResult>[] => {
      const attempts = from.map((replica) => replica.next("lock-attempt", holdMs));
      void Promise.allSettled(attempts).then((outcomes) => {
        figures.lockAttemptsBeforeFirstAnswer = outcomes.filter((outcome) => outcome.status === "fulfilled").length;
        everyoneWaits.resolve();
      });
      return startBurst(from, true);
    };
    return { server, arrivals, burst };
  }

  it("without a shared store, a cold burst costs one token request per process", async () => {
    const tokenServer = await startTokenServer(longTokens);
    await configure(tokenServer, false);
    const results = await Promise.all(startBurst(live()));
    expect(succeeded(results)).toBe(REPLICAS * BURST);
    expect(tokenServer.count).toBe(REPLICAS);
    figures.coldBurstWithoutSharedStore = tokenServer.count;
  }, 30_000);

  it("with the Redis store, a cold burst costs one token request", async () => {
    const { server: tokenServer, burst } = await startGatedTokenServer(longTokens);
    const { keyPrefix } = await configure(tokenServer, true, { timeoutMs: 10_000, lockTtlMs: 3000 });
    const redis = await connectRedis("ioredis", keyPrefix);
    const cold = await Promise.all(burst(live()));
    // A store call the core gave up on under load is allowed (the core then goes on without it);
    // it is shown only to explain a second token request.
    const diagnostics = cold.flatMap((result) => result.storeFailures ?? []);
    expect(succeeded(cold)).toBe(REPLICAS * BURST);
    expect(tokenServer.count, `token requests (store failures: ${diagnostics.join() || "none"})`).toBe(1);
    expect(everyToken(cold, "token-1")).toBe(true);
    const held = await heldToken(redis, keyPrefix);
    expect(held.accessToken).toBe("token-1");
    expect(held.raw).not.toContain("token-1");
    expect(held.pttl).toBeGreaterThan(50_000);
    figures.coldBurstWithSharedStore = tokenServer.count;
    if (diagnostics.length > 0) figures.coldBurstStoreFailures = diagnostics;
  }, 30_000);

  it("with the Redis store, steady traffic costs one token request per token lifetime", async () => {
    const { server: tokenServer, arrivals } = await startTimedTokenServer(shortTokens);
    await configure(tokenServer, true, { timeoutMs: 10_000, lockTtlMs: 3000 });
    const [first] = live();
    const warm = await Promise.all(startBurst([first as Replica]));
    expect(everyToken(warm, "token-1")).toBe(true);

    // Steady traffic from every replica until three more tokens were issued (three lifetimes),
    // then a little longer, so that a duplicate refresh would have time to show.
    const traffic = live().map((replica) => replica.result("traffic-done", 25_000));
    for (const replica of live()) replica.send({ type: "traffic", intervalMs: 20, maxMs: 20_000 });
    await until(() => tokenServer.count >= 4, 15_000);
    await pause(400);
    for (const replica of live()) replica.send({ type: "stop" });
    const steady = await Promise.all(traffic);

    expect(steady.every((result) => result.failed === 0)).toBe(true);
    expect(tokenServer.count).toBe(4);
    // token-1 may already have expired when the steady phase began, if the warm-up was slow.
    const seen = new Set(steady.flatMap((result) => result.tokens));
    expect([...seen].filter((token) => token !== "token-1").sort()).toEqual(["token-2", "token-3", "token-4"]);
    // A duplicate refresh arrives moments after the first; one refresh per lifetime arrives about
    // 1.5 s (the refresh time) after the previous one, however late that one arrived itself.
    const gaps = arrivals.slice(1).map((at, i) => at - (arrivals[i] as number));
    for (const gap of gaps) expect(gap).toBeGreaterThan(1000);
    for (const gap of gaps.slice(1)) expect(gap).toBeLessThan(LIFETIME_S * 1000 + 1000);
    figures.tokenRequestsOverThreeLifetimes = tokenServer.count - 1;
    figures.msBetweenTokenRequests = gaps;
  }, 40_000);

  it("during a key rollout, two groups with different encryption keys cost one token request each", async () => {
    const tokenServer = await startTokenServer(longTokens);
    const keys = ["rollout-key-a-0123456789abcdef", "rollout-key-b-0123456789abcdef"] as const;
    // Groups mix both client libraries: replica ids 0,1,4,5 use key a, 2,3,6,7 key b.
    const group = (replica: Replica): string => keys[Math.floor(replica.id / 2) % 2] as string;
    const { keyPrefix } = await configure(
      tokenServer,
      true,
      { timeoutMs: 10_000, lockTtlMs: 3000 },
      { each: (replica) => ({ encryptionKey: group(replica) }) },
    );
    const redis = await connectRedis("ioredis", keyPrefix);
    const traffic = live().map((replica) => replica.result("traffic-done", 20_000));
    for (const replica of live()) replica.send({ type: "traffic", intervalMs: 20, maxMs: 3000 });
    const results = await Promise.all(traffic);
    expect(results.every((result) => result.failed === 0)).toBe(true);
    expect(succeeded(results)).toBeGreaterThan(REPLICAS * 50);
    expect(tokenServer.count).toBe(2);
    const held = await Promise.all(keys.map((key) => heldToken(redis, keyPrefix, key)));
    expect(new Set(held.map((entry) => entry.accessToken))).toEqual(new Set(["token-1", "token-2"]));
    expect(await redis.keys(`${keyPrefix}*:token`)).toHaveLength(2);
    // Within a group, every replica served its group's one token.
    for (const key of keys) {
      const tokens = new Set(results.filter((_result, i) => group(live()[i] as Replica) === key).flatMap((result) => result.tokens));
      expect(tokens.size).toBe(1);
    }
    figures.tokenRequestsDuringKeyRollout3s = tokenServer.count;
  }, 30_000);

  it("a 429 with Retry-After at one replica keeps the others off the token endpoint", async () => {
    const tokenServer = await startTokenServer((request, n) =>
      n === 1 ? { status: 429, headers: { "Retry-After": "3" }, body: { error: "slow_down" } } : longTokens(request, n),
    );
    const { keyPrefix } = await configure(tokenServer, true);
    const redis = await connectRedis("ioredis", keyPrefix);
    const [first, ...others] = live() as [Replica, ...Replica[]];
    const [throttled] = await Promise.all(startBurst([first]));
    expect(throttled?.ok).toBe(0);
    expect(tokenServer.count).toBe(1);
    // The replica shares the Retry-After without waiting for Redis; give it a moment to land.
    const shared = await until(async () => (await redis.keys(`${keyPrefix}*:throttle`)).length === 1, 2000);
    expect(shared, "the throttled replica shares its Retry-After in Redis").toBe(true);
    const [throttleKey] = await redis.keys(`${keyPrefix}*:throttle`);
    const pttl = await redis.pttl(throttleKey as string);
    expect(pttl).toBeGreaterThan(1000);
    expect(pttl).toBeLessThanOrEqual(3000);

    const results = await Promise.all(startBurst(others));
    expect(tokenServer.count).toBe(1);
    expect(succeeded(results)).toBe(0);
    expect(results.every((result) => result.failures.includes("ERR_TOKEN_THROTTLED"))).toBe(true);
    figures.tokenRequestsWhileThrottled = tokenServer.count;
  }, 30_000);

  it("a replica whose clock runs 2 s behind serves the token another replica stored, without fetching", async () => {
    const tokenServer = await startTokenServer(longTokens);
    const late = skewed as Replica;
    const [writer] = live() as [Replica];
    const { keyPrefix } = await configure(tokenServer, true, {}, { to: [writer, late] });
    const redis = await connectRedis("ioredis", keyPrefix);
    expect(everyToken(await Promise.all(startBurst([writer])), "token-1")).toBe(true);
    const before = await heldToken(redis, keyPrefix);
    const [fromLate] = await Promise.all(startBurst([late]));
    expect(fromLate?.failed).toBe(0);
    expect(fromLate?.tokens).toEqual(["token-1"]);
    expect(tokenServer.count).toBe(1);
    const after = await heldToken(redis, keyPrefix);
    expect(after.raw).toBe(before.raw);
    expect(after.accessToken).toBe("token-1");
    figures.tokenRequestsWithReplica2sBehind = tokenServer.count;
  }, 30_000);

  it("a lock holder paused past its lock cannot overwrite the newer token when it resumes", async () => {
    const answerFirst = defer();
    const { server: tokenServer } = await startTimedTokenServer(async (request, n) => {
      if (n === 1) await Promise.race([answerFirst.promise, pause(15_000)]);
      return longTokens(request, n);
    });
    const { keyPrefix } = await configure(tokenServer, true, { lockTtlMs: 600, timeoutMs: 10_000 });
    const redis = await connectRedis("ioredis", keyPrefix);
    const bursts = new Map(live().map((replica) => [replica, startBurst([replica])[0] as Promise<TrafficResult>] as const));

    expect(await until(() => tokenServer.count >= 1)).toBe(true);
    const holder = replicas[Number(tokenServer.requests[0]?.headers["x-fleet-worker"])] as Replica;
    holder.child.kill("SIGSTOP"); // a GC pause or a stopped VM: it holds the lock and its token request is on the wire
    let holderResult: TrafficResult | undefined;
    try {
      const survivors = await Promise.all([...bursts].filter(([replica]) => replica !== holder).map(([, result]) => result));
      expect(succeeded(survivors)).toBe((REPLICAS - 1) * BURST);
      expect(everyToken(survivors, "token-2")).toBe(true);
      expect(tokenServer.count).toBe(2);
      const beforeResume = await heldToken(redis, keyPrefix);
      expect(beforeResume.accessToken).toBe("token-2");

      holder.child.kill("SIGCONT");
      answerFirst.resolve(); // its old request now returns token-1, obtained before token-2
      holderResult = await bursts.get(holder);
      const afterResume = await heldToken(redis, keyPrefix);
      figures.pausedHolder = { redisAfterResume: afterResume.accessToken, holderServed: holderResult?.tokens };
      expect(afterResume.raw).toBe(beforeResume.raw);
      expect(afterResume.accessToken).toBe("token-2");
      expect(afterResume.pttl).toBeGreaterThan(50_000);
      expect(tokenServer.count).toBe(2);
    } finally {
      holder.child.kill("SIGCONT");
      answerFirst.resolve();
    }
    expect(holderResult?.failed).toBe(0);

    // The next burst: no token request, and every other replica serves what Redis holds.
    const next = new Map(
      await Promise.all(live().map(async (replica) => [replica, await (startBurst([replica])[0] as Promise<TrafficResult>)] as const)),
    );
    expect(tokenServer.count).toBe(2);
    expect(
      everyToken(
        [...next].filter(([replica]) => replica !== holder).map(([, result]) => result),
        "token-2",
      ),
    ).toBe(true);
    expect((await heldToken(redis, keyPrefix)).accessToken).toBe("token-2");
    pausedScenario = { resumedServed: next.get(holder)?.tokens ?? [] };
    figures.pausedHolder = { ...(figures.pausedHolder as object), resumedHolderServedNext: pausedScenario.resumedServed };
  }, 40_000);

  // Pending on the core: the resumed holder's write was refused, yet it keeps the token-1 it fetched
  // in memory and serves it until that token is due, where it should serve what the store kept
  // (read back after a write, or a store that says which token it kept). Make this it() then.
  it("after a paused holder resumes, it too serves the token Redis holds", () => {
    expect(pausedScenario?.resumedServed).toEqual(["token-2"]);
  });

  it("when the lock holder dies mid-fetch, another replica takes over once the lock expires", async () => {
    const { server: tokenServer, arrivals } = await startTimedTokenServer((request, n) =>
      n === 1 ? { hang: true } : longTokens(request, n),
    );
    const { keyPrefix } = await configure(tokenServer, true, { lockTtlMs: 1000, timeoutMs: 5000 });
    const redis = await connectRedis("ioredis", keyPrefix);
    const bursts = new Map(live().map((replica) => [replica, startBurst([replica])[0] as Promise<TrafficResult>] as const));

    expect(await until(() => tokenServer.count >= 1, 5000)).toBe(true);
    const holder = replicas[Number(tokenServer.requests[0]?.headers["x-fleet-worker"])] as Replica;
    const killedAt = Date.now();
    holder.child.kill("SIGKILL");
    bursts.get(holder)?.catch(() => {}); // its burst dies with it
    bursts.delete(holder);
    const [lockKey] = await redis.keys(`${keyPrefix}*:lock`);
    // Measured from before the question, so a slow answer cannot move the lock's end later.
    const askedAt = Date.now();
    const lockLeftMs = lockKey === undefined ? 0 : await redis.pttl(lockKey);
    const lockFreesAt = askedAt + lockLeftMs;

    const survivors = await Promise.all(bursts.values());
    const recoveredMs = Date.now() - killedAt;
    expect(succeeded(survivors)).toBe((REPLICAS - 1) * BURST);
    expect(everyToken(survivors, "token-2")).toBe(true);
    expect(tokenServer.count).toBe(2);
    // Nobody fetched while the dead holder's lock lived (what Redis said was left of it); one replica
    // took over at its first poll after that (the core polls at most 250 ms apart), long before the
    // waiters' own give-up point (3/4 of timeoutMs), after which each of them would have fetched by itself.
    expect(lockLeftMs).toBeGreaterThan(0);
    expect(lockLeftMs).toBeLessThanOrEqual(1000);
    expect(arrivals[1] as number).toBeGreaterThanOrEqual(lockFreesAt - 50);
    const takeoverMs = (arrivals[1] as number) - (arrivals[0] as number);
    expect(takeoverMs).toBeLessThan(0.75 * 5000);
    expect(recoveredMs).toBeLessThan(5000);
    expect((await heldToken(redis, keyPrefix)).accessToken).toBe("token-2");
    figures.tokenRequestsWhenHolderKilled = tokenServer.count;
    figures.takeoverAfterFirstRequestMs = takeoverMs;
    figures.allSurvivorsServedAfterKillMs = recoveredMs;
  }, 30_000);
});
