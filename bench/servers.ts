/**
 * Loopback servers for the benchmark, in the benchmark's own process: a resource server on the main
 * thread that answers as little as it can, and a token endpoint in a worker thread that counts what
 * reaches it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Worker } from "node:worker_threads";

export interface LoopbackServer {
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  close(): Promise<void>;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LoopbackServer> {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000; // sockets of a keep-alive agent stay usable across rounds
  server.maxRequestsPerSocket = 0;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const OK_BODY = Buffer.from('{"ok":true}');

/** Answers every request 200 `{"ok":true}` once the request has been read. */
export async function startResourceServer(): Promise<LoopbackServer> {
  return listen((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": OK_BODY.length });
      res.end(OK_BODY);
    });
  });
}

export interface TokenServerOptions {
  /** How long the endpoint takes to answer, in ms (a real IdP takes tens of ms). */
  delayMs: number;
  /** `expires_in`, in seconds; the JWT's `exp` says the same. */
  lifetimeS: number;
}

/** A token request as the endpoint saw it; times are epoch ms with sub-ms precision. */
export interface TokenExchange {
  receivedAt: number;
  answeredAt: number | undefined;
  token: string;
}

export interface TokenServer extends LoopbackServer {
  /** Full token endpoint URL. */
  url: string;
  /** Token requests received so far (read without waiting for the worker). */
  readonly count: number;
  /** Every token request so far, in order. */
  exchanges(): Promise<TokenExchange[]>;
}

/** Starts the token endpoint (bench/token-worker.mjs) in a worker thread of this process. */
export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const counter = new SharedArrayBuffer(4);
  const count = new Int32Array(counter);
  const worker = new Worker(new URL("./token-worker.mjs", import.meta.url), { workerData: { ...options, counter } });
  const next = (type: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const onMessage = (message: Record<string, unknown>) => {
        if (message.type !== type) return;
        worker.off("message", onMessage);
        worker.off("error", reject);
        resolve(message);
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
    });
  const { port } = await next("listening");
  const origin = `http://127.0.0.1:${String(port)}`;
  return {
    origin,
    url: `${origin}/oauth2/token`,
    get count() {
      return Atomics.load(count, 0);
    },
    async exchanges() {
      const reply = next("exchanges");
      worker.postMessage("exchanges");
      return (await reply).exchanges as TokenExchange[];
    },
    async close() {
      const closed = next("closed");
      worker.postMessage("close");
      await closed;
      await worker.terminate();
    },
  };
}
