/**
 * Stores that hang, lag or lie: no store may hang, slow or mislead a request. Every store call is
 * bounded, the token this process holds is served without asking the store while it is fresh,
 * an entry is bound to its key, and invalidate() is final even against a slow write.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { createTokenRefreshInterceptor, InMemoryTokenStore, type StoredToken, type TokenEvent, type TokenStore } from "../src/index.js";
import { STORE_CALL_TIMEOUT_MS } from "../src/guarded-store.js";
import { defer } from "./helpers/defer.js";
import { issueTokens, startTokenServer, type Handler } from "./helpers/servers.js";
import { interceptorFor, type Overrides } from "./helpers/interceptor.js";

const setup = async (store: TokenStore, overrides: Overrides = {}, handler?: Handler) => {
  const { tokens, auth, events } = await interceptorFor(handler, { store, cacheKey: "k", ...overrides });
  return { server: tokens, auth, events };
};

const never = <T>(): Promise<T> => new Promise<T>(() => {});

/** A store whose every call can be told to hang, counting the calls it gets. */
function hangingStore(hang: Partial<Record<"get" | "set" | "delete" | "lock", boolean>>) {
  const map = new InMemoryTokenStore();
  const calls = { get: 0, set: 0, delete: 0, lock: 0 };
  const store: TokenStore = {
    get: (key) => (calls.get++, hang.get === true ? never() : map.get(key)),
    set: (key, token) => (calls.set++, hang.set === true ? never() : map.set(key, token)),
    delete: (key) => (calls.delete++, hang.delete === true ? never() : map.delete(key)),
    acquireRefreshLock: () => (calls.lock++, hang.lock === true ? never() : "lock"),
    releaseRefreshLock: () => undefined,
  };
  return { store, calls, map };
}

/**
 * Runs `run` under fake timers, advancing them 10 ms at a time (bounded) until it settles, and
 * returns how much fake time it took: a hung store call costs its timeout without a real wait.
 */
const timed = async <T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance", "Date"] });
  const started = performance.now();
  let settled = false;
  const pending = run().finally(() => {
    settled = true;
  });
  for (let step = 0; step < 2_000 && !settled; step += 1) {
    // Real I/O (the loopback token server) needs real turns of the event loop between steps.
    await new Promise((resolve) => setImmediate(resolve));
    await vi.advanceTimersByTimeAsync(settled ? 0 : 10);
  }
  const value = await pending;
  const ms = performance.now() - started;
  vi.useRealTimers();
  return { value, ms };
};

afterEach(() => {
  vi.useRealTimers();
});

describe("a store never hangs a request", () => {
  it.each(["get", "set", "lock"] as const)(
    "a %s that never settles costs at most one store timeout, then the token is served",
    async (operation) => {
      const { store } = hangingStore({ [operation]: true });
      const { server, auth, events } = await setup(store, { timeoutMs: 2_000 });
      const { value, ms } = await timed(() => auth.getAccessToken());
      expect(value).toBe("token-1");
      expect(ms).toBeLessThan(STORE_CALL_TIMEOUT_MS * 1.5);
      expect(server.count).toBe(1);
      expect(events).toContainEqual({ type: "store_failed", operation, reason: "timeout" });
      // The next call is served from memory at once: the hung call left nothing occupied.
      const again = await timed(() => auth.getAccessToken());
      expect(again.value).toBe("token-1");
      expect(again.ms).toBeLessThan(50);
    },
  );

  it("a store call never runs past the token budget", async () => {
    const { store } = hangingStore({ get: true });
    const { auth } = await setup(store, { timeoutMs: 300 });
    const { ms } = await timed(() => auth.getAccessToken().catch(() => "failed"));
    expect(ms).toBeLessThan(600);
  });

  it("a hung set does not wedge later calls: forceRefresh and invalidate() work at once", async () => {
    const { store } = hangingStore({ set: true, delete: true });
    const { server, auth } = await setup(store, { timeoutMs: 2_000 });
    await timed(() => auth.getAccessToken());
    const forced = await timed(() => auth.getAccessToken({ forceRefresh: true }));
    expect(forced.value).toBe("token-2");
    expect(forced.ms).toBeLessThan(STORE_CALL_TIMEOUT_MS * 1.5);
    const invalidated = await timed(() => auth.invalidate());
    expect(invalidated.ms).toBeLessThan(STORE_CALL_TIMEOUT_MS * 1.5);
    expect((await timed(() => auth.getAccessToken())).value).toBe("token-3");
    expect(server.count).toBe(3);
  });
});

describe("an in-process copy in front of the store", () => {
  it("with a 500 ms store, no request waits for the store while the token is fresh", async () => {
    const map = new InMemoryTokenStore();
    const slow = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 500));
    let reads = 0;
    const store: TokenStore = {
      get: (key) => (reads++, slow(map.get(key))),
      set: (key, token) => slow(map.set(key, token)),
      delete: (key) => slow(map.delete(key)),
    };
    const { auth } = await setup(store);
    await timed(() => auth.getAccessToken()); // cold: one read, one fetch, one write
    const readsAfterWarmUp = reads;
    const started = performance.now();
    await Promise.all(Array.from({ length: 1_000 }, () => auth.getAccessToken()));
    expect(performance.now() - started).toBeLessThan(100); // real time: 1,000 calls, none waited 500 ms
    expect(reads - readsAfterWarmUp).toBe(0);
  });

  it("a 401 still finds the newer token another process stored, without a token request", async () => {
    const shared = new InMemoryTokenStore();
    const server = await startTokenServer();
    const make = () =>
      createTokenRefreshInterceptor({ tokenUrl: server.url, clientId: "c", clientSecret: "s", store: shared, cacheKey: "k" });
    const [a, b] = [make(), make()];
    await expect(a.getAccessToken()).resolves.toBe("token-1");
    await expect(b.getAccessToken()).resolves.toBe("token-1");
    await b.getAccessToken({ forceRefresh: true }); // b stores token-2
    await a.invalidate("token-1"); // a's resource rejected token-1
    await expect(a.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });
});

describe("an entry belongs to its key", () => {
  it("a store that answers one key with another key's entry never makes us send that token", async () => {
    const map = new Map<string, StoredToken>();
    const store: TokenStore = {
      get: () => map.get("orders"), // keyed wrongly: every key gets the orders entry
      set: (key, token) => void map.set(key, token),
      delete: (key) => void map.delete(key),
    };
    const server = await startTokenServer((r, n) => ({
      body: { access_token: `${new URLSearchParams(r.body).get("scope")}-${n}`, expires_in: 3600 },
    }));
    const events: TokenEvent[] = [];
    const make = (scope: string) =>
      createTokenRefreshInterceptor({
        tokenUrl: server.url,
        clientId: "c",
        clientSecret: "s",
        scope,
        store,
        cacheKey: scope,
        onEvent: (e) => events.push(e),
      });
    await expect(make("orders").getAccessToken()).resolves.toBe("orders-1");
    await expect(make("payroll").getAccessToken()).resolves.toBe("payroll-2");
    expect(events).toContainEqual({ type: "store_failed", operation: "get", reason: "wrong_key" });
  });
});

describe("a write that loses to a newer token", () => {
  it("a store that keeps a newer entry (set returns false) makes us serve that one, not ours", async () => {
    const map = new InMemoryTokenStore();
    const store: TokenStore = {
      get: async (key) => map.get(key),
      set: async (key, token) => {
        // Another process stored a later token while our request was on the wire.
        const newer = { ...token, accessToken: "from-another-process", obtainedAt: token.obtainedAt + 1 };
        map.set(key, newer);
        return false;
      },
      delete: async (key) => map.delete(key),
    };
    const { server, auth } = await setup(store);
    await expect(auth.getAccessToken()).resolves.toBe("from-another-process");
    await expect(auth.getAccessToken()).resolves.toBe("from-another-process");
    expect(server.count).toBe(1);
  });
});

describe("invalidate() is final", () => {
  it("a refreshed token whose write to an async store lands after invalidate() is never served or left in the store", async () => {
    const map = new InMemoryTokenStore();
    const writeGate = defer();
    let writes = 0;
    const store: TokenStore = {
      get: async (key) => map.get(key),
      set: async (key, token) => {
        writes += 1;
        if (writes === 1) await writeGate.promise; // the first write is slow
        map.set(key, token);
      },
      delete: async (key) => map.delete(key),
    };
    const { server, auth } = await setup(store);
    const first = auth.getAccessToken();
    await vi.waitFor(() => expect(writes).toBe(1)); // token-1 fetched, its write under way
    await auth.invalidate();
    writeGate.resolve();
    await expect(first).resolves.toBe("token-2");
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(map.get("k")?.accessToken).toBe("token-2");
    expect(server.count).toBe(2);
  });
});

describe("one clock for deadlines", () => {
  it("a wall clock stepped back an hour during a 1 s Retry-After: the wait still ends after 1 s", async () => {
    vi.useFakeTimers({ toFake: ["Date", "performance"] });
    const { server, auth } = await setup(new InMemoryTokenStore(), {}, (r, n) =>
      n === 1 ? { status: 429, headers: { "Retry-After": "1" }, body: {} } : issueTokens(r, n),
    );
    const error = await auth.getAccessToken({}).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ERR_TOKEN_THROTTLED", status: 429 });
    vi.setSystemTime(Date.now() - 3_600_000); // the wall clock only
    const throttled = await auth.getAccessToken().catch((e: unknown) => e);
    expect(String(throttled)).toContain("try again in 1 s");
    vi.advanceTimersByTime(1_000);
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });
});
