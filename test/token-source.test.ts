import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createTokenRefreshInterceptor,
  createTokenSource,
  InMemoryTokenStore,
  type StoredToken,
  type TokenEvent,
  type TokenStore,
} from "../src/index.js";
import { defer } from "./helpers/defer.js";
import { issueTokens, startTokenServer, type Handler } from "./helpers/servers.js";
import { interceptorFor, type Overrides } from "./helpers/interceptor.js";

const T0 = Date.UTC(2026, 10, 27, 12);

const setup = async (handler?: Handler, overrides: Overrides = {}) => {
  const { tokens, auth } = await interceptorFor(handler, overrides);
  return { server: tokens, auth };
};

/**
 * Lets a background refresh reach the server and settle. Polls with real timers: vi.waitFor
 * would advance the faked Date on every check.
 */
async function settle(server: { count: number }, count: number) {
  for (let i = 0; i < 200 && server.count < count; i += 1) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(server.count).toBe(count);
  await new Promise((resolve) => setTimeout(resolve, 20));
}

afterEach(() => {
  vi.useRealTimers();
});

describe("single flight", () => {
  it("1,000 concurrent callers on a cold cache cause exactly one token request and share its token", async () => {
    const gate = defer();
    const { server, auth } = await setup(async (r, n) => (await gate.promise, issueTokens(r, n)));
    const calls = Array.from({ length: 1000 }, () => auth.getAccessToken());
    gate.resolve();
    const tokens = await Promise.all(calls);
    expect(new Set(tokens)).toEqual(new Set(["token-1"]));
    expect(server.count).toBe(1);
  });

  it("a failed request is never cached: the next call tries again", async () => {
    const { server, auth } = await setup((r, n) => (n === 1 ? { status: 500, body: { error: "server_error" } } : issueTokens(r, n)));
    await expect(auth.getAccessToken()).rejects.toMatchObject({ code: "ERR_TOKEN_REQUEST", status: 500 });
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });

  it("every waiter of a failed refresh is rejected, none hangs", async () => {
    const { auth } = await setup(() => ({ status: 400, body: { error: "invalid_client" } }));
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => auth.getAccessToken()));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
  });

  it("invalidate() during a fetch keeps that fetch's token out of the cache, and from the caller who waited for it", async () => {
    const gate = defer();
    const { server, auth } = await setup(async (r, n) => (n === 1 && (await gate.promise), issueTokens(r, n)));
    const first = auth.getAccessToken();
    await vi.waitFor(() => expect(server.count).toBe(1));
    await auth.invalidate();
    gate.resolve();
    await expect(first).resolves.toBe("token-2");
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });

  it("forceRefresh fetches a new token and caches it", async () => {
    const { server, auth } = await setup();
    await auth.getAccessToken();
    await expect(auth.getAccessToken({ forceRefresh: true })).resolves.toBe("token-2");
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });
});

describe("expiry and refresh timing", () => {
  it("reuses the token until the margin, then serves it while one background refresh runs", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(T0);
    const { server, auth } = await setup();
    await auth.getAccessToken();
    vi.setSystemTime(T0 + 3_300_000 - 1);
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    expect(server.count).toBe(1);
    vi.setSystemTime(T0 + 3_300_000);
    const during = await Promise.all(Array.from({ length: 20 }, () => auth.getAccessToken()));
    expect(new Set(during)).toEqual(new Set(["token-1"])); // nobody waited
    await settle(server, 2);
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });

  it("past the hard buffer callers wait for the new token", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(T0);
    const { server, auth } = await setup();
    await auth.getAccessToken();
    vi.setSystemTime(T0 + 3_570_000);
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });

  it("a failing background refresh keeps serving the cached token, backs off, and fails only past the hard buffer", async () => {
    vi.useFakeTimers({ toFake: ["Date", "performance"] }); // the backoff runs on the monotonic clock
    vi.setSystemTime(T0);
    const { server, auth } = await setup((r, n) =>
      n === 1 ? issueTokens(r, n) : { status: 503, body: { error: "temporarily_unavailable" } },
    );
    await auth.getAccessToken();
    vi.advanceTimersByTime(3_300_000);
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    await settle(server, 2);
    for (let i = 0; i < 50; i += 1) await expect(auth.getAccessToken()).resolves.toBe("token-1");
    // A second background refresh, had one started, has had time to reach the server.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.count).toBe(2); // no refresh per request while backing off
    vi.advanceTimersByTime(30_000);
    await auth.getAccessToken();
    await settle(server, 3);
    vi.advanceTimersByTime(240_000); // T0 + 3,570 s: inside the hard buffer
    await expect(auth.getAccessToken()).rejects.toMatchObject({ code: "ERR_TOKEN_REQUEST", status: 503 });
  });

  it("an 8-second token is still served from the cache 6.8 s after issue while its refresh fails", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(T0);
    const { auth } = await setup((_r, n) =>
      n === 1 ? { body: { access_token: "short", expires_in: 8 } } : { status: 500, body: { error: "server_error" } },
    );
    await auth.getAccessToken();
    vi.setSystemTime(T0 + 6_800);
    await expect(auth.getAccessToken()).resolves.toBe("short");
  });

  it("a token whose exp is already past (clock ahead) is cached by expires_in, not refetched per request", async () => {
    const { unsignedJwt } = await import("./helpers/jwt.js");
    const stale = unsignedJwt({ exp: Math.floor(Date.now() / 1000) - 3600 });
    const { server, auth } = await setup(() => ({ body: { access_token: stale, expires_in: 3600 } }));
    for (let i = 0; i < 100; i += 1) await auth.getAccessToken();
    expect(server.count).toBe(1);
  });
});

describe("invalidate(rejectedToken) is compare-and-delete", () => {
  it("drops the cached token only if it is the rejected one", async () => {
    const { server, auth } = await setup();
    await auth.getAccessToken();
    await auth.invalidate("some-older-token");
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    await auth.invalidate("token-1");
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    await auth.invalidate("token-1"); // late caller: must not evict token-2
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });
});

describe("stores", () => {
  it("works with an async store and writes what it fetched", async () => {
    const map = new Map<string, StoredToken>();
    const store: TokenStore = {
      get: async (key) => map.get(key),
      set: async (key, token) => void map.set(key, token),
      delete: async (key) => void map.delete(key),
    };
    const { server, auth } = await setup(undefined, { store, cacheKey: "k" });
    await Promise.all(Array.from({ length: 10 }, () => auth.getAccessToken()));
    await auth.getAccessToken();
    expect(server.count).toBe(1);
    expect(map.get("k")?.accessToken).toBe("token-1");
  });

  it.each([
    [
      "throws",
      () => {
        throw new Error("store down");
      },
      "error",
    ],
    ["rejects", () => Promise.reject(new Error("store down")), "error"],
    ["returns garbage", () => ({ accessToken: 42, expiresAt: "soon" }), "malformed"],
    ["returns a NaN expiry", () => ({ accessToken: "x", expiresAt: Number.NaN, refreshAt: 0, obtainedAt: 0, cacheKey: "k" }), "malformed"],
    [
      "returns another key's entry",
      () => ({
        accessToken: "other",
        expiresAt: Date.now() + 60_000,
        refreshAt: Date.now() + 30_000,
        obtainedAt: Date.now(),
        cacheKey: "other-key",
      }),
      "wrong_key",
    ],
  ])("a store that %s is a miss and an event, never a failed request or a wrong token", async (_name, get, reason) => {
    const events: TokenEvent[] = [];
    const store = {
      get,
      set: () => {
        throw new Error("store down");
      },
      delete: () => undefined,
    } as unknown as TokenStore;
    const { server, auth } = await setup(undefined, { store, cacheKey: "k", onEvent: (e) => events.push(e) });
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    // The token fetched is kept in memory, so the broken store is not asked again while it is fresh.
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    expect(server.count).toBe(1);
    expect(events).toContainEqual({ type: "store_failed", operation: "get", reason });
  });

  it("InMemoryTokenStore keeps at most maxEntries keys, evicting the least recently used", () => {
    const store = new InMemoryTokenStore({ maxEntries: 2 });
    const token = (accessToken: string): StoredToken => ({
      accessToken,
      expiresAt: Date.now() + 60_000,
      refreshAt: Date.now() + 30_000,
      obtainedAt: Date.now(),
      cacheKey: "x",
    });
    store.set("a", token("A"));
    store.set("b", token("B"));
    store.get("a");
    store.set("c", token("C"));
    expect(store.size).toBe(2);
    expect(store.get("b")).toBeUndefined();
    expect(store.get("a")?.accessToken).toBe("A");
  });

  it("InMemoryTokenStore drops expired entries", () => {
    const store = new InMemoryTokenStore();
    store.set("a", { accessToken: "A", expiresAt: Date.now() - 1, refreshAt: 0, obtainedAt: 0, cacheKey: "a" });
    expect(store.get("a")).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it("two interceptors sharing a store with different scopes never see each other's token", async () => {
    const store = new InMemoryTokenStore();
    const server = await startTokenServer((r, n) => ({ body: { access_token: `${new URLSearchParams(r.body).get("scope")}-${n}` } }));
    const make = (scope: string) => createTokenRefreshInterceptor({ tokenUrl: server.url, clientId: "c", clientSecret: "s", scope, store });
    await expect(make("a").getAccessToken()).resolves.toBe("a-1");
    await expect(make("b").getAccessToken()).resolves.toBe("b-2");
    await expect(make("a").getAccessToken()).resolves.toBe("a-1");
  });
});

describe("events", () => {
  it("reports a fetch as token_refreshed and token_cached, with timings and no token", async () => {
    vi.useFakeTimers({ toFake: ["Date", "performance"] });
    vi.setSystemTime(T0);
    const events: unknown[] = [];
    const { auth } = await setup(undefined, { onEvent: (e) => events.push(e) });
    await auth.getAccessToken();
    expect(events).toEqual([
      { type: "token_cached", expiresAt: T0 + 3_600_000, refreshAt: T0 + 3_300_000 },
      { type: "token_refreshed", durationMs: 0, expiresAt: T0 + 3_600_000, background: false },
    ]);
    expect(JSON.stringify(events)).not.toContain("token-1");
  });

  it("reports store failures as store_failed, operation only", async () => {
    const events: unknown[] = [];
    const store = {
      get: () => {
        throw new Error("down");
      },
      set: () => Promise.reject(new Error("down")),
      delete: () => undefined,
    };
    const { auth } = await setup(undefined, { store, onEvent: (e) => events.push(e) });
    await auth.getAccessToken();
    expect(events.filter((e) => (e as { type: string }).type === "store_failed")).toEqual([
      { type: "store_failed", operation: "get", reason: "error" },
      { type: "store_failed", operation: "set", reason: "error" },
    ]);
  });

  it("a listener that throws does not break the request", async () => {
    const { auth } = await setup(undefined, {
      onEvent: () => {
        throw new Error("listener bug");
      },
    });
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
  });
});

describe("abort and dispose", () => {
  it("one caller's abort stops only that caller; the shared fetch goes on and is cached", async () => {
    const gate = defer();
    const { server, auth } = await setup(async (r, n) => (await gate.promise, issueTokens(r, n)));
    const controller = new AbortController();
    const aborted = auth.getAccessToken({ signal: controller.signal });
    const other = auth.getAccessToken();
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ code: "ERR_TOKEN_ABORTED" });
    gate.resolve();
    await expect(other).resolves.toBe("token-1");
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    expect(server.count).toBe(1);
  });

  it("after dispose() calls fail with ERR_DISPOSED and an in-flight fetch is not stored", async () => {
    const gate = defer();
    const store = new InMemoryTokenStore();
    const { server, auth } = await setup(async (r, n) => (await gate.promise, issueTokens(r, n)), { store, cacheKey: "k" });
    const inflight = auth.getAccessToken();
    await vi.waitFor(() => expect(server.count).toBe(1));
    auth.dispose();
    gate.resolve();
    await inflight.catch(() => undefined);
    expect(store.get("k")).toBeUndefined();
    await expect(auth.getAccessToken()).rejects.toMatchObject({ code: "ERR_DISPOSED" });
  });
});

describe("createTokenSource: the same cache for callers that are not axios", () => {
  it("getToken() returns the token with its timing; 50 concurrent callers share one token request", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(T0);
    const server = await startTokenServer();
    const source = createTokenSource({ tokenUrl: server.url, clientId: "c", clientSecret: "s", refreshJitter: 0 });
    const tokens = await Promise.all(Array.from({ length: 50 }, () => source.getToken()));
    expect(new Set(tokens.map((t) => t.accessToken))).toEqual(new Set(["token-1"]));
    expect(tokens[0]).toEqual({ accessToken: "token-1", tokenType: "Bearer", expiresAt: T0 + 3_600_000, refreshAt: T0 + 3_300_000 });
    await expect(source.getAccessToken()).resolves.toBe("token-1");
    expect(server.count).toBe(1);
    await source.invalidate();
    await expect(source.getAccessToken()).resolves.toBe("token-2");
    source.dispose();
    await expect(source.getToken()).rejects.toMatchObject({ code: "ERR_DISPOSED" });
  });

  it("refuses the interceptor's own options, naming them", () => {
    const server = "https://idp.example.com/token";
    expect(() =>
      createTokenSource({ tokenUrl: server, clientId: "c", clientSecret: "s", allowedOrigins: ["https://a.example"] } as never),
    ).toThrow(/unknown option "allowedOrigins"/);
  });

  it("shows its cache key, never the secret, in util.inspect and JSON", async () => {
    const { inspect } = await import("node:util");
    const source = createTokenSource({ tokenUrl: "https://idp.example.com/token", clientId: "c", clientSecret: "very-secret-value" });
    expect(inspect(source)).toMatch(/^TokenSource \{ cacheKey: /);
    expect(`${inspect(source)}${JSON.stringify(source)}`).not.toContain("very-secret-value");
  });
});
