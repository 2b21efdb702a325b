// The benchmark's token endpoint, run in a worker thread of the benchmark's process (bench/servers.ts
// starts it): an identity provider does not run on its client's event loop, and on the main thread its
// work would slow exactly the requests that overlap a token request, which is what row 4 measures.
// Plain JavaScript, so the worker needs no TypeScript loader.
//
// It issues JWT-shaped, unsigned tokens (the naive snippet decodes them) whose `exp` is rounded up,
// so `exp` never makes a token shorter-lived than `expires_in`.
import { createServer } from "node:http";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";

/** @type {{ delayMs: number, lifetimeS: number, counter: SharedArrayBuffer }} */
const { delayMs, lifetimeS, counter } = workerData;
const count = new Int32Array(counter);
/** @type {{ receivedAt: number, answeredAt: number | undefined, token: string }[]} */
const exchanges = [];
const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
// Epoch ms with sub-ms precision: comparable across threads, unlike performance.now().
const clock = () => performance.timeOrigin + performance.now();

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    const n = exchanges.length + 1;
    const exp = Math.ceil(Date.now() / 1000) + lifetimeS;
    const payload = Buffer.from(JSON.stringify({ sub: "bench", jti: `t${n}`, iat: Math.floor(Date.now() / 1000), exp })).toString(
      "base64url",
    );
    const exchange = { receivedAt: clock(), answeredAt: undefined, token: `${header}.${payload}.sig` };
    exchanges.push(exchange);
    Atomics.add(count, 0, 1);
    const body = JSON.stringify({ access_token: exchange.token, token_type: "Bearer", expires_in: lifetimeS });
    setTimeout(() => {
      exchange.answeredAt = clock();
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    }, delayMs);
  });
});
server.keepAliveTimeout = 60_000;

server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  parentPort?.postMessage({ type: "listening", port: typeof address === "object" && address !== null ? address.port : 0 });
});

parentPort?.on("message", (message) => {
  if (message === "exchanges") parentPort?.postMessage({ type: "exchanges", exchanges });
  if (message === "close") {
    server.closeAllConnections();
    server.close(() => parentPort?.postMessage({ type: "closed" }));
  }
});
