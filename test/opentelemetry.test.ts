/**
 * examples/opentelemetry.ts against the real tracing SDK and a loopback token server: one span per
 * token request with its outcome, nothing secret in any attribute, nothing after unsubscribing; the
 * `onEvent` counters; and docs/observability.md showing the same code.
 */
import { readFileSync } from "node:fs";
import { SpanKind, SpanStatusCode, type Attributes, type Meter } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { describe, expect, it, onTestFinished } from "vitest";
import { countTokenEvents, traceTokenRequests } from "../examples/opentelemetry.js";
import { createTokenSource, type TokenEvent, type TokenSourceOptions } from "../src/index.js";
import { issueTokens, startTokenServer, type Handler } from "./helpers/servers.js";

const SECRET = "otel-secret-5d2e91";

/** A tracer whose finished spans land in memory, subscribed to the token-request channels until the test ends. */
function tracing(): { spans: () => Promise<ReadableSpan[]>; stop: () => void } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const stop = traceTokenRequests(provider.getTracer("test"));
  onTestFinished(async () => {
    stop();
    await provider.shutdown();
  });
  return {
    spans: async () => {
      await provider.forceFlush();
      return exporter.getFinishedSpans();
    },
    stop,
  };
}

async function sourceFor(handler: Handler = issueTokens, options: Partial<TokenSourceOptions> = {}) {
  const server = await startTokenServer(handler);
  const source = createTokenSource({ tokenUrl: server.url, clientId: "svc", clientSecret: SECRET, ...options } as TokenSourceOptions);
  onTestFinished(() => source.dispose());
  return { server, source };
}

/** Every string a span carries: name, attribute values, status message, events. */
function strings(span: ReadableSpan): string[] {
  return [
    span.name,
    ...Object.values(span.attributes).map(String),
    span.status.message ?? "",
    ...span.events.map((event) => JSON.stringify(event)),
  ];
}

const millis = ([seconds, nanos]: [number, number]): number => seconds * 1000 + nanos / 1e6;

describe("traceTokenRequests", () => {
  it("makes one CLIENT span for a token request, with its URL, method, status, key and attempt", async () => {
    const { spans } = tracing();
    const { server, source } = await sourceFor(async (request, n) => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      return issueTokens(request, n);
    });
    await source.getToken();
    await source.getToken(); // served from the cache: no second request, no second span

    const finished = await spans();
    expect(finished).toHaveLength(1);
    const [span] = finished;
    expect(span?.name).toBe("oauth2 token request");
    expect(span?.kind).toBe(SpanKind.CLIENT);
    expect(span?.status.code).toBe(SpanStatusCode.UNSET);
    expect(span?.attributes).toEqual({
      "url.full": server.url,
      "server.address": "127.0.0.1",
      "server.port": Number(new URL(server.url).port),
      "http.request.method": "POST",
      "http.response.status_code": 200,
      "oauth2.cache_key": expect.stringContaining("axios-token-refresh:"),
      "oauth2.attempt": 1,
    });
    // Started when the request was sent, ended when it was answered: the server's 30 ms are inside.
    expect(millis(span!.duration)).toBeGreaterThanOrEqual(25);
    expect(millis(span!.duration)).toBeLessThan(5_000);
  });

  it("makes a span per attempt: a 503 with error status and code, then the retry that got the token", async () => {
    const { spans } = tracing();
    const { source } = await sourceFor((request, n) => (n === 1 ? { status: 503, body: "busy" } : issueTokens(request, n)), {
      retry: { baseDelayMs: 1 },
    });
    await expect(source.getAccessToken()).resolves.toBe("token-2");

    const [first, second, ...rest] = await spans();
    expect(rest).toEqual([]);
    expect(first?.status).toEqual({ code: SpanStatusCode.ERROR, message: "ERR_TOKEN_REQUEST" });
    expect(first?.attributes).toMatchObject({ "error.type": "ERR_TOKEN_REQUEST", "http.response.status_code": 503, "oauth2.attempt": 1 });
    expect(first?.attributes).not.toHaveProperty("http.request.resend_count");
    expect(second?.status.code).toBe(SpanStatusCode.UNSET);
    expect(second?.attributes).toMatchObject({ "http.response.status_code": 200, "oauth2.attempt": 2, "http.request.resend_count": 1 });
    expect(second?.attributes).not.toHaveProperty("error.type");
  });

  it("records a request that got no answer with its network code and no status", async () => {
    const { spans } = tracing();
    const { source } = await sourceFor(() => ({ reset: true }), { retry: { attempts: 1 } });
    await expect(source.getToken()).rejects.toMatchObject({ code: "ERR_TOKEN_NETWORK" });

    const [span] = await spans();
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
    expect(span?.attributes["error.type"]).toBe("ERR_TOKEN_NETWORK");
    expect(span?.attributes).not.toHaveProperty("http.response.status_code");
  });

  it("puts neither the client secret nor the access token in any span, even when the server echoes them", async () => {
    const { spans } = tracing();
    const { source } = await sourceFor(
      (request, n) =>
        n === 1
          ? { status: 503, body: `busy; you sent ${request.body} with ${request.headers.authorization ?? ""}` }
          : { body: { access_token: `access-${SECRET}-token`, token_type: "Bearer", expires_in: 3600 } },
      { retry: { baseDelayMs: 1 } },
    );
    const { accessToken } = await source.getToken();

    const finished = await spans();
    expect(finished).toHaveLength(2);
    for (const text of finished.flatMap(strings)) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(accessToken);
    }
  });

  it("makes no span once unsubscribed", async () => {
    const { spans, stop } = tracing();
    const { source } = await sourceFor();
    await source.getToken();
    expect(await spans()).toHaveLength(1);

    stop();
    stop(); // a second call is harmless
    await source.getToken({ forceRefresh: true });
    expect(await spans()).toHaveLength(1);
  });
});

/** A Meter that records what its instruments were given; only what countTokenEvents uses. */
function fakeMeter(): { meter: Meter; points: (name: string) => { value: number; attributes: Attributes | undefined }[] } {
  const recorded = new Map<string, { value: number; attributes: Attributes | undefined }[]>();
  const instrument = (name: string) => {
    const points: { value: number; attributes: Attributes | undefined }[] = [];
    recorded.set(name, points);
    const note = (value: number, attributes?: Attributes): void => {
      points.push({ value, attributes });
    };
    return { add: note, record: note };
  };
  const partial: Pick<Meter, "createCounter" | "createHistogram"> = {
    createCounter: (name) => instrument(name),
    createHistogram: (name) => instrument(name),
  };
  return {
    meter: partial as Meter,
    points: (name) => {
      const points = recorded.get(name);
      if (points === undefined) throw new Error(`no instrument named ${name}`);
      return points;
    },
  };
}

describe("countTokenEvents", () => {
  it("counts a refresh and records its duration, in seconds", async () => {
    const { meter, points } = fakeMeter();
    const { source } = await sourceFor(issueTokens, { onEvent: countTokenEvents(meter, { "oauth2.client": "orders" }) });
    await source.getToken();

    expect(points("oauth2.token.refreshes")).toEqual([{ value: 1, attributes: { "oauth2.client": "orders", "oauth2.background": false } }]);
    const durations = points("oauth2.token.refresh.duration");
    expect(durations).toEqual([{ value: expect.any(Number), attributes: { "oauth2.client": "orders", "oauth2.background": false } }]);
    expect(durations[0]?.value).toBeGreaterThanOrEqual(0);
    expect(durations[0]?.value).toBeLessThan(5);
    expect(points("oauth2.token.failures")).toEqual([]);
  });

  it("counts a failure with its code, and the retries before it", async () => {
    const { meter, points } = fakeMeter();
    const { source } = await sourceFor(() => ({ status: 503, body: "busy" }), {
      retry: { attempts: 2, baseDelayMs: 1 },
      onEvent: countTokenEvents(meter),
    });
    await expect(source.getToken()).rejects.toMatchObject({ code: "ERR_TOKEN_REQUEST" });

    expect(points("oauth2.token.retries")).toEqual([{ value: 1, attributes: { "error.type": "ERR_TOKEN_REQUEST" } }]);
    expect(points("oauth2.token.failures")).toEqual([
      { value: 1, attributes: { "error.type": "ERR_TOKEN_REQUEST", "oauth2.serving_cached_token": false } },
    ]);
    expect(points("oauth2.token.refreshes")).toEqual([]);
  });

  it("counts replays, store failures and throttling, and ignores the events it has no instrument for", () => {
    const { meter, points } = fakeMeter();
    const count = countTokenEvents(meter);
    const events: TokenEvent[] = [
      { type: "unauthorized_replayed", status: 401, invalidated: true },
      { type: "unauthorized_not_replayed", status: 401, reason: "cooldown" },
      { type: "store_failed", operation: "get", reason: "timeout" },
      { type: "throttled", retryAfterMs: 1_000 },
      { type: "token_cached", expiresAt: 2, refreshAt: 1 },
      { type: "scope_narrowed", requested: ["a", "b"], granted: ["a"], missing: ["b"] },
    ];
    events.forEach(count);

    expect(points("oauth2.requests.replayed")).toEqual([{ value: 1, attributes: { "http.response.status_code": 401 } }]);
    expect(points("oauth2.requests.not_replayed")).toEqual([
      { value: 1, attributes: { "http.response.status_code": 401, "oauth2.reason": "cooldown" } },
    ]);
    expect(points("oauth2.store.failures")).toEqual([
      { value: 1, attributes: { "oauth2.store.operation": "get", "oauth2.store.reason": "timeout" } },
    ]);
    expect(points("oauth2.token.throttled")).toEqual([{ value: 1, attributes: {} }]);
  });
});

describe("docs/observability.md", () => {
  /** Import names by module, and the code without its imports (and without the file's opening comment). */
  function split(code: string): { imports: Map<string, Set<string>>; body: string } {
    const imports = new Map<string, Set<string>>();
    const body: string[] = [];
    let seenImport = false;
    for (const line of code.split("\n")) {
      const match = /^import (?:type )?\{([^}]*)\} from "([^"]+)";$/.exec(line);
      if (match !== null) {
        seenImport = true;
        const names = imports.get(match[2] ?? "") ?? new Set<string>();
        for (const name of (match[1] ?? "").split(",")) if (name.trim() !== "") names.add(name.trim());
        imports.set(match[2] ?? "", names);
      } else if (seenImport) {
        body.push(line);
      }
    }
    return { imports, body: body.join("\n").trim() };
  }

  it("shows the code of examples/opentelemetry.ts, importing the package by its name", () => {
    const page = readFileSync(new URL("../docs/observability.md", import.meta.url), "utf8");
    const blocks = [...page.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] ?? "");
    const recipe = blocks.find((block) => block.includes("export function traceTokenRequests"));
    expect(recipe, "a ts block with traceTokenRequests").toBeDefined();
    const example = split(readFileSync(new URL("../examples/opentelemetry.ts", import.meta.url), "utf8"));
    const shown = split(recipe ?? "");

    // The page may import more (what its wiring lines use), but all the example does, the library by its package name.
    for (const [module, names] of example.imports) {
      const onPage = shown.imports.get(module === "../src/index.js" ? "axios-token-refresh" : module);
      expect(
        [...names].filter((name) => !onPage?.has(name)),
        `names from ${module} the page does not import`,
      ).toEqual([]);
    }
    // The page's block is the example, then the lines that wire it up.
    expect(shown.body.startsWith(example.body), "the page's block starts with the example's code").toBe(true);
  });
});
