/**
 * `npm run bench`: the interceptor against baselines measured in the same run, on loopback servers
 * in this process (the resource server on the main thread, the token endpoint in a worker thread, as
 * an identity provider is not on its client's event loop). Every figure is the median of several
 * rounds; the compared subjects take turns within each round, so a machine that slows down mid-run
 * slows both down, and a ratio is the median of the per-round ratios (ours/baseline within one
 * round). Prints one markdown table.
 *
 *   npm run bench                 # print the table
 *   npm run bench -- --json       # also write bench/results.json
 *   npm run bench -- --only=1,4   # some rows only, while working on them
 *
 * Heap figures need `global.gc`: without `--expose-gc` the script re-runs itself with it.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { Agent } from "node:http";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import axios, { AxiosHeaders, type AxiosInstance, type InternalAxiosRequestConfig } from "axios";
import { createTokenRefreshInterceptor, type CommonTokenRefreshOptions, type TokenRefreshOptions } from "../src/index.js";
import { createNaiveInterceptor } from "./naive.js";
import { startResourceServer, startTokenServer, type TokenServer } from "./servers.js";
import { fmtBytes, fmtInt, fmtMs, fmtNum, markdownTable, median, percentile, spread, type Row } from "./stats.js";
import { fleet } from "./fleet.js";

const ROUNDS = 5;
const HOT_ROUNDS = 15; // short rounds: a per-call figure drifts with the garbage collector's state
const HOT_CALLS = 60_000; // per subject and round
const SEQUENTIAL_REQUESTS = 2_000;
const CONCURRENT_REQUESTS = 5_000;
const IN_FLIGHT = 64;
const CONCURRENT_BLOCK = 250;
const BURST = 1_000;
const TOKEN_DELAY_MS = 20;
const REFRESH = { lifetimeS: 2, refreshMarginMs: 1_000, expiryBufferMs: 100, concurrency: 32, durationMs: 20_000 };
const MEMORY_CALLS = 200_000;
const NEARBY_MS = 250;
const CONTROL_SHIFTS_MS = [200, 300, 400, 500, 600, 700, 800];
const MiB = 1024 * 1024;

type Interceptor = (config: InternalAxiosRequestConfig) => Promise<InternalAxiosRequestConfig>;
type Gc = () => void;
type Options = (extra?: Partial<TokenRefreshOptions>) => TokenRefreshOptions;


async function main(collect: Gc): Promise<void> {
  const writeJson = process.argv.includes("--json");
  const started = performance.now();
  const machine = {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    axios: axios.VERSION,
  };
  console.log(`axios-token-refresh benchmark — ${new Date().toISOString()}`);
  const loadAtStart = os.loadavg()[0] ?? Number.NaN;
  console.log(
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.platform}, load average ${fmtNum(loadAtStart, 2)}; node ${machine.node}; axios ${machine.axios}`,
  );
  console.log(
    `${ROUNDS} rounds per figure (median; ratio = median of per-round ratios); loopback servers in this process; token endpoint answers after ${TOKEN_DELAY_MS} ms\n`,
  );

  const resource = await startResourceServer();
  const tokens = await startTokenServer({ delayMs: TOKEN_DELAY_MS, lifetimeS: 3600 });
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const options = (extra: Partial<CommonTokenRefreshOptions> = {}): TokenRefreshOptions => ({
    tokenUrl: tokens.url,
    clientId: "bench-client",
    clientSecret: "bench-secret",
    retry: { attempts: 1 },
    ...extra,
  });
  const rows: Row[] = [];
  const progress = (what: string) => console.error(`  … ${what} (${fmtNum((performance.now() - started) / 1000, 1)} s)`);
  // --only=1,4 runs some benchmarks (for working on one); the default runs all.
  const only = process.argv.find((arg) => arg.startsWith("--only="))?.slice("--only=".length).split(",");
  const wanted = (n: string) => only === undefined || only.includes(n);

  try {
    if (wanted("1") || wanted("5")) {
      progress("hot path");
      rows.push(...(await hotPath(resource.origin, tokens, options)));
    }
    if (wanted("2")) {
      progress("throughput");
      rows.push(...(await throughput(resource.origin, agent, options)));
    }
    if (wanted("3") || wanted("5")) {
      progress("cold burst");
      rows.push(...(await coldBurst(resource.origin, agent, tokens, options)));
    }
    if (wanted("4")) {
      progress("refresh boundary");
      rows.push(...(await refreshBoundary(resource.origin, agent)));
    }
    if (wanted("6")) {
      progress("memory");
      rows.push(await memory(resource.origin, options, collect));
    }
    if (wanted("7")) {
      progress("fleet");
      rows.push(...(await fleet()));
    }
  } finally {
    agent.destroy();
    await resource.close();
    await tokens.close();
  }

  rows.sort((a, b) => a.id.localeCompare(b.id));
  const table = markdownTable(
    ["benchmark", "ours", "baseline", "ratio", "goal", "met"],
    rows.map((row) => [row.benchmark, row.display.ours, row.display.baseline, row.display.ratio, row.goal, row.met === undefined ? "—" : row.met ? "yes" : "**NO**"]),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const loadAtEnd = os.loadavg()[0] ?? Number.NaN;
  console.log(table);
  console.log(`\n(${fmtNum(elapsedS, 1)} s, load average at the end ${fmtNum(loadAtEnd, 2)}; \`npm run bench\`)`);

  if (writeJson) {
    const path = fileURLToPath(new URL("./results.json", import.meta.url));
    const settings = {
      ROUNDS,
      HOT_ROUNDS,
      HOT_CALLS,
      SEQUENTIAL_REQUESTS,
      CONCURRENT_REQUESTS,
      CONCURRENT_BLOCK,
      IN_FLIGHT,
      BURST,
      TOKEN_DELAY_MS,
      REFRESH,
      NEARBY_MS,
      CONTROL_SHIFTS_MS,
      MEMORY_CALLS,
    };
    const figures = rows.map(({ display: _display, ...row }) => ({
      ...row,
      // How far apart the rounds were (max/min − 1).
      spread: row.rounds === undefined ? undefined : { ours: spread(row.rounds.ours), baseline: row.rounds.baseline && spread(row.rounds.baseline) },
    }));
    const run = { date: new Date().toISOString(), elapsedS, loadAverage: { start: loadAtStart, end: loadAtEnd } };
    await writeFile(path, `${JSON.stringify({ ...run, machine, settings, rows: figures }, null, 2)}\n`);
    console.log(`figures written to ${path}`);
  }
  const unmet = rows.filter((row) => row.met === false);
  if (unmet.length > 0) console.log(`\ngoals not met: ${unmet.map((row) => row.id).join(", ")}`);
}

// ---------------------------------------------------------------------------------------------
// Rounds

/**
 * Runs `measure` once per subject and round, the order flipped every round, so that drift of the
 * machine hits every subject alike. Returns each subject's values, round by round.
 */
async function interleaved<K extends string>(names: readonly K[], rounds: number, measure: (name: K) => Promise<number>): Promise<Record<K, number[]>> {
  const results = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) results[name].push(await measure(name));
  }
  return results;
}

/** Median over rounds of ours/baseline within the round: each pair ran under the same conditions. */
function pairedRatio(ours: readonly number[], baseline: readonly number[]): number {
  return median(ours.map((value, i) => value / (baseline[i] ?? Number.NaN)));
}

// ---------------------------------------------------------------------------------------------
// 1. Hot path, 5b. naive hot path

function configFor(baseURL: string): InternalAxiosRequestConfig {
  // What axios hands a request interceptor: merged config, headers already an AxiosHeaders.
  return { headers: new AxiosHeaders(), baseURL, url: "/x" } as InternalAxiosRequestConfig;
}

/** ns per `await interceptor(config)`, a fresh config each call as axios makes one per request. */
async function nsPerCall(interceptor: Interceptor, baseURL: string, calls: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < calls; i += 1) await interceptor(configFor(baseURL));
  return ((performance.now() - start) * 1e6) / calls;
}

/** The baseline: an interceptor that sets a constant header. */
function constantHeader(value: string): Interceptor {
  return async (config) => {
    config.headers.set("Authorization", value);
    return config;
  };
}

async function expectAuthorization(interceptor: Interceptor, baseURL: string, expected: string, name: string): Promise<void> {
  const config = await interceptor(configFor(baseURL));
  const actual = config.headers.get("Authorization");
  if (actual !== expected) throw new Error(`${name} set Authorization ${String(actual)}, expected ${expected}`);
}

async function hotPath(baseURL: string, tokens: TokenServer, options: Options): Promise<Row[]> {
  const auth = createTokenRefreshInterceptor(options());
  const token = await auth.getAccessToken();
  const naive = createNaiveInterceptor(tokens.url, "bench-client", "bench-secret");
  await naive(configFor(baseURL)); // warm: fetches its token once
  // axios's AxiosHeaders.set scans the value for control characters, so its cost grows with the
  // value's length: the fair baseline sets a constant of the token's length; "Bearer constant" is shown too.
  const subjects: Record<"baseline" | "short" | "ours" | "naive", Interceptor> = {
    baseline: constantHeader(`Bearer ${token}`),
    short: constantHeader("Bearer constant"),
    ours: auth,
    naive,
  };
  await expectAuthorization(auth, baseURL, `Bearer ${token}`, "the interceptor");
  await expectAuthorization(naive, baseURL, `Bearer ${(await tokens.exchanges()).at(-1)?.token}`, "the naive snippet");
  const countBefore = tokens.count;

  // The naive snippet decodes a JWT per call, ~10× slower: fewer calls keep its rounds as long.
  const calls = (name: keyof typeof subjects) => (name === "naive" ? HOT_CALLS / 10 : HOT_CALLS);
  for (const name of Object.keys(subjects) as (keyof typeof subjects)[]) await nsPerCall(subjects[name], baseURL, calls(name) / 2); // JIT
  const results = await interleaved(Object.keys(subjects) as (keyof typeof subjects)[], HOT_ROUNDS, (name) => nsPerCall(subjects[name], baseURL, calls(name)));
  if (tokens.count !== countBefore) throw new Error("a token was fetched during the hot-path rounds");
  auth.dispose();

  const ours = median(results.ours);
  const baseline = median(results.baseline);
  const short = median(results.short);
  const naiveNs = median(results.naive);
  const ratio = pairedRatio(results.ours, results.baseline);
  const shortRatio = pairedRatio(results.ours, results.short);
  const naiveRatio = pairedRatio(results.ours, results.naive);
  return [
    {
      id: "1a",
      benchmark: `1a. hot path: \`auth(config)\`, warm token (vs interceptor setting a constant header of the same length, ${token.length + 7} chars)`,
      unit: "ns/call",
      ours,
      baseline,
      ratio,
      goal: "≤ 3× and < 1 µs",
      met: ratio <= 3 && ours < 1000,
      rounds: { ours: results.ours, baseline: results.baseline },
      display: { ours: `${fmtInt(ours)} ns`, baseline: `${fmtInt(baseline)} ns`, ratio: `${fmtNum(ratio, 2)}×` },
    },
    {
      id: "1b",
      benchmark: "1b. hot path, same calls (vs interceptor setting `Bearer constant`, 15 chars)",
      unit: "ns/call",
      ours,
      baseline: short,
      ratio: shortRatio,
      goal: "— (see 1a)",
      met: undefined,
      rounds: { ours: results.ours, baseline: results.short },
      display: { ours: `${fmtInt(ours)} ns`, baseline: `${fmtInt(short)} ns`, ratio: `${fmtNum(shortRatio, 2)}×` },
    },
    {
      id: "5b",
      benchmark: "5b. hot path, ours vs naive snippet (`jwtDecode` per request)",
      unit: "ns/call",
      ours,
      baseline: naiveNs,
      ratio: naiveRatio,
      goal: "— (README figure)",
      met: undefined,
      rounds: { ours: results.ours, baseline: results.naive },
      display: { ours: `${fmtInt(ours)} ns`, baseline: `${fmtInt(naiveNs)} ns`, ratio: `${fmtNum(naiveRatio, 2)}×` },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput

async function concurrent(api: AxiosInstance, total: number, inFlight: number): Promise<number> {
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

async function throughput(baseURL: string, agent: Agent, options: Options): Promise<Row[]> {
  const ourApi = axios.create({ baseURL, httpAgent: agent });
  const auth = createTokenRefreshInterceptor(options());
  const detach = auth.attach(ourApi);
  const token = await auth.getAccessToken();
  // Same header bytes as ours, set once on the instance.
  const staticApi = axios.create({ baseURL, httpAgent: agent, headers: { Authorization: `Bearer ${token}` } });
  const subjects = { baseline: staticApi, ours: ourApi };
  const names = Object.keys(subjects) as (keyof typeof subjects)[];

  // Sequential: the two instances take turns request by request (A B B A …), and a round's figure is
  // 1 / its median request time. On a shared VM the time per request drifts by tens of % within
  // seconds, and a burst from another process lands on a few requests of either side: turns keep
  // the drift off the ratio, the median keeps the bursts off.
  const sequentialRound = async (): Promise<Record<keyof typeof subjects, number>> => {
    const times = { baseline: [] as number[], ours: [] as number[] };
    for (let i = 0; i < SEQUENTIAL_REQUESTS; i += 1) {
      for (const name of i % 2 === 0 ? names : [...names].reverse()) {
        const start = performance.now();
        await subjects[name].get("/x");
        times[name].push(performance.now() - start);
      }
    }
    return { baseline: 1000 / median(times.baseline), ours: 1000 / median(times.ours) };
  };
  await sequentialRound(); // warm-up: sockets, JIT
  const seq = { baseline: [] as number[], ours: [] as number[] };
  for (let round = 0; round < ROUNDS; round += 1) {
    const rates = await sequentialRound();
    for (const name of names) seq[name].push(rates[name]);
  }

  // Concurrent: the same idea with blocks of CONCURRENT_BLOCK requests, IN_FLIGHT at a time.
  const concurrentRound = async (): Promise<Record<keyof typeof subjects, number>> => {
    const times = { baseline: [] as number[], ours: [] as number[] };
    for (let block = 0; block * CONCURRENT_BLOCK < CONCURRENT_REQUESTS; block += 1) {
      for (const name of block % 2 === 0 ? names : [...names].reverse()) times[name].push(await concurrent(subjects[name], CONCURRENT_BLOCK, IN_FLIGHT));
    }
    return { baseline: CONCURRENT_BLOCK / (median(times.baseline) / 1000), ours: CONCURRENT_BLOCK / (median(times.ours) / 1000) };
  };
  await concurrentRound(); // warm-up
  const conc = { baseline: [] as number[], ours: [] as number[] };
  for (let round = 0; round < ROUNDS; round += 1) {
    const rates = await concurrentRound();
    for (const name of names) conc[name].push(rates[name]);
  }
  detach();
  auth.dispose();

  const row = (id: string, benchmark: string, results: Record<keyof typeof subjects, number[]>): Row => {
    const ours = median(results.ours);
    const baseline = median(results.baseline);
    const ratio = pairedRatio(results.ours, results.baseline);
    return {
      id,
      benchmark,
      unit: "requests/s",
      ours,
      baseline,
      ratio,
      goal: "≥ 0.97",
      met: ratio >= 0.97,
      rounds: results,
      display: { ours: `${fmtInt(ours)} req/s`, baseline: `${fmtInt(baseline)} req/s`, ratio: fmtNum(ratio, 3) },
    };
  };
  return [
    row("2a", `2a. throughput, sequential GETs (${fmtInt(SEQUENTIAL_REQUESTS)} per round, 1 / median time; \`attach()\` vs static header)`, seq),
    row(
      "2b",
      `2b. throughput, ${IN_FLIGHT} in flight (${fmtInt(CONCURRENT_REQUESTS)} GETs per round in blocks of ${CONCURRENT_BLOCK}, median block; \`attach()\` vs static header)`,
      conc,
    ),
  ];
}

// ---------------------------------------------------------------------------------------------
// 3. Cold burst, 5a. naive cold burst

async function burst(api: AxiosInstance, n: number): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: n }, () => api.get("/x")));
  return performance.now() - start;
}

async function coldBurst(baseURL: string, agent: Agent, tokens: TokenServer, options: Options): Promise<Row[]> {
  const tokenCounts = { cold: [] as number[], naive: [] as number[] };
  /** One burst on a fresh client; returns the time to the last response and records the token requests. */
  const run = async (kind: "cold" | "warm" | "naive"): Promise<number> => {
    const api = axios.create({ baseURL, httpAgent: agent });
    if (kind === "naive") {
      api.interceptors.request.use(createNaiveInterceptor(tokens.url, "bench-client", "bench-secret"));
      const before = tokens.count;
      const elapsed = await burst(api, BURST);
      tokenCounts.naive.push(tokens.count - before);
      return elapsed;
    }
    const auth = createTokenRefreshInterceptor(options());
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
  const cold = median(results.cold);
  const warm = median(results.warm);
  const naive = median(results.naive);
  const coldRatio = pairedRatio(results.cold, results.warm);
  const naiveRatio = pairedRatio(results.cold, results.naive);
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
    {
      id: "3b",
      benchmark: "3b. cold burst: time to last response (vs same burst, token pre-warmed)",
      unit: "ms",
      ours: cold,
      baseline: warm,
      ratio: coldRatio,
      goal: `— (+ one ${TOKEN_DELAY_MS} ms token request)`,
      met: undefined,
      rounds: { ours: results.cold, baseline: results.warm },
      display: { ours: fmtMs(cold), baseline: fmtMs(warm), ratio: `${fmtNum(coldRatio, 2)}×` },
    },
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
    {
      id: "5a",
      benchmark: "5a. cold burst, ours vs naive snippet: time to last response",
      unit: "ms",
      ours: cold,
      baseline: naive,
      ratio: naiveRatio,
      goal: "— (README figure)",
      met: undefined,
      rounds: { ours: results.cold, baseline: results.naive },
      display: { ours: fmtMs(cold), baseline: fmtMs(naive), ratio: `${fmtNum(naiveRatio, 2)}×` },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// 4. Refresh boundary

/** Epoch ms with sub-ms precision, comparable with the token worker's timestamps (unlike performance.now()). */
const clock = (): number => performance.timeOrigin + performance.now();

interface Window {
  start: number;
  end: number;
}

/** Latencies of requests issued inside `windows`, and of those issued within NEARBY_MS of one but outside. */
function split(samples: readonly { issuedAt: number; latency: number }[], windows: readonly Window[]): { inside: number[]; nearby: number[] } {
  const inside: number[] = [];
  const nearby: number[] = [];
  for (const { issuedAt: t, latency } of samples) {
    if (windows.some((w) => t >= w.start && t <= w.end)) inside.push(latency);
    else if (windows.some((w) => t >= w.start - NEARBY_MS && t <= w.end + NEARBY_MS)) nearby.push(latency);
  }
  return { inside, nearby };
}

async function refreshBoundary(baseURL: string, agent: Agent): Promise<Row[]> {
  const tokens = await startTokenServer({ delayMs: TOKEN_DELAY_MS, lifetimeS: REFRESH.lifetimeS });
  const refreshed = { background: 0, waitedFor: 0 };
  const api = axios.create({ baseURL, httpAgent: agent });
  const auth = createTokenRefreshInterceptor({
    tokenUrl: tokens.url,
    clientId: "bench-client",
    clientSecret: "bench-secret",
    retry: { attempts: 1 },
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
    const windows: Window[] = exchanges.slice(firstExchange).flatMap((e) => (e.answeredAt === undefined ? [] : [{ start: e.receivedAt, end: e.answeredAt }]));
    const refresh = split(samples, windows);
    const outside = samples.filter(({ issuedAt: t }) => !windows.some((w) => t >= w.start && t <= w.end)).map((sample) => sample.latency);
    // Control: the same windows moved 200-800 ms later, when no refresh runs (one runs about every
    // second). The spread of their ratios is what this measurement reads with nothing to find.
    const controls = CONTROL_SHIFTS_MS.map((shift) => split(samples, windows.map((w) => ({ start: w.start + shift, end: w.end + shift }))));

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
      control: { shiftsMs: CONTROL_SHIFTS_MS, p50Ratios: controls.map((c) => ratioAt(c, 50)), p99Ratios: controls.map((c) => ratioAt(c, 99)) },
    };
    return [
      latencyRow("4a", `4a. refresh boundary, ${REFRESH.concurrency} in flight, ${REFRESH.lifetimeS} s tokens: p50 latency, issued during a refresh (vs nearby outside; ${counts})`, 50),
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

// ---------------------------------------------------------------------------------------------
// 6. Memory

function heapAfterGc(collect: Gc): number {
  for (let i = 0; i < 3; i += 1) collect();
  return process.memoryUsage().heapUsed;
}

async function heapGrowth(interceptor: Interceptor, baseURL: string, collect: Gc): Promise<number> {
  const before = heapAfterGc(collect);
  for (let i = 0; i < MEMORY_CALLS; i += 1) await interceptor(configFor(baseURL));
  return heapAfterGc(collect) - before;
}

async function memory(baseURL: string, options: Options, collect: Gc): Promise<Row> {
  const auth = createTokenRefreshInterceptor(options());
  const token = await auth.getAccessToken();
  const subjects = { baseline: constantHeader(`Bearer ${token}`), ours: auth as Interceptor };
  for (const interceptor of Object.values(subjects)) await nsPerCall(interceptor, baseURL, 20_000); // JIT and inline caches first
  const results = await interleaved(["baseline", "ours"] as const, ROUNDS, (name) => heapGrowth(subjects[name], baseURL, collect));
  auth.dispose();
  const ours = median(results.ours);
  const baseline = median(results.baseline);
  return {
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
  };
}

// ---------------------------------------------------------------------------------------------
// Entry (last, so every const above is initialized)

const gc = (globalThis as { gc?: Gc }).gc;
if (gc === undefined) {
  if (process.env.BENCH_GC_REEXEC === "1") throw new Error("global.gc is still missing after re-running with --expose-gc");
  // Same loader flags (tsx), plus --expose-gc; the child inherits stdio and its exit code is ours.
  const child = spawn(process.execPath, ["--expose-gc", ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, BENCH_GC_REEXEC: "1" },
  });
  child.on("exit", (code, signal) => {
    process.exitCode = code ?? (signal === null ? 0 : 1);
  });
} else {
  await main(gc);
}
