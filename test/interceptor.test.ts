import { Agent } from "node:http";
import axios from "axios";
import { describe, expect, it, vi } from "vitest";
import { createTokenRefreshInterceptor, TokenRequestError } from "../src/index.js";
import { defer } from "./helpers/defer.js";
import { issueTokens, startResourceServer, startTokenServer, type Handler } from "./helpers/servers.js";
import { apiFor, type Overrides } from "./helpers/interceptor.js";

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

const setup = (handler?: Handler, overrides: Overrides = {}) =>
  apiFor(handler, overrides, { install: "use", path: "/v1", instance: { httpAgent: agent } });

describe("request interceptor", () => {
  it("1,000 concurrent requests on a cold cache: one token request, every request carries its token", async () => {
    const gate = defer();
    const { tokens, resource, api } = await setup(async (r, n) => (await gate.promise, issueTokens(r, n)));
    const requests = Array.from({ length: 1000 }, (_, i) => api.get(`/items/${i}`));
    setTimeout(gate.resolve, 20);
    const responses = await Promise.all(requests);
    expect(tokens.count).toBe(1);
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(resource.requests).toHaveLength(1000);
    expect(new Set(resource.authorizations)).toEqual(new Set(["Bearer token-1"]));
  });

  it("works as the issue's one-liner: instance.interceptors.request.use(auth), then get", async () => {
    const { api, resource } = await setup();
    const { data } = await api.get<{ authorization: string }>("/users");
    expect(data.authorization).toBe("Bearer token-1");
    expect(resource.requests[0]?.url).toBe("/v1/users");
  });

  it("never overwrites an Authorization the caller set on the request or the instance", async () => {
    const { api, resource, tokens } = await setup();
    await api.get("/a", { headers: { authorization: "Bearer mine" } });
    api.defaults.headers.common.Authorization = "Bearer instance-wide";
    await api.get("/b");
    expect(resource.authorizations).toEqual(["Bearer mine", "Bearer instance-wide"]);
    expect(tokens.count).toBe(0);
  });

  it("leaves config.auth (Basic) requests alone", async () => {
    const { api, resource } = await setup();
    await api.get("/a", { auth: { username: "u", password: "p" } });
    expect(resource.authorizations[0]).toMatch(/^Basic /);
  });

  it("skips a request marked tokenRefresh.skip", async () => {
    const { api, resource, tokens } = await setup();
    await api.get("/public", { tokenRefresh: { skip: true } });
    expect(resource.authorizations).toEqual([undefined]);
    expect(tokens.count).toBe(0);
  });

  it("honours axios's runWhen", async () => {
    const tokens = await startTokenServer();
    const resource = await startResourceServer();
    const api = axios.create({ baseURL: resource.origin });
    const auth = createTokenRefreshInterceptor({ tokenUrl: tokens.url, clientId: "c", clientSecret: "s" });
    api.interceptors.request.use(auth, undefined, { runWhen: (config) => !config.url?.startsWith("/public") });
    await api.get("/public/x");
    await api.get("/private");
    expect(resource.authorizations).toEqual([undefined, "Bearer token-1"]);
  });

  it("never writes the token into instance or global defaults", async () => {
    const { api } = await setup();
    await api.get("/a");
    expect(JSON.stringify(api.defaults.headers)).not.toContain("token-1");
    expect(JSON.stringify(axios.defaults.headers)).not.toContain("token-1");
  });

  it("does not send the token to another origin named by an absolute URL (CVE-2025-27152)", async () => {
    const { api, tokens } = await setup();
    const other = await startResourceServer();
    await api.get(`${other.origin}/steal`);
    expect(other.authorizations).toEqual([undefined]);
    expect(tokens.count).toBe(0);
  });

  it("surfaces a token-endpoint failure to the caller as a TokenRequestError", async () => {
    const { api, resource } = await setup(() => ({ status: 401, body: { error: "invalid_client" } }));
    const error = await api.get("/a").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenRequestError);
    expect(error).toMatchObject({ code: "ERR_TOKEN_REQUEST", error: "invalid_client" });
    expect(resource.requests).toHaveLength(0);
  });

  it("an aborted request rejects as an axios cancel while the shared fetch serves the others", async () => {
    const gate = defer();
    const { api, tokens, resource } = await setup(async (r, n) => (await gate.promise, issueTokens(r, n)));
    const controller = new AbortController();
    const cancelled = api.get("/a", { signal: controller.signal }).catch((e: unknown) => e);
    const served = api.get("/b");
    controller.abort();
    expect(axios.isCancel(await cancelled)).toBe(true);
    gate.resolve();
    await served;
    expect(tokens.count).toBe(1);
    expect(resource.requests.map((r) => r.url)).toEqual(["/v1/b"]);
  });

  it("requests without baseURL or allowedOrigins fail with a clear error", async () => {
    const tokens = await startTokenServer();
    const api = axios.create();
    api.interceptors.request.use(createTokenRefreshInterceptor({ tokenUrl: tokens.url, clientId: "c", clientSecret: "s" }));
    await expect(api.get("http://127.0.0.1:1/x")).rejects.toMatchObject({ code: "ERR_ORIGIN_NOT_CONFIGURED" });
  });

  it("a URL with a user and password is the caller's own credential: no token is fetched or attached", async () => {
    const { api, resource, tokens } = await setup();
    const withUser = resource.origin.replace("http://", "http://alice:wonderland@");
    await api.get(`${withUser}/v1/me`);
    expect(tokens.count).toBe(0);
    expect(resource.authorizations).toEqual([`Basic ${Buffer.from("alice:wonderland").toString("base64")}`]);
  });

  it("axios timeout bounds the whole call: a slow token endpoint makes the request fail as axios times out", async () => {
    const gate = defer();
    const { api, resource, tokens } = await setup(async (r, n) => (await gate.promise, issueTokens(r, n)));
    const started = performance.now();
    const error = await api.get("/slow", { timeout: 200 }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(axios.isAxiosError(error) && error.code).toBe("ECONNABORTED");
    expect(String(error)).toContain("timeout of 200ms exceeded");
    expect(elapsed).toBeLessThan(1_000);
    const clarified = await api.get("/slow", { timeout: 100, transitional: { clarifyTimeoutError: true } }).catch((e: unknown) => e);
    expect(axios.isAxiosError(clarified) && clarified.code).toBe("ETIMEDOUT");
    // The shared fetch went on: the next request gets its token without a second token request.
    gate.resolve();
    await expect(api.get("/after")).resolves.toMatchObject({ data: { authorization: "Bearer token-1" } });
    expect(tokens.count).toBe(1);
    expect(resource.requests.map((r) => r.url)).toEqual(["/v1/after"]);
  });

  it("the request gets what is left of its timeout after the token wait", async () => {
    const { api } = await setup(async (r, n) => (await new Promise((resolve) => setTimeout(resolve, 150)), issueTokens(r, n)));
    const cold = await api.get("/a", { timeout: 2_000 });
    // The adapter ran with the config the interceptor returned: 2 s less the ~150 ms token wait.
    expect(cold.config.timeout).toBeLessThanOrEqual(2_000 - 140);
    expect(cold.config.timeout).toBeGreaterThan(1_000);
    const warm = await api.get("/b", { timeout: 2_000 });
    expect(warm.config.timeout).toBe(2_000); // a warm token costs no time
  });

  it("interceptors without an httpClient share one token client, made at the first token request", async () => {
    const tokens = await startTokenServer();
    const create = vi.spyOn(axios, "create");
    try {
      const interceptors = ["a", "b", "c"].map((clientId) =>
        createTokenRefreshInterceptor({ tokenUrl: tokens.url, clientId, clientSecret: "s" }),
      );
      const fetched = await Promise.all(interceptors.map((auth) => auth.getAccessToken()));
      expect(new Set(fetched).size).toBe(3); // each its own token
      expect(tokens.requests.map((r) => new URLSearchParams(r.body).get("client_id")).sort()).toEqual(["a", "b", "c"]);
      // At most one axios.create() for all three (none when an earlier test in this file already made it).
      expect(create.mock.calls.length).toBeLessThanOrEqual(1);
      for (const auth of interceptors) auth.dispose();
    } finally {
      create.mockRestore();
    }
  });
});
