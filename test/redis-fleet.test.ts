/**
 * A fleet of 8 processes (test/fixtures/fleet-worker.ts), each with its own interceptor and its own
 * store, against one loopback token server that counts token requests. The fleet starts once (that
 * is most of the time) and runs the scenarios in order; the last one kills a replica.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnReplica, type Replica, type Scenario, type TrafficResult } from "./fixtures/fleet-protocol.js";
import { redisSuite, requireRedisUrl, skipRedis, uniquePrefix } from "./helpers/redis.js";
import { startResourceServer, startTokenServer, type Handler, type TokenServer } from "./helpers/servers.js";

const REPLICAS = 8;
const BURST = 100;
const LIFETIME_S = 2;

/** Issues `token-<n>` valid for LIFETIME_S seconds. */
const shortTokens: Handler = (_request, n) => ({ body: { access_token: `token-${n}`, token_type: "Bearer", expires_in: LIFETIME_S } });

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

describe.skipIf(skipRedis)(redisSuite(`a fleet of ${REPLICAS} processes sharing one Redis`), () => {
  let replicas: Replica[] = [];
  const figures: Record<string, number | number[]> = {};

  beforeAll(async () => {
    const redisUrl = requireRedisUrl();
    replicas = Array.from({ length: REPLICAS }, (_, id) => spawnReplica(id, redisUrl));
    await Promise.all(replicas.map((replica) => replica.next("started", 40_000)));
  }, 45_000);

  afterAll(async () => {
    const live = replicas.filter((replica) => !replica.exited);
    for (const replica of live) replica.send({ type: "exit" });
    await Promise.race([
      Promise.all(live.map((replica) => new Promise((resolve) => replica.child.once("exit", resolve)))),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]);
    for (const replica of replicas) if (!replica.exited) replica.child.kill("SIGKILL");
    process.stdout.write(`[fleet figures] ${JSON.stringify(figures)}\n`);
  });

  const live = (): Replica[] => replicas.filter((replica) => !replica.exited);

  async function configure(tokenServer: TokenServer, shared: boolean, overrides: Partial<Scenario> = {}): Promise<void> {
    const resource = await startResourceServer();
    const scenario: Scenario = {
      shared,
      tokenUrl: tokenServer.url,
      resourceOrigin: resource.origin,
      keyPrefix: uniquePrefix("fleet"),
      timeoutMs: 5000,
      refreshMarginMs: 500,
      expiryBufferMs: 200,
      lockTtlMs: 1000,
      ...overrides,
    };
    const ready = live().map((replica) => replica.next("ready", 10_000));
    for (const replica of live()) replica.send({ type: "setup", scenario });
    await Promise.all(ready);
  }

  async function burstAll(from: Replica[] = live()): Promise<TrafficResult[]> {
    const results = from.map((replica) => replica.result("burst-done", 10_000));
    for (const replica of from) replica.send({ type: "burst", count: BURST });
    return Promise.all(results);
  }

  const succeeded = (results: TrafficResult[]): number => results.reduce((sum, r) => sum + r.ok, 0);

  it("without a shared store, a cold burst costs one token request per process", async () => {
    const tokenServer = await startTokenServer(shortTokens);
    await configure(tokenServer, false);
    const results = await burstAll();
    expect(succeeded(results)).toBe(REPLICAS * BURST);
    expect(tokenServer.count).toBe(REPLICAS);
    figures.coldBurstWithoutSharedStore = tokenServer.count;
  }, 15_000);

  it("with the Redis store, a cold burst costs one token request, then one per token lifetime", async () => {
    const { server: tokenServer, arrivals } = await startTimedTokenServer();
    await configure(tokenServer, true);
    const cold = await burstAll();
    expect(succeeded(cold)).toBe(REPLICAS * BURST);
    expect(cold.every((result) => result.tokens.join() === "token-1")).toBe(true);
    expect(tokenServer.count).toBe(1);
    figures.coldBurstWithSharedStore = tokenServer.count;

    // Steady traffic from every replica until three more tokens were issued (three lifetimes),
    // then a little longer, so that a duplicate refresh would have time to show.
    const traffic = live().map((replica) => replica.result("traffic-done", 15_000));
    for (const replica of live()) replica.send({ type: "traffic", intervalMs: 20, maxMs: 10_000 });
    for (let polls = 0; tokenServer.count < 4 && polls < 400; polls += 1) await pause(25);
    await pause(400);
    for (const replica of live()) replica.send({ type: "stop" });
    const steady = await Promise.all(traffic);

    expect(steady.every((result) => result.failed === 0)).toBe(true);
    expect(tokenServer.count).toBe(4);
    // token-1 may already have expired when the steady phase began, if the cold burst was slow.
    const seen = new Set(steady.flatMap((result) => result.tokens));
    expect([...seen].filter((token) => token !== "token-1").sort()).toEqual(["token-2", "token-3", "token-4"]);
    // One token request per lifetime: none before the previous token's refresh time (1.5 s into its
    // 2 s life), and under steady traffic each new token within the previous one's lifetime.
    const gaps = arrivals.slice(1).map((at, i) => at - (arrivals[i] as number));
    for (const gap of gaps) expect(gap).toBeGreaterThan(1400);
    for (const gap of gaps.slice(1)) expect(gap).toBeLessThan(LIFETIME_S * 1000 + 300);
    figures.tokenRequestsOverThreeLifetimes = tokenServer.count - 1;
    figures.msBetweenTokenRequests = gaps;
  }, 15_000);

  it("when the lock holder dies mid-fetch, another replica takes over once the lock expires", async () => {
    const { server: tokenServer, arrivals } = await startTimedTokenServer((request, n) => (n === 1 ? { hang: true } : shortTokens(request, n)));
    await configure(tokenServer, true, { lockTtlMs: 1000, timeoutMs: 5000 });
    const bursts = new Map(live().map((replica) => [replica, replica.result("burst-done", 10_000)] as const));
    for (const replica of live()) replica.send({ type: "burst", count: BURST });

    for (let polls = 0; tokenServer.count < 1 && polls < 500; polls += 1) await pause(10);
    const holder = replicas[Number(tokenServer.requests[0]?.headers["x-fleet-worker"])] as Replica;
    const killedAt = Date.now();
    holder.child.kill("SIGKILL");
    bursts.get(holder)?.catch(() => {}); // its burst dies with it
    bursts.delete(holder);

    const survivors = await Promise.all(bursts.values());
    const recoveredMs = Date.now() - killedAt;
    expect(succeeded(survivors)).toBe((REPLICAS - 1) * BURST);
    expect(survivors.every((result) => result.tokens.join() === "token-2")).toBe(true);
    expect(tokenServer.count).toBe(2);
    // Nobody fetched while the dead holder's lock lived (1 s from when it took it, just before its
    // token request); one replica took over at its first poll after that (the core polls at most
    // 500 ms apart), long before the waiters' own give-up point (3/4 of timeoutMs), after which each
    // of them would have fetched by itself.
    const takeoverMs = (arrivals[1] as number) - (arrivals[0] as number);
    expect(takeoverMs).toBeGreaterThan(800);
    expect(takeoverMs).toBeLessThan(0.75 * 5000);
    expect(recoveredMs).toBeLessThan(5000);
    figures.tokenRequestsWhenHolderKilled = tokenServer.count;
    figures.takeoverAfterFirstRequestMs = takeoverMs;
    figures.allSurvivorsServedAfterKillMs = recoveredMs;
  }, 15_000);
});
