/**
 * attach()'s warm path: with a token at hand the request is authorized synchronously, so axios sends
 * it in the same tick; without one, or with another asynchronous interceptor on the instance, the
 * request waits as before. Either way every request carries the right token exactly once.
 */
import axios, { type AxiosAdapter } from "axios";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { defer } from "./helpers/defer.js";
import { startTokenServer } from "./helpers/servers.js";

/** An adapter that answers 200 at once and notes, per request, the Authorization it got and whether it ran in the caller's tick. */
function recordingAdapter() {
  const seen: { authorization: unknown; sameTick: boolean }[] = [];
  let callerTick = 0;
  let tick = 0;
  const adapter: AxiosAdapter = async (config) => {
    seen.push({ authorization: config.headers.get("Authorization"), sameTick: tick === callerTick });
    return { data: {}, status: 200, statusText: "OK", headers: {}, config, request: {} };
  };
  /** Marks the start of a caller's tick; any await afterwards moves to another tick. */
  const call = <T>(run: () => Promise<T>): Promise<T> => {
    tick += 1;
    callerTick = tick;
    const pending = run();
    tick += 1; // whatever runs after this line, in a later microtask, is not the caller's tick
    return pending;
  };
  return { adapter, seen, call };
}

async function setup() {
  const server = await startTokenServer();
  const recording = recordingAdapter();
  const api = axios.create({ baseURL: "https://api.example.com", adapter: recording.adapter });
  const auth = createTokenRefreshInterceptor({ tokenUrl: server.url, clientId: "c", clientSecret: "s" });
  auth.attach(api);
  return { server, api, auth, ...recording };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("the synchronous warm path", () => {
  it("a cold request waits for the token; a warm one is sent in the caller's tick", async () => {
    const { api, seen, call, server } = await setup();
    await call(() => api.get("/cold"));
    await call(() => api.get("/warm"));
    expect(seen).toEqual([
      { authorization: "Bearer token-1", sameTick: false },
      { authorization: "Bearer token-1", sameTick: true },
    ]);
    expect(server.count).toBe(1);
  });

  it("a warm request to another origin, a skipped one and one with its own Authorization go without our token, in the same tick", async () => {
    const { api, seen, call, auth } = await setup();
    await auth.getAccessToken();
    await call(() => api.get("https://elsewhere.example.com/x"));
    await call(() => api.get("/skip", { tokenRefresh: { skip: true } }));
    await call(() => api.get("/own", { headers: { authorization: "Basic abc" } }));
    expect(seen).toEqual([
      { authorization: undefined, sameTick: true },
      { authorization: undefined, sameTick: true },
      { authorization: "Basic abc", sameTick: true },
    ]);
  });

  it("with another, asynchronous interceptor on the instance, warm and cold requests still carry the token once", async () => {
    const { api, seen, auth, server } = await setup();
    const order: string[] = [];
    api.interceptors.request.use(async (config) => {
      order.push("theirs");
      await new Promise((resolve) => setTimeout(resolve, 5));
      return config;
    });
    await Promise.all([api.get("/a"), api.get("/b")]); // cold
    await auth.getAccessToken();
    await Promise.all([api.get("/c"), api.get("/d")]); // warm
    expect(seen.map((s) => s.authorization)).toEqual(Array(4).fill("Bearer token-1"));
    expect(order).toHaveLength(4);
    expect(server.count).toBe(1);
  });

  it("a token dropped while another asynchronous interceptor held the request is not sent", async () => {
    const { api, seen, auth, server } = await setup();
    await auth.getAccessToken();
    const gate = defer();
    api.interceptors.request.use(async (config) => {
      await gate.promise;
      return config;
    });
    const pending = api.get("/held");
    await auth.invalidate(); // token-1 is gone before our interceptor runs
    gate.resolve();
    await pending;
    expect(seen.map((s) => s.authorization)).toEqual(["Bearer token-2"]);
    expect(server.count).toBe(2);
  });

  it("an origin that cannot be decided fails the request with our error, never sends it", async () => {
    const { api, seen, auth } = await setup();
    await auth.getAccessToken();
    const error = await api.get("/x", { baseURL: "http://insecure.example.com" }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ERR_ORIGIN_NOT_CONFIGURED" });
    expect(seen).toEqual([]);
  });

  it("auth passed to interceptors.request.use(auth) keeps working as documented", async () => {
    const server = await startTokenServer();
    const { adapter, seen } = recordingAdapter();
    const api = axios.create({ baseURL: "https://api.example.com", adapter });
    const auth = createTokenRefreshInterceptor({ tokenUrl: server.url, clientId: "c", clientSecret: "s" });
    api.interceptors.request.use(auth);
    await Promise.all([api.get("/a"), api.get("/b")]);
    await api.get("/c");
    expect(seen.map((s) => s.authorization)).toEqual(Array(3).fill("Bearer token-1"));
    expect(server.count).toBe(1);
  });
});
