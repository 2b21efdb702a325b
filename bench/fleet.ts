/**
 * 7. Fleet: 8 processes (test/fixtures/fleet-worker.ts), each with its own interceptor, burst 100
 * requests each on a cold cache: token requests and time to the last response, with each process
 * keeping its own token (in-memory store) vs one token shared through Redis.
 * Uses REDIS_URL, or starts Debian's redis-server on a free loopback port when it is installed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { spawnReplica, type Replica, type Scenario } from "../test/fixtures/fleet-protocol.js";
import type { Setup } from "./servers.js";
import { fmtInt, fmtMs, fmtNum, fmtTimes, median } from "./stats.js";
import type { Row } from "./table.js";

const REPLICAS = 8;
const BURST = 100;
const ROUNDS = 3;

export async function fleet({ baseURL, tokens }: Setup): Promise<Row[]> {
  const redis = await redisUrl();
  if (redis === undefined) {
    const skipped = "skipped: no REDIS_URL and no redis-server";
    return [
      {
        id: "7a",
        benchmark: `7. fleet (${skipped})`,
        unit: "",
        ours: Number.NaN,
        baseline: undefined,
        ratio: undefined,
        goal: "= 1",
        met: undefined,
        display: { ours: "—", baseline: "—", ratio: "—" },
      },
    ];
  }
  const replicas: Replica[] = Array.from({ length: REPLICAS }, (_, id) => spawnReplica(id, redis.url));
  try {
    await Promise.all(replicas.map((replica) => replica.next("started", 60_000)));
    const counts = { shared: [] as number[], own: [] as number[] };
    const times = { shared: [] as number[], own: [] as number[] };
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const shared of round % 2 === 0 ? [false, true] : [true, false]) {
        const scenario: Scenario = {
          shared,
          tokenUrl: tokens.url,
          resourceOrigin: baseURL,
          keyPrefix: `atr-bench:${process.pid}:${round}:${shared}:`,
          timeoutMs: 5_000,
          refreshMarginMs: 300_000,
          expiryBufferMs: 30_000,
        };
        const ready = replicas.map((replica) => replica.next("ready", 10_000));
        for (const replica of replicas) replica.send({ type: "setup", scenario });
        await Promise.all(ready);
        const before = tokens.count;
        const started = performance.now();
        const done = replicas.map((replica) => replica.result("burst-done", 20_000));
        for (const replica of replicas) replica.send({ type: "burst", count: BURST });
        const results = await Promise.all(done);
        const failed = results.reduce((sum, result) => sum + result.failed, 0);
        if (failed > 0) throw new Error(`fleet: ${failed} requests failed`);
        const kind = shared ? "shared" : "own";
        times[kind].push(performance.now() - started);
        counts[kind].push(tokens.count - before);
      }
    }
    const shared = Math.max(...counts.shared);
    const own = median(counts.own);
    const sharedMs = median(times.shared);
    const ownMs = median(times.own);
    return [
      {
        id: "7a",
        benchmark: `7a. fleet: ${REPLICAS} processes × ${BURST} requests, cold cache: token requests (shared Redis store vs each its own)`,
        unit: "token requests",
        ours: shared,
        baseline: own,
        ratio: shared / own,
        goal: "= 1",
        met: counts.shared.every((count) => count === 1),
        rounds: { ours: counts.shared, baseline: counts.own },
        display: { ours: String(shared), baseline: fmtInt(own), ratio: fmtNum(shared / own, 3) },
      },
      {
        id: "7b",
        benchmark: "7b. fleet: time to the last of the 800 responses (shared Redis store vs each its own)",
        unit: "ms",
        ours: sharedMs,
        baseline: ownMs,
        ratio: sharedMs / ownMs,
        goal: "—",
        met: undefined,
        rounds: { ours: times.shared, baseline: times.own },
        display: { ours: fmtMs(sharedMs), baseline: fmtMs(ownMs), ratio: fmtTimes(sharedMs / ownMs) },
      },
    ];
  } finally {
    for (const replica of replicas) replica.send({ type: "exit" });
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const replica of replicas) if (!replica.exited) replica.child.kill("SIGKILL");
    redis.stop();
  }
}

/** REDIS_URL, or a redis-server of our own on a free loopback port, stopped afterwards. */
async function redisUrl(): Promise<{ url: string; stop: () => void } | undefined> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: () => {} };
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address() as { port: number };
      probe.close(() => resolve(free));
    });
  });
  let child: ChildProcess;
  try {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  const started = await new Promise<boolean>((resolve) => {
    child.once("error", () => resolve(false));
    setTimeout(() => resolve(child.exitCode === null), 300);
  });
  return started ? { url: `redis://127.0.0.1:${port}`, stop: () => child.kill() } : undefined;
}
