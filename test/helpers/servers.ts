/**
 * Loopback HTTP servers for tests: a token endpoint and a resource server, on 127.0.0.1 with a
 * port the OS picks. Each records what reached it and closes itself when the test finishes.
 */
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { onTestFinished } from "vitest";
import { listen } from "../../examples/loopback.js";

/** One request as the server saw it. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** What the server answers; `hang: true` accepts the request and never answers, `reset: true` drops the connection. */
export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON, a string as it is. */
  body?: unknown;
  hang?: boolean;
  reset?: boolean;
}

/** Decides the answer to the n-th request (from 1). */
export type Handler = (request: RecordedRequest, n: number) => Reply | Promise<Reply>;

export interface TestServer {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  origin: string;
  requests: RecordedRequest[];
  handler: Handler;
  close(): Promise<void>;
}

async function startServer(handler: Handler): Promise<TestServer> {
  const loopback = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const recorded = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
      state.requests.push(recorded);
      // `state`, declared below, is there by the time a request can arrive; tests swap its handler.
      void Promise.resolve(state.handler(recorded, state.requests.length)).then((reply) => send(res, reply));
    });
  });
  loopback.server.keepAliveTimeout = 500;
  loopback.server.unref();
  const state: TestServer = { origin: loopback.origin, requests: [], handler, close: loopback.close };
  onTestFinished(() => state.close());
  return state;
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply.hang === true) return;
  if (reply.reset === true) {
    res.socket?.destroy();
    return;
  }
  const isText = typeof reply.body === "string";
  const body = reply.body === undefined ? "" : isText ? (reply.body as string) : JSON.stringify(reply.body);
  res.writeHead(reply.status ?? 200, {
    "Content-Type": isText ? "text/plain" : "application/json",
    "Cache-Control": "no-store",
    ...reply.headers,
  });
  res.end(body);
}

/** A token server; by default it issues `token-1`, `token-2`, … valid for an hour. */
export interface TokenServer extends TestServer {
  /** Full token endpoint URL. */
  url: string;
  /** Number of token requests received. */
  readonly count: number;
}

export const issueTokens: Handler = (_request, n) => ({
  body: { access_token: `token-${n}`, token_type: "Bearer", expires_in: 3600 },
});

export async function startTokenServer(handler: Handler = issueTokens): Promise<TokenServer> {
  const server = await startServer(handler);
  return Object.defineProperties(server, {
    url: { value: `${server.origin}/oauth2/token`, enumerable: true },
    count: { get: () => server.requests.length, enumerable: true },
  }) as TokenServer;
}

/** A resource server: 401 for any token in `rejected`, else 200 with the Authorization it saw. */
export interface ResourceServer extends TestServer {
  rejected: Set<string>;
  /** Authorization headers seen, in order (undefined for none). */
  readonly authorizations: (string | undefined)[];
}

export async function startResourceServer(): Promise<ResourceServer> {
  const rejected = new Set<string>();
  const server = await startServer((request) => {
    const auth = request.headers.authorization;
    if (auth !== undefined && rejected.has(auth.replace(/^Bearer /, ""))) {
      return { status: 401, headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' }, body: { error: "invalid_token" } };
    }
    return { body: { ok: true, authorization: auth ?? null, path: request.url } };
  });
  return Object.defineProperties(server, {
    rejected: { value: rejected, enumerable: true },
    authorizations: { get: () => server.requests.map((r) => r.headers.authorization), enumerable: true },
  }) as ResourceServer;
}
