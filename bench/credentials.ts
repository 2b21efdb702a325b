/**
 * 9. What `clientCertificate` and `issuer` cost. 9a–c: one client assertion signed (the cost added to
 * each token request, not to API requests), against a token request with a secret on the bench's
 * token endpoint in the same rounds. 9d–e: a cold burst with `issuer` (the metadata read first) against
 * the same burst with `tokenUrl`, and what reached the servers.
 */
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import axios from "axios";
import { createAssertionSigner } from "../src/client-assertion.js";
import { createTokenRefreshInterceptor, createTokenSource } from "../src/index.js";
import { CLIENT_ID, CLIENT_SECRET, clientOptions, type Setup } from "./servers.js";
import { fmtInt, fmtMs, fmtNum, interleaved, ROUNDS } from "./stats.js";
import { pairedRow, type Row } from "./table.js";

const SIGNATURES = 200;
const DISCOVERY_BURST = 100;
export const settings = { SIGNATURES, DISCOVERY_BURST };

const fmtUs = (ms: number): string => `${fmtNum(ms * 1000, 0)} µs`;

export async function credentials({ baseURL, agent, tokens }: Setup): Promise<Row[]> {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  const signers = {
    ES256: createAssertionSigner({ privateKey: ec }),
    RS256: createAssertionSigner({ privateKey: rsa }),
    PS256: createAssertionSigner({ privateKey: rsa, algorithm: "PS256" }),
  };
  const secretSource = createTokenSource(clientOptions(tokens.url));

  /** ms per signature over SIGNATURES signatures (the key imported beforehand), or per token request with a secret. */
  const measure = async (name: keyof typeof signers | "token request"): Promise<number> => {
    if (name === "token request") {
      const started = performance.now();
      await secretSource.getToken({ forceRefresh: true });
      return performance.now() - started;
    }
    const signer = signers[name];
    const started = performance.now();
    for (let i = 0; i < SIGNATURES; i += 1) await signer.sign(CLIENT_ID, tokens.url);
    return (performance.now() - started) / SIGNATURES;
  };
  for (const name of ["ES256", "RS256", "PS256", "token request"] as const) await measure(name); // key import, JIT, sockets
  const signing = await interleaved(["ES256", "RS256", "PS256", "token request"] as const, ROUNDS, measure);
  secretSource.dispose();

  const signingRow = (id: string, alg: keyof typeof signers, what: string): Row =>
    pairedRow({
      id,
      benchmark: `${id}. one ${alg} client assertion signed (${what}), vs a token request with a secret`,
      unit: "ms",
      goal: "report",
      rounds: { ours: signing[alg], baseline: signing["token request"] },
      show: fmtUs,
    });

  const { metadata, close } = await startMetadataServer(tokens.url);
  const counts = { metadata: [] as number[], tokens: [] as number[] };
  const burst = async (kind: "issuer" | "tokenUrl"): Promise<number> => {
    const api = axios.create({ baseURL, httpAgent: agent });
    const auth = createTokenRefreshInterceptor(
      kind === "issuer"
        ? { issuer: metadata.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, retry: { attempts: 1 } }
        : clientOptions(tokens.url),
    );
    const detach = auth.attach(api);
    const before = { metadata: metadata.count, tokens: tokens.count };
    try {
      const started = performance.now();
      await Promise.all(Array.from({ length: DISCOVERY_BURST }, (_, i) => api.get(`/r/${i}`)));
      const elapsed = performance.now() - started;
      if (kind === "issuer") {
        counts.metadata.push(metadata.count - before.metadata);
        counts.tokens.push(tokens.count - before.tokens);
      }
      return elapsed;
    } finally {
      detach();
      auth.dispose();
    }
  };
  await burst("issuer");
  await burst("tokenUrl");
  counts.metadata.length = 0;
  counts.tokens.length = 0;
  const bursts = await interleaved(["issuer", "tokenUrl"] as const, ROUNDS, burst);
  await close();

  const maxMetadata = Math.max(...counts.metadata);
  const maxTokens = Math.max(...counts.tokens);
  return [
    signingRow("9a", "ES256", "P-256"),
    signingRow("9b", "RS256", "2048-bit RSA"),
    signingRow("9c", "PS256", "2048-bit RSA"),
    {
      id: "9d",
      benchmark: `9d. cold burst of ${fmtInt(DISCOVERY_BURST)} with \`issuer\`: metadata requests + token requests (max over rounds)`,
      unit: "requests",
      ours: maxMetadata + maxTokens,
      baseline: undefined,
      ratio: undefined,
      goal: "= 1 + 1",
      met: counts.metadata.every((n) => n === 1) && counts.tokens.every((n) => n === 1),
      rounds: { ours: counts.metadata.map((n, i) => n + (counts.tokens[i] ?? Number.NaN)) },
      display: { ours: `${maxMetadata} + ${maxTokens}`, baseline: "—", ratio: "—" },
    },
    pairedRow({
      id: "9e",
      benchmark: `9e. the same burst: time to the last response, \`issuer\` vs \`tokenUrl\``,
      unit: "ms",
      goal: "report (one loopback GET more)",
      rounds: { ours: bursts.issuer, baseline: bursts.tokenUrl },
      show: fmtMs,
    }),
  ];
}

/** Serves an OpenID Connect discovery document that names the bench's token endpoint; counts its requests. */
async function startMetadataServer(tokenUrl: string) {
  let count = 0;
  let issuer = "";
  const server = createServer((req, res) => {
    req.resume();
    count += 1;
    const body = JSON.stringify({ issuer, token_endpoint: tokenUrl, token_endpoint_auth_methods_supported: ["client_secret_post"] });
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}/realms/bench`;
  return {
    metadata: {
      issuer,
      get count() {
        return count;
      },
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
