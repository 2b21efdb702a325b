/**
 * 8. Many interceptors in one process: 100 axios instances, each with its own `attach()`ed
 * interceptor (its own cache key, so its own token), requests round-robin over them, against 100
 * instances with a static header, and a second 100 of those against the first (the A/A row); the
 * floor, 100 instances with one synchronous interceptor doing only a warm request's checks; and the
 * heap each interceptor adds, warm, over an instance with a static header.
 */
import axios, { type AxiosInstance, type InternalAxiosRequestConfig } from "axios";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { composeRedirectHook, OriginPolicy } from "../src/origin.js";
import { createCachedSource } from "../src/token-source.js";
import { heapAfterGc } from "./memory.js";
import { clientOptions, type Setup } from "./servers.js";
import { fmtInt, fmtNum, interleaved, median, pairedRatio, ROUNDS, roundsOfTurns } from "./stats.js";
import type { Row } from "./table.js";
import { timedGet } from "./throughput.js";

const INSTANCES = 100;
const MANY_REQUESTS = 2_000; // per side and round, round-robin over the side's instances
export const settings = { INSTANCES, MANY_REQUESTS };

type Side = "static" | "static again" | "ours" | "floor";
/** The sides whose heap is measured (the floor's is not a figure of ours). */
type HeapSide = Exclude<Side, "floor">;

interface Fleet {
  apis: AxiosInstance[];
  dispose(): void;
}

export async function manyInterceptors({ baseURL, agent, tokens }: Setup): Promise<Row[]> {
  /** INSTANCES instances, each warmed by one request (ours: which fetches its token). */
  const make = async (side: Side): Promise<Fleet> => {
    const auths: { dispose(): void }[] = [];
    const apis = await Promise.all(
      Array.from({ length: INSTANCES }, async (_, i) => {
        if (side === "floor") return floorInstance(i, auths);
        if (side !== "ours") {
          const token = await tokenOf(i);
          return axios.create({ baseURL, httpAgent: agent, headers: { Authorization: `Bearer ${token}` } });
        }
        const api = axios.create({ baseURL, httpAgent: agent });
        const auth = createTokenRefreshInterceptor({ ...clientOptions(tokens.url), clientId: `bench-client-${i}` });
        auth.attach(api);
        auths.push(auth);
        return api;
      }),
    );
    await Promise.all(apis.map((api) => api.get("/x")));
    return {
      apis,
      dispose: () => {
        for (const auth of auths) auth.dispose();
      },
    };
  };
  // The static sides carry tokens of the same length as ours, fetched once.
  const staticTokens = new Map<number, string>();
  const tokenOf = async (i: number): Promise<string> => {
    let token = staticTokens.get(i);
    if (token === undefined) {
      const auth = createTokenRefreshInterceptor({ ...clientOptions(tokens.url), clientId: `bench-static-${i}` });
      token = await auth.getAccessToken();
      auth.dispose();
      staticTokens.set(i, token);
    }
    return token;
  };

  /**
   * The floor: the least a correct warm path does per request, as ONE synchronous interceptor (which
   * attach() cannot be: waiting for a token needs a second, asynchronous one): the freshness read,
   * the scan for the caller's own Authorization, the remembered origin decision and its redirect
   * hook, the header write. Its own token source, so its own token.
   */
  const floorInstance = async (i: number, disposables: { dispose(): void }[]): Promise<AxiosInstance> => {
    const { cache } = createCachedSource({ ...clientOptions(tokens.url), clientId: `bench-floor-${i}` });
    await cache.token();
    disposables.push(cache);
    const origins = new OriginPolicy(undefined, false);
    let headerToken = "";
    let header = "";
    const api = axios.create({ baseURL, httpAgent: agent });
    api.interceptors.request.use(
      (config: InternalAxiosRequestConfig) => {
        const token = cache.peek();
        if (token === undefined) throw new Error("the floor side has no token at hand");
        for (const key in config.headers) if (key.length === 13 && key.toLowerCase() === "authorization") return config;
        const allowed = origins.forRequest(config);
        if (allowed === undefined) return config;
        config.beforeRedirect = composeRedirectHook(allowed, config.beforeRedirect);
        if (token !== headerToken) {
          headerToken = token;
          header = `Bearer ${token}`;
        }
        (config.headers as unknown as Record<string, string>).Authorization = header;
        return config;
      },
      undefined,
      { synchronous: true },
    );
    return api;
  };

  // Time per request, the sides taking turns request by request, each side cycling through its instances.
  const sides: Record<Side, Fleet> = {
    static: await make("static"),
    "static again": await make("static again"),
    ours: await make("ours"),
    floor: await make("floor"),
  };
  const names = Object.keys(sides) as Side[];
  const next = Object.fromEntries(names.map((name) => [name, 0])) as Record<Side, number>;
  const perRequest = await roundsOfTurns({
    names,
    rounds: ROUNDS,
    turns: MANY_REQUESTS,
    turn: (name) => timedGet(sides[name].apis[next[name]++ % INSTANCES] as AxiosInstance),
    figure: median,
  });
  for (const side of Object.values(sides)) side.dispose();

  // Heap after GC with one side's INSTANCES instances alive (and warm), the sides in turns.
  const heapSides: readonly HeapSide[] = ["static", "static again", "ours"];
  const heap = await interleaved(heapSides, ROUNDS, async (name) => {
    const side = await make(name);
    const bytes = heapAfterGc();
    side.apis.length = 0;
    side.dispose();
    return bytes;
  });

  const differenceRow = (id: string, benchmark: string, side: Side, goal: string, met: boolean | undefined): Row => {
    const differences = perRequest[side].map((ms, i) => (ms - (perRequest.static[i] ?? Number.NaN)) * 1000);
    const difference = median(differences);
    return {
      id,
      benchmark,
      unit: "µs/request",
      ours: median(perRequest[side]) * 1000,
      baseline: median(perRequest.static) * 1000,
      ratio: pairedRatio(perRequest[side], perRequest.static),
      goal,
      met: met === undefined ? undefined : difference <= 1,
      rounds: { ours: perRequest[side], baseline: perRequest.static },
      extra: { differenceUs: difference, differencesUs: differences },
      display: {
        ours: `${fmtNum(median(perRequest[side]) * 1000, 1)} µs`,
        baseline: `${fmtNum(median(perRequest.static) * 1000, 1)} µs`,
        ratio: `${signed(difference)} µs`,
      },
    };
  };
  const bytesRow = (id: string, benchmark: string, side: HeapSide, goal: string): Row => {
    const perInterceptor = heap[side].map((bytes, i) => (bytes - (heap.static[i] ?? Number.NaN)) / INSTANCES);
    const bytes = median(perInterceptor);
    return {
      id,
      benchmark,
      unit: "bytes per instance",
      ours: bytes,
      baseline: undefined,
      ratio: undefined,
      goal,
      met: undefined,
      rounds: { ours: heap[side], baseline: heap.static },
      extra: { perInterceptor },
      display: { ours: `${fmtInt(bytes)} B`, baseline: "—", ratio: "—" },
    };
  };
  const rr = `${fmtInt(MANY_REQUESTS)} GETs per round, round-robin, sides alternating request by request`;
  return [
    differenceRow(
      "8a",
      `8a. ${INSTANCES} interceptors in one process, each its own instance and cache key: median time per GET (${rr}; vs ${INSTANCES} static-header instances)`,
      "ours",
      "≤ +1 µs",
      true,
    ),
    differenceRow(
      "8e",
      `8e. ${INSTANCES} instances, the floor: one synchronous interceptor doing only the checks a warm request needs (freshness, the caller's own Authorization, the origin, the header), vs ${INSTANCES} static-header instances`,
      "floor",
      "— (what the checks cost)",
      undefined,
    ),
    differenceRow(
      "8b",
      `8b. ${INSTANCES} interceptors, control: a second ${INSTANCES} static-header instances vs the first (A/A)`,
      "static again",
      "— (noise floor)",
      undefined,
    ),
    bytesRow(
      "8c",
      `8c. ${INSTANCES} interceptors: heap after GC per interceptor, warm (heap with ${INSTANCES} \`attach()\`ed instances − heap with ${INSTANCES} static-header instances, / ${INSTANCES})`,
      "ours",
      "— (measured)",
    ),
    bytesRow(
      "8d",
      `8d. heap per instance, control: ${INSTANCES} static-header instances vs another ${INSTANCES} (A/A)`,
      "static again",
      "— (noise floor)",
    ),
  ];
}

function signed(value: number): string {
  return `${value >= 0 ? "+" : "−"}${fmtNum(Math.abs(value), 1)}`;
}
