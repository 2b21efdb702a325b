/**
 * What the benchmarks run against, in the benchmark's own process: a resource server on the main
 * thread that answers as little as it can, a token endpoint in a worker thread that counts what
 * reaches it (an identity provider is not on its client's event loop), and the keep-alive agent the
 * axios instances share.
 */
import { Agent } from "node:http";
import { Worker } from "node:worker_threads";
import { listen, type LoopbackServer } from "../examples/loopback.js";
import type { TokenRefreshOptions } from "../src/index.js";

/** How long the shared token endpoint takes to answer (a real IdP takes tens of ms). */
export const TOKEN_DELAY_MS = 20;
/** The agent's sockets, so also the most requests that are really in flight at once. */
export const IN_FLIGHT = 64;
export const CLIENT_ID = "bench-client";
export const CLIENT_SECRET = "bench-secret";

/** Interceptor options for `tokenUrl`; one attempt, so that no retried token request hides in a figure. */
export function clientOptions(tokenUrl: string): TokenRefreshOptions {
  return { tokenUrl, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, retry: { attempts: 1 } };
}

/** What every benchmark is handed: servers and agent started once for the whole run. */
export interface Setup {
  /** The resource server's origin. */
  baseURL: string;
  agent: Agent;
  /** Answers after TOKEN_DELAY_MS with tokens that live an hour. */
  tokens: TokenServer;
}

export async function startSetup(): Promise<Setup & { close(): Promise<void> }> {
  const resource = await startResourceServer();
  const tokens = await startTokenServer({ delayMs: TOKEN_DELAY_MS, lifetimeS: 3600 });
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  return {
    baseURL: resource.origin,
    agent,
    tokens,
    async close() {
      agent.destroy();
      await resource.close();
      await tokens.close();
    },
  };
}

const OK_BODY = Buffer.from('{"ok":true}');

/** Answers every request 200 `{"ok":true}` once the request has been read. */
async function startResourceServer(): Promise<LoopbackServer> {
  const resource = await listen((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": OK_BODY.length });
      res.end(OK_BODY);
    });
  });
  resource.server.keepAliveTimeout = 60_000; // sockets of a keep-alive agent stay usable across rounds
  resource.server.maxRequestsPerSocket = 0;
  return resource;
}

export interface TokenServerOptions {
  /** How long the endpoint takes to answer, in ms. */
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

export interface TokenServer {
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  /** Full token endpoint URL. */
  url: string;
  /** Token requests received so far (read without waiting for the worker). */
  readonly count: number;
  /** Every token request so far, in order. */
  exchanges(): Promise<TokenExchange[]>;
  close(): Promise<void>;
}

/**
 * Starts the token endpoint (bench/token-worker.mjs) in a worker thread of this process. The worker
 * listens by itself, not through examples/loopback.ts: it is plain JavaScript, with no TypeScript loader.
 */
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
