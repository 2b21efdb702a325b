/**
 * The store's optional refresh lock, with an in-process store standing in for a shared one:
 * several interceptors (as if in several processes) on one store make one token request.
 */
import { describe, expect, it } from "vitest";
import { createTokenRefreshInterceptor, InMemoryTokenStore, type TokenStore } from "../src/index.js";
import { defer } from "./helpers/defer.js";
import { issueTokens, startTokenServer, type Handler } from "./helpers/servers.js";

/** A shared store with a lock that expires by itself, like SET NX PX. */
function lockingStore(options: { failLocks?: boolean } = {}) {
  const tokens = new InMemoryTokenStore();
  const locks = new Map<string, { id: string; until: number }>();
  let next = 0;
  const store: TokenStore & { locks: typeof locks } = {
    locks,
    get: async (key) => tokens.get(key),
    set: async (key, token) => tokens.set(key, token),
    delete: async (key) => tokens.delete(key),
    acquireRefreshLock: async (key, ttlMs) => {
      if (options.failLocks === true) throw new Error("store down");
      const held = locks.get(key);
      if (held !== undefined && held.until > Date.now()) return undefined;
      const id = `lock-${++next}`;
      locks.set(key, { id, until: Date.now() + ttlMs });
      return id;
    },
    releaseRefreshLock: async (key, id) => {
      if (locks.get(key)?.id === id) locks.delete(key);
    },
  };
  return store;
}

async function fleet(size: number, store: TokenStore, handler?: Handler, timeoutMs = 5_000) {
  const server = await startTokenServer(handler);
  const members = Array.from({ length: size }, () =>
    createTokenRefreshInterceptor({ tokenUrl: server.url, clientId: "c", clientSecret: "s", store, cacheKey: "shared", timeoutMs }),
  );
  return { server, members };
}

describe("cross-process refresh lock (store contract)", () => {
  it("8 interceptors sharing a locking store, 100 calls each on a cold cache: one token request", async () => {
    const gate = defer();
    const { server, members } = await fleet(8, lockingStore(), async (r, n) => (await gate.promise, issueTokens(r, n)));
    const calls = members.flatMap((auth) => Array.from({ length: 100 }, () => auth.getAccessToken()));
    setTimeout(gate.resolve, 50);
    expect(new Set(await Promise.all(calls))).toEqual(new Set(["token-1"]));
    expect(server.count).toBe(1);
  });

  it("without a lock, the same fleet makes one token request per member", async () => {
    const map = new InMemoryTokenStore();
    const store: TokenStore = { get: async (k) => map.get(k), set: async (k, t) => map.set(k, t), delete: async (k) => map.delete(k) };
    const gate = defer();
    const { server, members } = await fleet(8, store, async (r, n) => (await gate.promise, issueTokens(r, n)));
    const calls = members.flatMap((auth) => Array.from({ length: 100 }, () => auth.getAccessToken()));
    setTimeout(gate.resolve, 50);
    await Promise.all(calls);
    expect(server.count).toBe(8);
  });

  it("a lock holder that never finishes loses the lock at its TTL; the others then fetch once", async () => {
    const store = lockingStore();
    store.locks.set("shared", { id: "dead-process", until: Date.now() + 300 });
    const { server, members } = await fleet(4, store);
    const started = Date.now();
    const tokens = await Promise.all(members.map((auth) => auth.getAccessToken()));
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(new Set(tokens)).toEqual(new Set(["token-1"]));
    expect(server.count).toBe(1);
  });

  it("waiters give up on a lock that outlives their budget and fetch themselves rather than hang", async () => {
    const store = lockingStore();
    store.locks.set("shared", { id: "stuck", until: Date.now() + 60_000 });
    const { server, members } = await fleet(2, store, undefined, 400);
    const started = Date.now();
    await Promise.all(members.map((auth) => auth.getAccessToken()));
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(server.count).toBe(2);
  });

  it("a release that throws synchronously does not cost the fetched token", async () => {
    const store = lockingStore();
    store.releaseRefreshLock = () => {
      throw new Error("release failed");
    };
    const { members } = await fleet(1, store);
    await expect(members[0]!.getAccessToken()).resolves.toBe("token-1");
  });

  it("a store whose lock fails is bypassed: the token is fetched directly", async () => {
    const { server, members } = await fleet(1, lockingStore({ failLocks: true }));
    await expect(members[0]!.getAccessToken()).resolves.toBe("token-1");
    expect(server.count).toBe(1);
  });

  it("forceRefresh on a fleet member fetches a new token even though the store holds a valid one", async () => {
    const store = lockingStore();
    const { server, members } = await fleet(2, store);
    await expect(members[0]!.getAccessToken()).resolves.toBe("token-1");
    await expect(members[1]!.getAccessToken()).resolves.toBe("token-1"); // read from the store
    await expect(members[1]!.getAccessToken({ forceRefresh: true })).resolves.toBe("token-2");
    expect(server.count).toBe(2);
    // Member 0 still holds token-1 while the store holds member 1's token-2: forcing still fetches.
    await expect(members[0]!.getAccessToken({ forceRefresh: true })).resolves.toBe("token-3");
    expect(server.count).toBe(3);
  });

  it("token_refreshed is emitted only by the member that fetched, not by those that read its token", async () => {
    const store = lockingStore();
    const gate = defer();
    const server = await startTokenServer(async (r, n) => (await gate.promise, issueTokens(r, n)));
    setTimeout(gate.resolve, 50);
    const events: string[][] = [[], []];
    const members = [0, 1].map((i) =>
      createTokenRefreshInterceptor({
        tokenUrl: server.url,
        clientId: "c",
        clientSecret: "s",
        store,
        cacheKey: "shared",
        onEvent: (e) => events[i]!.push(e.type),
      }),
    );
    // Both cold at once: one takes the lock and fetches, the other waits for what it stores.
    await Promise.all(members.map((auth) => auth.getAccessToken()));
    expect(server.count).toBe(1);
    expect(events[0]).toContain("token_refreshed");
    expect(events[1]).not.toContain("token_refreshed");
  });
});
