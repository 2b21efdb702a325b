import { Readable } from "node:stream";
import axios from "axios";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createTokenRefreshInterceptor, type TokenEvent } from "../src/index.js";
import { defer } from "./helpers/defer.js";
import type { Handler } from "./helpers/servers.js";
import { apiFor, type Overrides } from "./helpers/interceptor.js";

const setup = (handler?: Handler, overrides: Overrides = {}) => apiFor(handler, overrides);

/** Fetches token-1 and lets 10 s pass (fake clocks), so a test starts from a token in use for a while. */
async function warm(auth: { getAccessToken(): Promise<string> }) {
  vi.useFakeTimers({ toFake: ["Date", "performance"] });
  const token = await auth.getAccessToken();
  vi.advanceTimersByTime(10_000);
  return token;
}

const notReplayed = (events: TokenEvent[]) => events.filter((e) => e.type === "unauthorized_not_replayed");

afterEach(() => {
  vi.useRealTimers();
});

const statusOf = (e: unknown) => (axios.isAxiosError(e) ? e.response?.status : undefined);

describe("attach(): 401 replay", () => {
  it("drops the rejected token, fetches one, and replays the request once with it", async () => {
    const { api, resource, tokens, auth } = await setup();
    await warm(auth);
    resource.rejected.add("token-1");
    const { data } = await api.get<{ authorization: string }>("/a");
    expect(data.authorization).toBe("Bearer token-2");
    expect(resource.authorizations).toEqual(["Bearer token-1", "Bearer token-2"]);
    expect(tokens.count).toBe(2);
  });

  it("a second 401 for the replay goes to the caller unchanged: no loop", async () => {
    const { api, resource, tokens, auth } = await setup();
    await warm(auth);
    resource.rejected.add("token-1").add("token-2").add("token-3");
    const error = await api.get("/a").catch((e: unknown) => e);
    expect(statusOf(error)).toBe(401);
    expect(resource.requests).toHaveLength(2);
    expect(tokens.count).toBe(2);
  });

  it("a token revoked 0.3 s after issue: 50 concurrent 401s cost one token request, and all 50 succeed", async () => {
    const { api, resource, tokens, auth } = await setup();
    await auth.getAccessToken(); // token-1, just issued: its age must not matter
    resource.rejected.add("token-1");
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => api.get<{ authorization: string }>(`/r/${i}`)));
    expect(results.filter((r) => r.status === "fulfilled" && r.value.data.authorization === "Bearer token-2")).toHaveLength(50);
    expect(tokens.count).toBe(2);
    expect(resource.authorizations.filter((a) => a === "Bearer token-1")).toHaveLength(50);
  });

  it("a resource that answers 401 to everything costs at most 2 token requests per cool-down, never one per request", async () => {
    const { api, resource, tokens, auth, events } = await setup();
    await warm(auth);
    resource.handler = () => ({ status: 401, body: {} });
    for (let i = 0; i < 20; i += 1) expect(statusOf(await api.get(`/a/${i}`).catch((e: unknown) => e))).toBe(401);
    // token-1 is dropped and token-2 fetched because of that 401; during token-2's cool-down a 401 goes to the caller.
    expect(tokens.count).toBe(2);
    expect(resource.requests).toHaveLength(21);
    expect(notReplayed(events)).toHaveLength(20);
    expect(notReplayed(events)[0]).toEqual({ type: "unauthorized_not_replayed", status: 401, reason: "already_replayed" });
    expect(notReplayed(events)[1]).toEqual({ type: "unauthorized_not_replayed", status: 401, reason: "cooldown" });
    // The cool-down is min(30 s, a tenth of the lifetime): after it, token-2 may be dropped once more.
    vi.advanceTimersByTime(30_000);
    for (let i = 0; i < 20; i += 1) expect(statusOf(await api.get(`/b/${i}`).catch((e: unknown) => e))).toBe(401);
    expect(tokens.count).toBe(3);
  });

  it("50 concurrent 401s for the same token cause one refresh", async () => {
    const { api, resource, tokens, auth } = await setup();
    await warm(auth);
    resource.rejected.add("token-1");
    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => api.get(`/r/${i}`)));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(tokens.count).toBe(2);
    expect(resource.authorizations.filter((a) => a === "Bearer token-2")).toHaveLength(50);
  });

  it("a 401 arriving after a newer token is cached causes no refresh; the replay uses the newer token", async () => {
    const gate = defer();
    const { api, resource, tokens, auth } = await setup();
    await warm(auth);
    resource.rejected.add("token-1");
    const original = resource.handler;
    resource.handler = async (request, n) => (n === 1 && (await gate.promise), original(request, n));
    const slow = api.get("/slow"); // carries token-1, its 401 is held back
    await new Promise((resolve) => setTimeout(resolve, 20));
    await auth.getAccessToken({ forceRefresh: true }); // token-2 is now cached
    gate.resolve();
    const { data } = await slow;
    expect(data).toMatchObject({ authorization: "Bearer token-2" });
    expect(tokens.count).toBe(2);
  });

  it.each([
    ["403 (insufficient_scope)", 403],
    ["500", 500],
  ])("does not replay a %s", async (_name, status) => {
    const { api, resource, tokens } = await setup();
    resource.handler = () => ({ status, body: {} });
    const error = await api.get("/a").catch((e: unknown) => e);
    expect(statusOf(error)).toBe(status);
    expect(resource.requests).toHaveLength(1);
    expect(tokens.count).toBe(1);
  });

  it("replays 403 too when the user widens replayStatuses", async () => {
    const { api, resource, tokens, auth } = await setup(undefined, { replayStatuses: [401, 403] });
    await warm(auth);
    resource.handler = (r, n) => (n === 1 ? { status: 403, body: {} } : { body: { auth: r.headers.authorization } });
    await api.get("/a");
    expect(resource.authorizations).toEqual(["Bearer token-1", "Bearer token-2"]);
    expect(tokens.count).toBe(2);
  });

  it("does not touch a request that carried the caller's own token: no token fetched, no replay", async () => {
    const { api, resource, tokens, events } = await setup();
    resource.handler = () => ({ status: 401, body: {} });
    const error = await api.get("/a", { headers: { Authorization: "Bearer mine" } }).catch((e: unknown) => e);
    expect(statusOf(error)).toBe(401);
    expect(resource.authorizations).toEqual(["Bearer mine"]);
    expect(tokens.count).toBe(0);
    expect(notReplayed(events)).toEqual([]);
  });

  it("noReplay: the 401 goes to the caller, says so in an event, and the rejected token is dropped for the next request", async () => {
    const { api, resource, tokens, auth, events } = await setup();
    await auth.getAccessToken();
    resource.rejected.add("token-1");
    const error = await api.get("/a", { tokenRefresh: { noReplay: true } }).catch((e: unknown) => e);
    expect(statusOf(error)).toBe(401);
    expect(resource.requests).toHaveLength(1);
    expect(notReplayed(events)).toEqual([{ type: "unauthorized_not_replayed", status: 401, reason: "no_replay" }]);
    await expect(api.get("/b")).resolves.toMatchObject({ data: { authorization: "Bearer token-2" } });
    expect(tokens.count).toBe(2);
  });

  it("skip: never replayed and never drops our token, even when the caller hand-set one of our tokens", async () => {
    const { api, resource, tokens, auth, events } = await setup();
    const ours = await warm(auth); // an old token, which a 401 through the normal path would drop
    resource.handler = () => ({ status: 401, body: {} });
    const error = await api
      .get("/a", { tokenRefresh: { skip: true }, headers: { Authorization: `Bearer ${ours}` } })
      .catch((e: unknown) => e);
    expect(statusOf(error)).toBe(401);
    expect(resource.requests).toHaveLength(1);
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    expect(tokens.count).toBe(1);
    expect(events.filter((e) => e.type === "unauthorized_replayed")).toEqual([]);
  });

  it("does not replay a request whose body is a stream, says why, and drops the rejected token", async () => {
    const { api, resource, tokens, auth, events } = await setup();
    await auth.getAccessToken();
    resource.rejected.add("token-1");
    const error = await api.post("/upload", Readable.from(["chunk"])).catch((e: unknown) => e);
    expect(statusOf(error)).toBe(401);
    expect(resource.requests).toHaveLength(1);
    expect(notReplayed(events)).toEqual([{ type: "unauthorized_not_replayed", status: 401, reason: "body_not_replayable" }]);
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(tokens.count).toBe(2);
  });

  it("does not replay a request whose body is a web ReadableStream either", async () => {
    const { api, resource, auth, events } = await setup();
    await auth.getAccessToken();
    resource.rejected.add("token-1");
    const body = new ReadableStream({ start: (controller) => (controller.enqueue(new TextEncoder().encode("chunk")), controller.close()) });
    const error = await api.post("/upload", body, { adapter: "fetch" }).catch((e: unknown) => e);
    expect(statusOf(error)).toBe(401);
    expect(resource.requests).toHaveLength(1);
    expect(notReplayed(events)).toEqual([{ type: "unauthorized_not_replayed", status: 401, reason: "body_not_replayable" }]);
  });

  it("replays a JSON body intact", async () => {
    const { api, resource, auth } = await setup();
    await warm(auth);
    resource.rejected.add("token-1");
    await api.post("/orders", { id: 7 });
    expect(resource.requests.map((r) => r.body)).toEqual(['{"id":7}', '{"id":7}']);
  });

  it("the token endpoint's own 401 is an error, never a replay (no recursion)", async () => {
    const { api, resource, tokens } = await setup(() => ({ status: 401, body: { error: "invalid_client" } }));
    await expect(api.get("/a")).rejects.toMatchObject({ code: "ERR_TOKEN_REQUEST", status: 401 });
    expect(tokens.count).toBe(1);
    expect(resource.requests).toHaveLength(0);
  });

  it("the replay runs through the caller's other interceptors like any request, and the config does not grow", async () => {
    const { api, resource, auth } = await setup();
    await warm(auth);
    resource.rejected.add("token-1");
    const seen: string[] = [];
    api.interceptors.request.use((config) => {
      seen.push(Object.keys(config).sort().join(","));
      return config;
    });
    await api.get("/a");
    expect(seen).toHaveLength(2);
    // The replay is the caller's config plus one marker, not our header or hook stacked on it.
    expect(seen[1]?.split(",")).toEqual([...(seen[0]?.split(",") ?? []), "tokenRefresh"].sort());
  });

  it("reports each replay as an event", async () => {
    const { api, resource, auth, events } = await setup();
    await warm(auth);
    resource.rejected.add("token-1");
    await api.get("/a");
    expect(events.filter((e) => e.type === "unauthorized_replayed")).toEqual([
      { type: "unauthorized_replayed", status: 401, invalidated: true },
    ]);
  });

  it("the function attach() returns removes both interceptors", async () => {
    const { api, resource, detach, tokens } = await setup();
    detach();
    detach(); // idempotent
    await api.get("/a");
    expect(resource.authorizations).toEqual([undefined]);
    expect(tokens.count).toBe(0);
  });

  it("refuses to attach to its own token client", async () => {
    const client = axios.create({ baseURL: "https://idp.example.com" });
    const auth = createTokenRefreshInterceptor({
      tokenUrl: "https://idp.example.com/token",
      clientId: "c",
      clientSecret: "s",
      httpClient: client,
    });
    expect(() => auth.attach(client)).toThrow(/must not be the instance/);
  });

  it("refuses to attach to an instance with no baseURL and no allowedOrigins", () => {
    const auth = createTokenRefreshInterceptor({ tokenUrl: "https://idp.example.com/token", clientId: "c", clientSecret: "s" });
    expect(() => auth.attach(axios.create())).toThrow(/allowedOrigins/);
  });
});
