/**
 * What a caller can know of a token besides the string: getToken()'s timing and granted scope, the
 * `scope_narrowed` event, and the token requests published on node:diagnostics_channel.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { createTokenSource, TOKEN_REQUEST_CHANNELS, type TokenEvent, type TokenRequestMessage } from "../src/index.js";
import { startTokenServer } from "./helpers/servers.js";

const SECRET = "metadata-secret-41c7";

async function sourceFor(response: Record<string, unknown>, options: { scope?: string | string[]; events?: TokenEvent[] } = {}) {
  const server = await startTokenServer((_request, n) => ({
    body: { access_token: `token-${n}`, token_type: "Bearer", expires_in: 3600, ...response },
  }));
  const source = createTokenSource({
    tokenUrl: server.url,
    clientId: "svc",
    clientSecret: SECRET,
    ...(options.scope === undefined ? {} : { scope: options.scope }),
    ...(options.events === undefined ? {} : { onEvent: (event: TokenEvent) => options.events?.push(event) }),
  });
  onTestFinished(() => source.dispose());
  return { server, source };
}

describe("getToken()", () => {
  it("returns the token with its timing and the scope the server granted", async () => {
    const before = Date.now();
    const { source } = await sourceFor({ scope: "orders:read  orders:write" }, { scope: ["orders:read", "orders:write"] });
    const token = await source.getToken();
    expect(token).toEqual({
      accessToken: "token-1",
      tokenType: "Bearer",
      expiresAt: expect.any(Number),
      refreshAt: expect.any(Number),
      scope: "orders:read orders:write",
    });
    expect(token.expiresAt).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(token.expiresAt).toBeLessThanOrEqual(Date.now() + 3_600_000);
    expect(token.refreshAt).toBeLessThan(token.expiresAt);
  });

  it("returns the requested scope when the response states none (RFC 6749 §5.1: then it is the one requested)", async () => {
    const { source } = await sourceFor({}, { scope: "orders:read" });
    await expect(source.getToken()).resolves.toMatchObject({ scope: "orders:read" });
  });

  it("has no scope when none was requested or stated", async () => {
    const { source } = await sourceFor({});
    expect(Object.keys(await source.getToken())).toEqual(["accessToken", "tokenType", "expiresAt", "refreshAt"]);
  });

  it.each([
    ["a number", 42],
    ["a control character", "orders:read\u0000admin"],
    ["a huge string", "x".repeat(5_000)],
  ])("reads a scope that is %s as absent", async (_name, scope) => {
    const { source } = await sourceFor({ scope }, { scope: "orders:read" });
    await expect(source.getToken()).resolves.toMatchObject({ scope: "orders:read" });
  });
});

describe("scope_narrowed", () => {
  it("tells once per token which requested scopes were not granted", async () => {
    const events: TokenEvent[] = [];
    const { source } = await sourceFor({ scope: "orders:read" }, { scope: "orders:read orders:write", events });
    await Promise.all([source.getToken(), source.getToken(), source.getToken()]);
    await source.getToken();
    const narrowed = (): TokenEvent[] => events.filter((event) => event.type === "scope_narrowed");
    expect(narrowed()).toEqual([
      { type: "scope_narrowed", requested: ["orders:read", "orders:write"], granted: ["orders:read"], missing: ["orders:write"] },
    ]);
    await source.getToken({ forceRefresh: true });
    expect(narrowed()).toHaveLength(2);
  });

  it("is not sent when the server grants all, more, or says nothing", async () => {
    for (const response of [{ scope: "orders:write orders:read" }, { scope: "orders:read orders:write admin" }, {}]) {
      const events: TokenEvent[] = [];
      const { source } = await sourceFor(response, { scope: "orders:read orders:write", events });
      await source.getToken();
      expect(events.map((event) => event.type)).toEqual(["token_cached", "token_refreshed"]);
    }
  });
});

describe("token requests on node:diagnostics_channel", () => {
  function record(): { name: string; message: TokenRequestMessage; snapshot: TokenRequestMessage }[] {
    const seen: { name: string; message: TokenRequestMessage; snapshot: TokenRequestMessage }[] = [];
    for (const name of Object.values(TOKEN_REQUEST_CHANNELS)) {
      const listener = (message: unknown): void => {
        seen.push({ name, message: message as TokenRequestMessage, snapshot: { ...(message as TokenRequestMessage) } });
      };
      subscribe(name, listener);
      onTestFinished(() => {
        unsubscribe(name, listener);
      });
    }
    return seen;
  }

  it("publishes start and end of each token request, the same object completed, with status and duration", async () => {
    const seen = record();
    const { server, source } = await sourceFor({}, { scope: "orders:read" });
    const { accessToken } = await source.getToken();

    expect(seen.map((entry) => entry.name)).toEqual([TOKEN_REQUEST_CHANNELS.start, TOKEN_REQUEST_CHANNELS.end]);
    const [start, end] = seen;
    expect(start?.snapshot).toEqual({ cacheKey: expect.stringContaining("axios-token-refresh:"), tokenUrl: server.url, attempt: 1 });
    expect(end?.message).toBe(start?.message);
    expect(end?.snapshot).toMatchObject({ status: 200, attempt: 1, tokenUrl: server.url });
    expect(end?.snapshot.durationMs).toBeGreaterThanOrEqual(0);
    expect(end?.snapshot.durationMs).toBeLessThan(5_000);
    const published = JSON.stringify(seen.map((entry) => entry.snapshot));
    expect(published).not.toContain(SECRET);
    expect(published).not.toContain(accessToken);
  });

  it("publishes each attempt, a failed one on error with its code and status", async () => {
    const seen = record();
    const server = await startTokenServer((_request, n) =>
      n === 1 ? { status: 503, body: "busy" } : { status: 401, body: { error: "invalid_client" } },
    );
    const source = createTokenSource({ tokenUrl: server.url, clientId: "svc", clientSecret: SECRET, retry: { baseDelayMs: 1 } });
    onTestFinished(() => source.dispose());
    await expect(source.getToken()).rejects.toMatchObject({ code: "ERR_TOKEN_REQUEST" });

    expect(seen.map((entry) => [entry.name.split(":").pop(), entry.snapshot.attempt, entry.snapshot.status, entry.snapshot.code])).toEqual([
      ["start", 1, undefined, undefined],
      ["error", 1, 503, "ERR_TOKEN_REQUEST"],
      ["start", 2, undefined, undefined],
      ["error", 2, 401, "ERR_TOKEN_REQUEST"],
    ]);
    expect(JSON.stringify(seen.map((entry) => entry.snapshot))).not.toContain(SECRET);
  });

  it("publishes a request that never got an answer with its network code and no status", async () => {
    const seen = record();
    const server = await startTokenServer(() => ({ reset: true }));
    const source = createTokenSource({ tokenUrl: server.url, clientId: "svc", clientSecret: SECRET, retry: { attempts: 1 } });
    onTestFinished(() => source.dispose());
    await expect(source.getToken()).rejects.toMatchObject({ code: "ERR_TOKEN_NETWORK" });
    expect(seen.at(-1)?.snapshot).toMatchObject({ code: "ERR_TOKEN_NETWORK", attempt: 1 });
    expect(seen.at(-1)?.snapshot.status).toBeUndefined();
  });
});

describe("where the channels come from", () => {
  it("imports node:diagnostics_channel where process.getBuiltinModule is missing (Node before 20.16), and publishes nothing where neither is", async () => {
    const runtime = process as { getBuiltinModule?: unknown };
    const saved = runtime.getBuiltinModule;
    runtime.getBuiltinModule = undefined;
    try {
      vi.resetModules();
      const tracing = await import("../src/tracing.js");
      await tracing.channelsReady();
      const seen: unknown[] = [];
      const listener = (message: unknown): void => void seen.push(message);
      subscribe(tracing.TOKEN_REQUEST_CHANNELS.start, listener);
      onTestFinished(() => {
        unsubscribe(tracing.TOKEN_REQUEST_CHANNELS.start, listener);
      });
      tracing.publishStart({ cacheKey: "k", tokenUrl: "https://idp.example/token", attempt: 1 });
      expect(seen).toEqual([{ cacheKey: "k", tokenUrl: "https://idp.example/token", attempt: 1 }]);

      const versions = Object.getOwnPropertyDescriptor(process, "versions");
      Object.defineProperty(process, "versions", { value: {}, configurable: true });
      try {
        vi.resetModules();
        const elsewhere = await import("../src/tracing.js");
        await expect(elsewhere.channelsReady()).resolves.toBeUndefined();
        const message = elsewhere.publishStart({ cacheKey: "k", tokenUrl: "https://idp.example/token", attempt: 2 });
        elsewhere.publishEnd(message, 0, 1, { status: 200 });
        expect(seen).toHaveLength(1);
      } finally {
        if (versions !== undefined) Object.defineProperty(process, "versions", versions);
      }
    } finally {
      runtime.getBuiltinModule = saved;
      vi.resetModules();
    }
  });
});
