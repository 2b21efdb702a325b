/**
 * 10. What DPoP costs: one proof signed (the cost added to every API request), and throughput through
 * `attach()` with DPoP against `attach()` with Bearer, the sides taking turns request by request, with
 * a second Bearer interceptor against the first as the A/A control. Both get their token from the same
 * in-process token client (DPoP-bound for the one, Bearer for the others), so only the request path
 * differs; the resource is the bench's loopback server, which reads no header.
 */
import { generateKeyPairSync, sign } from "node:crypto";
import { performance } from "node:perf_hooks";
import axios, { type AxiosInstance } from "axios";
import { createDpopKey } from "../src/dpop.js";
import { createTokenRefreshInterceptor, type TokenHttpClient, type TokenRefreshInterceptor } from "../src/index.js";
import type { Setup } from "./servers.js";
import { fmtInt, fmtNum, median, ROUNDS, roundsOfTurns } from "./stats.js";
import { pairedRow, type Row } from "./table.js";
import { timedGet } from "./throughput.js";

const PROOFS = 2_000; // per round
const SEQUENTIAL_REQUESTS = 1_500; // per subject and round
export const settings = { PROOFS, DPOP_SEQUENTIAL_REQUESTS: SEQUENTIAL_REQUESTS };

type Subject = "bearer" | "bearer again" | "dpop" | "signature only";

function tokenClient(tokenType: "Bearer" | "DPoP"): TokenHttpClient {
  let n = 0;
  return {
    request: async () => {
      n += 1;
      return {
        status: 200,
        headers: {},
        data: JSON.stringify({ access_token: `${tokenType}-token-${n}`, token_type: tokenType, expires_in: 3600 }),
      };
    },
  };
}

export async function dpop({ baseURL, agent }: Setup): Promise<Row[]> {
  // One proof, as the interceptor signs it per request (its key imported, the token's hash kept).
  const key = createDpopKey(true);
  const proofTimes: number[] = [];
  const proofBaseline: number[] = [];
  await key.proof({ method: "GET", url: `${baseURL}/x`, accessToken: "t" });
  const staticApi = axios.create({ baseURL, httpAgent: agent, headers: { Authorization: "Bearer t" } });
  for (let round = 0; round < ROUNDS; round += 1) {
    let started = performance.now();
    for (let i = 0; i < PROOFS; i += 1) await key.proof({ method: "GET", url: `${baseURL}/x`, accessToken: "t" });
    proofTimes.push((performance.now() - started) / PROOFS);
    started = performance.now();
    for (let i = 0; i < 200; i += 1) await staticApi.get("/x");
    proofBaseline.push((performance.now() - started) / 200);
  }

  const attached = (tokenType: "Bearer" | "DPoP"): { api: AxiosInstance; auth: TokenRefreshInterceptor } => {
    const api = axios.create({ baseURL, httpAgent: agent });
    const auth = createTokenRefreshInterceptor({
      tokenUrl: "https://login.example.com/token",
      clientId: "bench",
      clientSecret: "bench-secret",
      httpClient: tokenClient(tokenType),
      ...(tokenType === "DPoP" ? { dpop: true as const } : {}),
    });
    auth.attach(api);
    return { api, auth };
  };
  // The floor: a Bearer interceptor plus one bare ES256 signature per request (node:crypto, in the
  // caller's tick) sent as a header of a proof's size, so the row shows what signing alone costs here.
  const floor = attached("Bearer");
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const signingInput = new TextEncoder().encode("x".repeat(420));
  floor.api.interceptors.request.use(
    (config) => {
      const signature = sign("sha256", signingInput, { key: privateKey, dsaEncoding: "ieee-p1363" });
      config.headers.set("DPoP", `${"x".repeat(420)}.${signature.toString("base64url")}`);
      return config;
    },
    undefined,
    { synchronous: true },
  );
  const subjects: Record<Subject, { api: AxiosInstance; auth: TokenRefreshInterceptor }> = {
    bearer: attached("Bearer"),
    "bearer again": attached("Bearer"),
    dpop: attached("DPoP"),
    "signature only": floor,
  };
  for (const { api } of Object.values(subjects)) await api.get("/x"); // the token, the key import
  const names = Object.keys(subjects) as Subject[];
  const sequential = await roundsOfTurns({
    names,
    rounds: ROUNDS,
    turns: SEQUENTIAL_REQUESTS,
    turn: (name) => timedGet(subjects[name].api),
    figure: (ms) => 1000 / median(ms),
  });
  for (const { auth } of Object.values(subjects)) auth.dispose();

  const throughputRow = (id: string, benchmark: string, ours: Subject, goal: string): Row =>
    pairedRow({
      id,
      benchmark,
      unit: "requests/s",
      goal,
      rounds: { ours: sequential[ours], baseline: sequential.bearer },
      show: (rate) => `${fmtInt(rate)} req/s`,
      showRatio: (ratio) => fmtNum(ratio, 3),
      met: ours === "dpop" ? ({ ratio }) => ratio >= 0.9 : undefined,
    });
  return [
    pairedRow({
      id: "10a",
      benchmark: "10a. one DPoP proof signed (ES256, with ath), vs one loopback GET through a static-header instance",
      unit: "ms",
      goal: "report",
      rounds: { ours: proofTimes, baseline: proofBaseline },
      show: (ms) => `${fmtNum(ms * 1000, 1)} µs`,
    }),
    throughputRow(
      "10b",
      `10b. throughput with DPoP, sequential GETs (${fmtInt(SEQUENTIAL_REQUESTS)} per round, request by request; \`attach()\` with \`dpop: true\` vs with Bearer)`,
      "dpop",
      "≥ 0.9",
    ),
    throughputRow(
      "10c",
      "10c. the floor: Bearer `attach()` plus one bare ES256 signature per request (node:crypto) in a proof-sized header, vs Bearer",
      "signature only",
      "— (what a signature costs)",
    ),
    throughputRow("10d", "10d. control: a second Bearer `attach()` instance vs the first (A/A)", "bearer again", "— (noise floor)"),
  ];
}
