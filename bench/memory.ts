/** 6. Memory: heap growth over many interceptor calls with a warm token, against a constant header. */
import { createTokenRefreshInterceptor } from "../src/index.js";
import { collectGarbage, configFor, constantHeader, nsPerCall, type Interceptor } from "./hot-path.js";
import { clientOptions, type Setup } from "./servers.js";
import { fmtBytes, fmtInt, interleaved, median, ROUNDS } from "./stats.js";
import type { Row } from "./table.js";

const MEMORY_CALLS = 200_000;
export const settings = { MEMORY_CALLS };
const MiB = 1024 * 1024;

export async function memory({ baseURL, tokens }: Setup): Promise<Row[]> {
  const auth = createTokenRefreshInterceptor(clientOptions(tokens.url));
  const token = await auth.getAccessToken();
  const subjects = { baseline: constantHeader(`Bearer ${token}`), ours: auth as Interceptor };
  for (const interceptor of Object.values(subjects)) await nsPerCall(interceptor, baseURL, 20_000); // JIT and inline caches first
  const results = await interleaved(["baseline", "ours"] as const, ROUNDS, (name) => heapGrowth(subjects[name], baseURL));
  auth.dispose();
  const ours = median(results.ours);
  const baseline = median(results.baseline);
  return [
    {
      id: "6",
      benchmark: `6. heap growth after GC, ${fmtInt(MEMORY_CALLS)} interceptor calls, warm token (vs constant header)`,
      unit: "bytes",
      ours,
      baseline,
      ratio: undefined,
      goal: "< 1 MiB",
      met: ours < MiB,
      rounds: results,
      display: { ours: fmtBytes(ours), baseline: fmtBytes(baseline), ratio: "—" },
    },
  ];
}

async function heapGrowth(interceptor: Interceptor, baseURL: string): Promise<number> {
  const before = heapAfterGc();
  for (let i = 0; i < MEMORY_CALLS; i += 1) await interceptor(configFor(baseURL));
  return heapAfterGc() - before;
}

/** heapUsed after full collections. */
export function heapAfterGc(): number {
  for (let i = 0; i < 3; i += 1) collectGarbage("full");
  return process.memoryUsage().heapUsed;
}
