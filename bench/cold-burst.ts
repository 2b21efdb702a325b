/**
 * 3. Cold burst and 5a. naive cold burst: BURST concurrent requests on a fresh client, against the
 * same burst with the token fetched beforehand, and against the naive snippet.
 */
import { performance } from "node:perf_hooks";
import axios, { type AxiosInstance } from "axios";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { createNaiveInterceptor } from "./naive.js";
import { CLIENT_ID, CLIENT_SECRET, clientOptions, TOKEN_DELAY_MS, type Setup } from "./servers.js";
import { fmtInt, fmtMs, fmtNum, interleaved, median, ROUNDS } from "./stats.js";
import { pairedRow, type Row } from "./table.js";

const BURST = 1_000;
export const settings = { BURST };

export async function coldBurst({ baseURL, agent, tokens }: Setup): Promise<Row[]> {
  const tokenCounts = { cold: [] as number[], naive: [] as number[] };
  /** One burst on a fresh client; returns the time to the last response and records the token requests. */
  const run = async (kind: "cold" | "warm" | "naive"): Promise<number> => {
    const api = axios.create({ baseURL, httpAgent: agent });
    if (kind === "naive") {
      api.interceptors.request.use(createNaiveInterceptor(tokens.url, CLIENT_ID, CLIENT_SECRET));
      const before = tokens.count;
      const elapsed = await burst(api, BURST);
      tokenCounts.naive.push(tokens.count - before);
      return elapsed;
    }
    const auth = createTokenRefreshInterceptor(clientOptions(tokens.url));
    const detach = auth.attach(api);
    try {
      if (kind === "warm") await auth.getAccessToken(); // not timed
      const before = tokens.count;
      const elapsed = await burst(api, BURST);
      if (kind === "cold") tokenCounts.cold.push(tokens.count - before);
      return elapsed;
    } finally {
      detach();
      auth.dispose();
    }
  };
  for (const kind of ["cold", "warm", "naive"] as const) await run(kind); // warm-up
  tokenCounts.cold.length = 0;
  tokenCounts.naive.length = 0;
  const results = await interleaved(["cold", "warm", "naive"] as const, ROUNDS, run);

  const maxColdTokens = Math.max(...tokenCounts.cold);
  const naiveTokens = median(tokenCounts.naive);
  const lastResponse = (id: string, benchmark: string, baseline: "warm" | "naive", goal: string) =>
    pairedRow({ id, benchmark, unit: "ms", goal, rounds: { ours: results.cold, baseline: results[baseline] }, show: fmtMs });
  return [
    {
      id: "3a",
      benchmark: `3a. cold burst, ${fmtInt(BURST)} concurrent on an empty cache: token requests (max over rounds)`,
      unit: "token requests",
      ours: maxColdTokens,
      baseline: undefined,
      ratio: undefined,
      goal: "= 1",
      met: tokenCounts.cold.every((count) => count === 1),
      rounds: { ours: tokenCounts.cold },
      display: { ours: String(maxColdTokens), baseline: "—", ratio: "—" },
    },
    lastResponse(
      "3b",
      "3b. cold burst: time to last response (vs same burst, token pre-warmed)",
      "warm",
      `— (+ one ${TOKEN_DELAY_MS} ms token request)`,
    ),
    {
      id: "5a",
      benchmark: "5a. cold burst, ours vs naive snippet: token requests",
      unit: "token requests",
      ours: maxColdTokens,
      baseline: naiveTokens,
      ratio: maxColdTokens / naiveTokens,
      goal: "— (README figure)",
      met: undefined,
      rounds: { ours: tokenCounts.cold, baseline: tokenCounts.naive },
      display: { ours: String(maxColdTokens), baseline: fmtInt(naiveTokens), ratio: fmtNum(maxColdTokens / naiveTokens, 3) },
    },
    lastResponse("5a", "5a. cold burst, ours vs naive snippet: time to last response", "naive", "— (README figure)"),
  ];
}

/** ms to the last response of `n` GETs issued at once. */
async function burst(api: AxiosInstance, n: number): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: n }, () => api.get("/x")));
  return performance.now() - start;
}
