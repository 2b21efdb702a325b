/**
 * 1a–1c. Hot path and 5b. naive hot path: what one `auth(config)` costs with a warm token, against
 * interceptors that set a constant header with `headers.set`, against the naive snippet, and the
 * baseline against itself (the A/A row: the noise floor of the ratio).
 *
 * The interceptor's own cost: the configs (each with a fresh AxiosHeaders, as axios makes one per
 * request) are made before the timed loop, the same for every subject, and the loop only calls. Every
 * subject returns a promise that is already settled when the call returns (on the warm path ours
 * does not wait, and the baselines are async functions without an await), so the call is all the
 * work; the promises are awaited and checked after the loop. Not timed: the microtask turn in which
 * axios's promise chain takes the result, which any interceptor costs it alike. The figure is CPU
 * time per call (see nsPerCall). Warm caches: the same code runs 5,000 times in a row; row 1d is
 * the same work inside real requests.
 */
import { AxiosHeaders, type InternalAxiosRequestConfig } from "axios";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { createNaiveInterceptor } from "./naive.js";
import { CLIENT_ID, CLIENT_SECRET, clientOptions, type Setup } from "./servers.js";
import { fmtInt, interleaved } from "./stats.js";
import { pairedRow, type Row } from "./table.js";

const HOT_ROUNDS = 41; // short rounds, many of them: the median keeps off the rounds that another process disturbed
const HOT_CALLS = 5_000; // per subject and round
export const settings = { HOT_ROUNDS, HOT_CALLS };

export type Interceptor = (config: InternalAxiosRequestConfig) => Promise<InternalAxiosRequestConfig>;

type Subject = "baseline" | "baseline again" | "short" | "ours" | "naive";

export async function hotPath({ baseURL, tokens }: Setup): Promise<Row[]> {
  const auth = createTokenRefreshInterceptor(clientOptions(tokens.url));
  const token = await auth.getAccessToken();
  const naive = createNaiveInterceptor(tokens.url, CLIENT_ID, CLIENT_SECRET);
  await naive(configFor(baseURL)); // warm: fetches its token once
  // axios's AxiosHeaders.set scans the value for control characters, so its cost grows with the
  // value's length: the fair baseline sets a constant of the token's length; "Bearer constant" is shown too.
  const baseline = constantHeader(`Bearer ${token}`);
  const subjects: Record<Subject, Interceptor> = {
    baseline,
    "baseline again": baseline, // the A/A row: the same function, measured as a subject of its own
    short: constantHeader("Bearer constant"),
    ours: auth,
    naive,
  };
  await expectAuthorization(auth, baseURL, `Bearer ${token}`, "the interceptor");
  await expectAuthorization(naive, baseURL, `Bearer ${(await tokens.exchanges()).at(-1)?.token}`, "the naive snippet");
  const countBefore = tokens.count;

  // The naive snippet decodes a JWT per call, ~20× slower: fewer calls keep its rounds as long.
  const calls = (name: Subject) => (name === "naive" ? HOT_CALLS / 20 : HOT_CALLS);
  const names = Object.keys(subjects) as Subject[];
  for (const name of names) await nsPerCall(subjects[name], baseURL, calls(name)); // JIT
  const results = await interleaved(names, HOT_ROUNDS, (name) => nsPerCall(subjects[name], baseURL, calls(name)));
  if (tokens.count !== countBefore) throw new Error("a token was fetched during the hot-path rounds");
  auth.dispose();

  const versus = (
    id: string,
    benchmark: string,
    ours: Subject,
    baseline: Subject,
    goal: string,
    met?: (figures: { ours: number; ratio: number }) => boolean,
  ) =>
    pairedRow({
      id,
      benchmark,
      unit: "ns/call",
      goal,
      rounds: { ours: results[ours], baseline: results[baseline] },
      show: (ns) => `${fmtInt(ns)} ns`,
      met,
    });
  return [
    versus(
      "1a",
      `1a. hot path: \`auth(config)\`, warm token, CPU time per call, configs made beforehand (vs interceptor calling \`headers.set\` with a constant of the same length, ${token.length + 7} chars)`,
      "ours",
      "baseline",
      "≤ 0.5× and ≤ 250 ns",
      ({ ours, ratio }) => ratio <= 0.5 && ours <= 250,
    ),
    versus("1b", "1b. hot path, same calls (vs interceptor setting `Bearer constant`, 15 chars)", "ours", "short", "— (see 1a)"),
    versus("1c", "1c. hot path, control: the 1a baseline against itself (A/A)", "baseline again", "baseline", "— (noise floor)"),
    versus("5b", "5b. hot path, ours vs naive snippet (`jwtDecode` per request)", "ours", "naive", "— (README figure)"),
  ];
}

/** What axios hands a request interceptor: merged config, headers already an AxiosHeaders. */
export function configFor(baseURL: string): InternalAxiosRequestConfig {
  return { headers: new AxiosHeaders(), baseURL, url: "/x" } as InternalAxiosRequestConfig;
}

/**
 * CPU ns per `interceptor(config)`: `calls` configs made first, then only the calls are timed; the
 * promises they return are awaited after the timed loop, and each must be its own config. CPU time
 * (this process's, µs resolution; a round takes milliseconds) rather than elapsed time: on a shared
 * machine a round's elapsed time also holds the slices other processes ran in.
 */
export async function nsPerCall(interceptor: Interceptor, baseURL: string, calls: number): Promise<number> {
  // A scavenge first: the young generation then holds this round's configs only, and no collection
  // of what the subject measured before left behind lands in this one's loop.
  collectGarbage("minor");
  const configs = Array.from({ length: calls }, () => configFor(baseURL));
  const returned = new Array<Promise<InternalAxiosRequestConfig>>(calls);
  const start = process.cpuUsage();
  for (let i = 0; i < calls; i += 1) returned[i] = interceptor(configs[i] as InternalAxiosRequestConfig);
  const used = process.cpuUsage(start);
  const ns = ((used.user + used.system) * 1000) / calls;
  const settled = await Promise.all(returned);
  if (settled.some((config, i) => config !== configs[i])) throw new Error("an interceptor returned another config");
  return ns;
}

/**
 * A garbage collection now; bench/run.ts re-runs itself with --expose-gc when global.gc is missing.
 * A full one is `gc()` without options: `gc({ type: "major" })` keeps what is only garbage now.
 */
export function collectGarbage(type: "minor" | "full"): void {
  const gc = (globalThis as { gc?: (options?: { type: "minor" }) => void }).gc;
  if (gc === undefined) throw new Error("the bench needs node --expose-gc");
  if (type === "minor") gc({ type });
  else gc();
}

/** The baseline: an interceptor that sets a constant header. */
export function constantHeader(value: string): Interceptor {
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
