/** 2. Throughput through axios: an instance with `attach()` against one with a static header. */
import { performance } from "node:perf_hooks";
import axios, { type AxiosInstance } from "axios";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { clientOptions, IN_FLIGHT, type Setup } from "./servers.js";
import { fmtInt, fmtNum, median, ROUNDS } from "./stats.js";
import { pairedRow, type Row } from "./table.js";

const SEQUENTIAL_REQUESTS = 2_000;
const CONCURRENT_REQUESTS = 5_000;
const CONCURRENT_BLOCK = 250;
export const settings = { SEQUENTIAL_REQUESTS, CONCURRENT_REQUESTS, CONCURRENT_BLOCK, IN_FLIGHT };

type Subjects = Record<"baseline" | "ours", AxiosInstance>;
type Results = Record<keyof Subjects, number[]>;

export async function throughput({ baseURL, agent, tokens }: Setup): Promise<Row[]> {
  const ourApi = axios.create({ baseURL, httpAgent: agent });
  const auth = createTokenRefreshInterceptor(clientOptions(tokens.url));
  const detach = auth.attach(ourApi);
  const token = await auth.getAccessToken();
  // Same header bytes as ours, set once on the instance.
  const staticApi = axios.create({ baseURL, httpAgent: agent, headers: { Authorization: `Bearer ${token}` } });
  const subjects: Subjects = { baseline: staticApi, ours: ourApi };

  // Sequential: the two instances take turns request by request (A B B A …), and a round's figure is
  // 1 / its median request time. On a shared VM the time per request drifts by tens of % within
  // seconds, and a burst from another process lands on a few requests of either side: turns keep
  // the drift off the ratio, the median keeps the bursts off.
  const sequential = await rounds(subjects, SEQUENTIAL_REQUESTS, timedGet, (ms) => 1000 / ms);
  // Concurrent: the same idea with blocks of CONCURRENT_BLOCK requests, IN_FLIGHT at a time.
  const blocks = Math.ceil(CONCURRENT_REQUESTS / CONCURRENT_BLOCK);
  const concurrent = await rounds(subjects, blocks, (api) => block(api, CONCURRENT_BLOCK, IN_FLIGHT), (ms) => CONCURRENT_BLOCK / (ms / 1000));
  detach();
  auth.dispose();

  const row = (id: string, benchmark: string, results: Results): Row =>
    pairedRow({
      id,
      benchmark,
      unit: "requests/s",
      goal: "≥ 0.97",
      rounds: results,
      show: (rate) => `${fmtInt(rate)} req/s`,
      showRatio: (ratio) => fmtNum(ratio, 3),
      met: ({ ratio }) => ratio >= 0.97,
    });
  return [
    row("2a", `2a. throughput, sequential GETs (${fmtInt(SEQUENTIAL_REQUESTS)} per round, 1 / median time; \`attach()\` vs static header)`, sequential),
    row(
      "2b",
      `2b. throughput, ${IN_FLIGHT} in flight (${fmtInt(CONCURRENT_REQUESTS)} GETs per round in blocks of ${CONCURRENT_BLOCK}, median block; \`attach()\` vs static header)`,
      concurrent,
    ),
  ];
}

/**
 * A warm-up round (sockets, JIT), then ROUNDS rounds. In a round the subjects take `turns` turns each,
 * alternating, `turn` timing one in ms; the round's figure is `rate` of a subject's median turn.
 */
async function rounds(subjects: Subjects, turns: number, turn: (api: AxiosInstance) => Promise<number>, rate: (medianMs: number) => number): Promise<Results> {
  const names = Object.keys(subjects) as (keyof Subjects)[];
  const round = async (): Promise<Record<keyof Subjects, number>> => {
    const times: Results = { baseline: [], ours: [] };
    for (let i = 0; i < turns; i += 1) {
      for (const name of i % 2 === 0 ? names : [...names].reverse()) times[name].push(await turn(subjects[name]));
    }
    return { baseline: rate(median(times.baseline)), ours: rate(median(times.ours)) };
  };
  await round();
  const results: Results = { baseline: [], ours: [] };
  for (let n = 0; n < ROUNDS; n += 1) {
    const rates = await round();
    for (const name of names) results[name].push(rates[name]);
  }
  return results;
}

async function timedGet(api: AxiosInstance): Promise<number> {
  const start = performance.now();
  await api.get("/x");
  return performance.now() - start;
}

/** ms for `total` GETs, `inFlight` at a time. */
async function block(api: AxiosInstance, total: number, inFlight: number): Promise<number> {
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < total) {
      issued += 1;
      await api.get("/x");
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return performance.now() - start;
}
