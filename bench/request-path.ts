/**
 * 1d–1e. The hot path inside real requests: the time from `instance.request()` to the start of the
 * adapter (a wrapping adapter notes `performance.now()`, then calls axios's http adapter), for an
 * instance with `attach()` against one with a synchronous interceptor that sets a constant header
 * with `headers.set`, and a second such instance against the first (the A/A row). Requests go to the
 * loopback resource server, the instances taking turns request by request: every timed stretch runs
 * after a whole request and response, with the CPU caches as cold as a service leaves them.
 *
 * It is axios's own request path (config merge, headers, the interceptor chain) plus the
 * interceptor's work; the response side is in rows 2 and 8.
 */
import { performance } from "node:perf_hooks";
import axios, { type AxiosAdapter, type AxiosInstance, type InternalAxiosRequestConfig } from "axios";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { clientOptions, type Setup } from "./servers.js";
import { fmtInt, fmtNum, median, ROUNDS, roundsOfTurns } from "./stats.js";
import { pairedRow, type Row } from "./table.js";

const REQUEST_PATH_REQUESTS = 2_000; // per subject and round
export const settings = { REQUEST_PATH_REQUESTS };

type Subject = "constant" | "constant again" | "ours";

export async function requestPath({ baseURL, agent, tokens }: Setup): Promise<Row[]> {
  const http = axios.getAdapter("http");
  let adapterStartedAt = Number.NaN;
  const adapter: AxiosAdapter = (config) => {
    adapterStartedAt = performance.now();
    return http(config);
  };
  const instance = (): AxiosInstance => axios.create({ baseURL, httpAgent: agent, adapter });
  const auth = createTokenRefreshInterceptor(clientOptions(tokens.url));
  const ours = instance();
  const detach = auth.attach(ours);
  const value = `Bearer ${await auth.getAccessToken()}`;
  const withConstant = (): AxiosInstance => {
    const api = instance();
    api.interceptors.request.use(constantHeaderNow(value), undefined, { synchronous: true });
    return api;
  };
  const subjects: Record<Subject, AxiosInstance> = { constant: withConstant(), "constant again": withConstant(), ours };

  /** µs from request() to the adapter's start; the request must have carried `value`. */
  const timed = async (api: AxiosInstance): Promise<number> => {
    adapterStartedAt = Number.NaN;
    const start = performance.now();
    const response = await api.get("/x");
    if (response.config.headers.Authorization !== value) throw new Error("a request went without the expected Authorization");
    return (adapterStartedAt - start) * 1000;
  };
  const results = await roundsOfTurns({
    names: Object.keys(subjects) as Subject[],
    rounds: ROUNDS,
    turns: REQUEST_PATH_REQUESTS,
    turn: (name) => timed(subjects[name]),
    figure: median,
  });
  detach();
  auth.dispose();

  const row = (id: string, benchmark: string, subject: Subject, goal: string, met?: (figures: { ratio: number }) => boolean): Row =>
    pairedRow({
      id,
      benchmark,
      unit: "µs",
      goal,
      rounds: { ours: results[subject], baseline: results.constant },
      show: (us) => `${fmtNum(us, 1)} µs`,
      met,
    });
  return [
    row(
      "1d",
      `1d. hot path inside real loopback requests: \`request()\` to the adapter's start, median of ${fmtInt(REQUEST_PATH_REQUESTS)} per round, request by request (\`attach()\` vs synchronous interceptor calling \`headers.set\`)`,
      "ours",
      "≤ 1.2×",
      ({ ratio }) => ratio <= 1.2,
    ),
    row(
      "1e",
      "1e. hot path inside requests, control: a second constant-header instance vs the first (A/A)",
      "constant again",
      "— (noise floor)",
    ),
  ];
}

/** The 1d baseline: a synchronous interceptor that sets a constant header. */
function constantHeaderNow(value: string): (config: InternalAxiosRequestConfig) => InternalAxiosRequestConfig {
  return (config) => {
    config.headers.set("Authorization", value);
    return config;
  };
}
