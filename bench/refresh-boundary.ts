/**
 * 4. Refresh boundary: latency of requests issued while a background refresh is under way, against
 * requests issued near one, at a steady REFRESH.concurrency in flight with tokens that live
 * REFRESH.lifetimeS; the 4c control reads the same comparison where no refresh runs.
 */
import { performance } from "node:perf_hooks";
import axios from "axios";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { clientOptions, startTokenServer, TOKEN_DELAY_MS, type Setup } from "./servers.js";
import { fmtInt, fmtMs, fmtNum, median, percentile } from "./stats.js";
import type { Row } from "./table.js";

const REFRESH = { lifetimeS: 2, refreshMarginMs: 1_000, expiryBufferMs: 100, concurrency: 32, durationMs: 20_000 };
const NEARBY_MS = 250;
const CONTROL_SHIFTS_MS = [200, 300, 400, 500, 600, 700, 800];
export const settings = { REFRESH, NEARBY_MS, CONTROL_SHIFTS_MS };

export async function refreshBoundary({ baseURL, agent }: Setup): Promise<Row[]> {
  // Its own token endpoint: short-lived tokens, so that the run sees refreshes.
  const tokens = await startTokenServer({ delayMs: TOKEN_DELAY_MS, lifetimeS: REFRESH.lifetimeS });
  const refreshed = { background: 0, waitedFor: 0 };
  const api = axios.create({ baseURL, httpAgent: agent });
  const auth = createTokenRefreshInterceptor({
    ...clientOptions(tokens.url),
    refreshMarginMs: REFRESH.refreshMarginMs,
    expiryBufferMs: REFRESH.expiryBufferMs,
    refreshJitter: 0,
    onEvent: (event) => {
      if (event.type === "token_refreshed") refreshed[event.background ? "background" : "waitedFor"] += 1;
    },
  });
  const detach = auth.attach(api);
  try {
    await auth.getAccessToken();
    for (let i = 0; i < 200; i += 1) await api.get("/x"); // warm-up
    const firstExchange = tokens.count; // token requests from here on were made under load
    refreshed.background = 0;
    refreshed.waitedFor = 0;

    const samples: { issuedAt: number; latency: number }[] = [];
    const deadline = clock() + REFRESH.durationMs;
    const worker = async (): Promise<void> => {
      while (clock() < deadline) {
        const issuedAt = clock();
        await api.get("/x");
        samples.push({ issuedAt, latency: clock() - issuedAt });
      }
    };
    await Promise.all(Array.from({ length: REFRESH.concurrency }, worker));

    // A refresh window is the time the endpoint held the refresh's token request, stamped by the
    // token worker. Windows whose end this thread stamps (say, when the new token is stored) last
    // longer whenever this thread is slow, and so collect slow requests: around a bare setTimeout
    // they read 1.2-1.3 on a busy machine.
    const exchanges = await tokens.exchanges();
    const windows: Window[] = exchanges
      .slice(firstExchange)
      .flatMap((e) => (e.answeredAt === undefined ? [] : [{ start: e.receivedAt, end: e.answeredAt }]));
    const refresh = split(samples, windows);
    const outside = samples.filter(({ issuedAt: t }) => !windows.some((w) => t >= w.start && t <= w.end)).map((sample) => sample.latency);
    // Control: the same windows moved 200-800 ms later, when no refresh runs (one runs about every
    // second). The spread of their ratios is what this measurement reads with nothing to find.
    const controls = CONTROL_SHIFTS_MS.map((shift) =>
      split(
        samples,
        windows.map((w) => ({ start: w.start + shift, end: w.end + shift })),
      ),
    );

    // Token requests per token lifetime: requests that reached the endpoint while each token was the
    // newest one (from its answer to the next answer). A duplicate refresh would make one of these 2.
    const perToken: number[] = [];
    for (let k = Math.max(0, firstExchange - 1); k + 1 < exchanges.length; k += 1) {
      const from = exchanges[k]?.answeredAt ?? Infinity;
      const to = exchanges[k + 1]?.answeredAt ?? Infinity;
      perToken.push(exchanges.filter((e) => e.receivedAt >= from && e.receivedAt < to).length);
    }
    const maxPerToken = perToken.length === 0 ? Number.NaN : Math.max(...perToken);
    const meanPerToken = perToken.reduce((a, b) => a + b, 0) / perToken.length;

    const ratioAt = (part: { inside: number[]; nearby: number[] }, p: number) => percentile(part.inside, p) / percentile(part.nearby, p);
    const range = (p: number) => {
      const ratios = controls.map((c) => ratioAt(c, p));
      return { min: Math.min(...ratios), max: Math.max(...ratios) };
    };
    const counts = `${fmtInt(refresh.inside.length)} in ${windows.length} windows / ${fmtInt(refresh.nearby.length)} within ${NEARBY_MS} ms of one`;
    const latencyRow = (id: string, benchmark: string, p: number): Row => {
      const ours = percentile(refresh.inside, p);
      const baseline = percentile(refresh.nearby, p);
      return {
        id,
        benchmark,
        unit: "ms",
        ours,
        baseline,
        ratio: ours / baseline,
        goal: "≤ 1.1",
        met: ours / baseline <= 1.1,
        display: { ours: fmtMs(ours), baseline: fmtMs(baseline), ratio: fmtNum(ours / baseline, 2) },
        extra,
      };
    };
    const p50Range = range(50);
    const p99Range = range(99);
    const extra = {
      windows: windows.length,
      windowMs: median(windows.map((w) => w.end - w.start)),
      issuedInWindows: refresh.inside.length,
      issuedNearby: refresh.nearby.length,
      allOutside: { p50: percentile(outside, 50), p99: percentile(outside, 99) },
      control: {
        shiftsMs: CONTROL_SHIFTS_MS,
        p50Ratios: controls.map((c) => ratioAt(c, 50)),
        p99Ratios: controls.map((c) => ratioAt(c, 99)),
      },
    };
    return [
      latencyRow(
        "4a",
        `4a. refresh boundary, ${REFRESH.concurrency} in flight, ${REFRESH.lifetimeS} s tokens: p50 latency, issued during a refresh (vs nearby outside; ${counts})`,
        50,
      ),
      latencyRow("4b", "4b. refresh boundary: p99 latency, issued during a refresh (vs nearby outside)", 99),
      {
        id: "4c",
        benchmark: `4c. refresh boundary, control: the same windows moved ${CONTROL_SHIFTS_MS[0]}–${CONTROL_SHIFTS_MS.at(-1)} ms later, no refresh (p50, p99 ratio ranges)`,
        unit: "ratio",
        ours: p50Range.max,
        baseline: p99Range.max,
        ratio: undefined,
        goal: "— (noise floor)",
        met: undefined,
        display: {
          ours: `${fmtNum(p50Range.min, 2)}–${fmtNum(p50Range.max, 2)}`,
          baseline: `${fmtNum(p99Range.min, 2)}–${fmtNum(p99Range.max, 2)}`,
          ratio: "—",
        },
      },
      {
        id: "4d",
        benchmark: `4d. refresh boundary: token requests per token lifetime (max; mean ${fmtNum(meanPerToken, 2)} over ${perToken.length} tokens; ${refreshed.waitedFor} refreshes waited for)`,
        unit: "token requests",
        ours: maxPerToken,
        baseline: undefined,
        ratio: undefined,
        goal: "= 1, none waited for",
        met: maxPerToken === 1 && Math.min(...perToken) === 1 && refreshed.waitedFor === 0,
        rounds: { ours: perToken },
        display: { ours: String(maxPerToken), baseline: "—", ratio: "—" },
      },
    ];
  } finally {
    detach();
    auth.dispose();
    await tokens.close();
  }
}

/** Epoch ms with sub-ms precision, comparable with the token worker's timestamps (unlike performance.now()). */
const clock = (): number => performance.timeOrigin + performance.now();

interface Window {
  start: number;
  end: number;
}

/** Latencies of requests issued inside `windows`, and of those issued within NEARBY_MS of one but outside. */
function split(
  samples: readonly { issuedAt: number; latency: number }[],
  windows: readonly Window[],
): { inside: number[]; nearby: number[] } {
  const inside: number[] = [];
  const nearby: number[] = [];
  for (const { issuedAt: t, latency } of samples) {
    if (windows.some((w) => t >= w.start && t <= w.end)) inside.push(latency);
    else if (windows.some((w) => t >= w.start - NEARBY_MS && t <= w.end + NEARBY_MS)) nearby.push(latency);
  }
  return { inside, nearby };
}
