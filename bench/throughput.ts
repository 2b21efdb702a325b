/**
 * 2. Throughput through axios: an instance with `attach()` against one with a static header, and a
 * second static-header instance against the first (the A/A rows: the noise floor of the ratio).
 */
import { performance } from "node:perf_hooks";
import axios, { type AxiosInstance } from "axios";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { clientOptions, IN_FLIGHT, type Setup } from "./servers.js";
import { fmtInt, fmtNum, median, ROUNDS, roundsOfTurns } from "./stats.js";
import { pairedRow, type Row } from "./table.js";

const SEQUENTIAL_REQUESTS = 2_000; // per subject and round
const CONCURRENT_REQUESTS = 3_000; // per subject and round
const CONCURRENT_BLOCK = IN_FLIGHT * 2;
export const settings = { SEQUENTIAL_REQUESTS, CONCURRENT_REQUESTS, CONCURRENT_BLOCK, IN_FLIGHT };

type Subject = "static" | "static again" | "ours";

export async function throughput({ baseURL, agent, tokens }: Setup): Promise<Row[]> {
  const ourApi = axios.create({ baseURL, httpAgent: agent });
  const auth = createTokenRefreshInterceptor(clientOptions(tokens.url));
  const detach = auth.attach(ourApi);
  const token = await auth.getAccessToken();
  // Same header bytes as ours, set once on the instance.
  const staticApi = () => axios.create({ baseURL, httpAgent: agent, headers: { Authorization: `Bearer ${token}` } });
  const subjects: Record<Subject, AxiosInstance> = { static: staticApi(), "static again": staticApi(), ours: ourApi };
  const names = Object.keys(subjects) as Subject[];

  // Sequential: the instances take turns request by request, and a round's figure is 1 / its median
  // request time. On a shared VM the time per request drifts by tens of % within seconds, and a
  // burst from another process lands on a few requests of any side: turns keep the drift off the
  // ratio, the median keeps the bursts off.
  const sequential = await roundsOfTurns({
    names,
    rounds: ROUNDS,
    turns: SEQUENTIAL_REQUESTS,
    turn: (name) => timedGet(subjects[name]),
    figure: (ms) => 1000 / median(ms),
  });
  // Concurrent: the same with small blocks of CONCURRENT_BLOCK requests, IN_FLIGHT at a time; the
  // sides alternate block by block, and a round's figure is the block size / its median block time.
  const concurrent = await roundsOfTurns({
    names,
    rounds: ROUNDS,
    turns: Math.ceil(CONCURRENT_REQUESTS / CONCURRENT_BLOCK),
    turn: (name) => block(subjects[name], CONCURRENT_BLOCK, IN_FLIGHT),
    figure: (ms) => CONCURRENT_BLOCK / (median(ms) / 1000),
  });
  detach();
  auth.dispose();

  const row = (id: string, benchmark: string, results: Record<Subject, number[]>, ours: Subject, goal: string): Row =>
    pairedRow({
      id,
      benchmark,
      unit: "requests/s",
      goal,
      rounds: { ours: results[ours], baseline: results.static },
      show: (rate) => `${fmtInt(rate)} req/s`,
      showRatio: (ratio) => fmtNum(ratio, 3),
      met: ours === "ours" ? ({ ratio }) => ratio >= 0.98 : undefined,
    });
  const blocks = `blocks of ${CONCURRENT_BLOCK} GETs, ${IN_FLIGHT} at a time, ${fmtInt(CONCURRENT_REQUESTS)} per round, sides alternating block by block`;
  return [
    row(
      "2a",
      `2a. throughput, sequential GETs (${fmtInt(SEQUENTIAL_REQUESTS)} per round, sides alternating request by request, 1 / median time; \`attach()\` vs static header)`,
      sequential,
      "ours",
      "≥ 0.98",
    ),
    row(
      "2b",
      `2b. throughput, ${IN_FLIGHT} in flight (${blocks}, median block; \`attach()\` vs static header)`,
      concurrent,
      "ours",
      "≥ 0.98",
    ),
    row(
      "2c",
      "2c. throughput, control: sequential, a second static-header instance vs the first (A/A)",
      sequential,
      "static again",
      "— (noise floor)",
    ),
    row(
      "2d",
      `2d. throughput, control: ${IN_FLIGHT} in flight, a second static-header instance vs the first (A/A)`,
      concurrent,
      "static again",
      "— (noise floor)",
    ),
  ];
}

/** ms for one GET. */
export async function timedGet(api: AxiosInstance, url = "/x"): Promise<number> {
  const start = performance.now();
  await api.get(url);
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
