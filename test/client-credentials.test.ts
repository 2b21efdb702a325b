import axios from "axios";
import axiosFloor from "axios-nested";
import { describe, expect, it } from "vitest";
import { createTokenRefreshInterceptor, InvalidTokenResponseError, TokenRequestError } from "../src/index.js";
import { expectNoSecrets } from "./helpers/secrets.js";
import { startTokenServer, type Handler } from "./helpers/servers.js";
import { interceptorFor, type Overrides } from "./helpers/interceptor.js";

const SECRET = "s3cr3t+/=%?&value";

async function tokenFrom(handler: Handler | undefined, overrides: Overrides = {}) {
  const { tokens: server, auth } = await interceptorFor(handler, { clientId: "my-client", clientSecret: SECRET, ...overrides });
  const result = await auth.getAccessToken().then(
    (token) => ({ token, error: undefined }),
    (error: unknown) => ({ token: undefined, error }),
  );
  return { server, auth, ...result };
}

describe("the token request (RFC 6749 §4.4.2)", () => {
  it("POSTs a form with grant_type, scope, extra params and client_secret_post credentials", async () => {
    const { server, token } = await tokenFrom(undefined, {
      scope: ["api://a/.default", "b"],
      extraParams: { audience: "https://api.example.com" },
    });
    expect(token).toBe("token-1");
    expect(server.count).toBe(1);
    const [request] = server.requests;
    expect(request?.method).toBe("POST");
    expect(request?.url).toBe("/oauth2/token");
    expect(request?.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(request?.headers.accept).toBe("application/json");
    expect(request?.headers.authorization).toBeUndefined();
    expect(Object.fromEntries(new URLSearchParams(request?.body))).toEqual({
      grant_type: "client_credentials",
      scope: "api://a/.default b",
      audience: "https://api.example.com",
      client_id: "my-client",
      client_secret: SECRET,
    });
  });

  it("leaves scope out when it is empty", async () => {
    const { server } = await tokenFrom(undefined, { scope: [] });
    expect(new URLSearchParams(server.requests[0]?.body).has("scope")).toBe(false);
  });

  it("form-encodes id and secret before base64 for client_secret_basic (golang TestURLUnsafeClientConfig)", async () => {
    const { server } = await tokenFrom(undefined, {
      clientId: "CLIENT_ID??",
      clientSecret: "CLIENT_SECRET??",
      clientAuthMethod: "client_secret_basic",
    });
    const [request] = server.requests;
    expect(request?.headers.authorization).toBe("Basic Q0xJRU5UX0lEJTNGJTNGOkNMSUVOVF9TRUNSRVQlM0YlM0Y=");
    const body = new URLSearchParams(request?.body);
    expect(body.has("client_secret")).toBe(false); // one method only
    expect(body.has("client_id")).toBe(false);
  });

  it("encodes a secret with spaces and pluses so the server decodes the same secret", async () => {
    const { server } = await tokenFrom(undefined, { clientSecret: "a b+c", clientAuthMethod: "client_secret_basic" });
    const basic = Buffer.from(server.requests[0]?.headers.authorization?.slice(6) ?? "", "base64").toString();
    expect(basic).toBe("my-client:a+b%2Bc");
    expect(decodeURIComponent(basic.split(":")[1]!.replace(/\+/g, " "))).toBe("a b+c");
  });

  it("sends a fresh client assertion instead of a secret (RFC 7523)", async () => {
    let minted = 0;
    const { server, auth } = await tokenFrom(undefined, { clientSecret: undefined, clientAssertion: () => `assertion-${++minted}` });
    await auth.getAccessToken({ forceRefresh: true });
    const bodies = server.requests.map((r) => Object.fromEntries(new URLSearchParams(r.body)));
    expect(bodies.map((b) => b.client_assertion)).toEqual(["assertion-1", "assertion-2"]);
    expect(bodies[0]?.client_assertion_type).toBe("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    expect(bodies[0]?.client_secret).toBeUndefined();
  });

  it("never follows a redirect from the token endpoint: the body holds the secret", async () => {
    const elsewhere = await startTokenServer();
    const { error, server } = await tokenFrom(() => ({ status: 307, headers: { Location: elsewhere.url } }));
    expect(error).toBeInstanceOf(TokenRequestError);
    expect((error as TokenRequestError).status).toBe(307);
    expect(server.count).toBe(1);
    expect(elsewhere.count).toBe(0);
  });

  it.each([
    ["http", 301],
    ["http", 302],
    ["http", 303],
    ["http", 307],
    ["http", 308],
    ["fetch", 301],
    ["fetch", 302],
    ["fetch", 303],
    ["fetch", 307],
    ["fetch", 308],
  ] as const)("with the %s adapter, a %i from the token endpoint is refused and the secret goes nowhere else", async (adapter, status) => {
    for (const [copy, axiosOf] of [
      ["the installed axios", axios],
      ["axios 1.16.1 (whose fetch adapter ignores maxRedirects)", axiosFloor],
    ] as const) {
      const elsewhere = await startTokenServer();
      const { error, server } = await tokenFrom(() => ({ status, headers: { Location: elsewhere.url } }), {
        httpClient: axiosOf.create({ adapter }),
      });
      expect(error, copy).toBeInstanceOf(TokenRequestError);
      expect((error as TokenRequestError).code, copy).toBe("ERR_TOKEN_REQUEST");
      expect(String(error), copy).toMatch(/redirect/);
      expect(server.count, copy).toBe(1);
      expect(elsewhere.count, copy).toBe(0);
      expectNoSecrets(error, SECRET, encodeURIComponent(SECRET));
    }
  });

  it("uses the given httpClient for token requests", async () => {
    const client = axios.create({ headers: { "X-Client": "mine" } });
    const { server } = await tokenFrom(undefined, { httpClient: client });
    expect(server.requests[0]?.headers["x-client"]).toBe("mine");
  });

  it("never sends an Authorization inherited from axios.defaults alongside a body secret", async () => {
    axios.defaults.headers.common.Authorization = "Bearer from-global-defaults";
    try {
      const { server, token } = await tokenFrom(undefined);
      expect(token).toBe("token-1");
      expect(server.requests[0]?.headers.authorization).toBeUndefined();
    } finally {
      delete axios.defaults.headers.common.Authorization;
    }
  });
});

describe("token responses (RFC 6749 §5.1, §5.2)", () => {
  it.each([
    ["lower-case bearer", { access_token: "abc", token_type: "bearer" }],
    ["missing token_type is taken as Bearer", { access_token: "abc" }],
    ["unknown members are ignored", { access_token: "abc", token_type: "Bearer", ext_expires_in: 1, refresh_token: "r" }],
  ])("accepts %s", async (_name, body) => {
    const { token } = await tokenFrom(() => ({ body }));
    expect(token).toBe("abc");
  });

  it.each([
    ["an HTML page", "<html>oops</html>", "body"],
    ["an empty body", "", "body"],
    ["JSON null", "null", "body"],
    ["a JSON array", "[]", "body"],
    ["truncated JSON", '{"access_token":"ab', "body"],
    ["no access_token", { token_type: "Bearer" }, "access_token"],
    ["a numeric access_token", { access_token: 123 }, "access_token"],
    ["an empty access_token", { access_token: "" }, "access_token"],
    ["CR/LF in the token", { access_token: "abc\r\nX-Injected: 1" }, "access_token"],
    ["a space in the token", { access_token: "abc def" }, "access_token"],
    ["a NUL in the token", { access_token: "abc\u0000" }, "access_token"],
    ["token_type DPoP", { access_token: "abc", token_type: "DPoP" }, "token_type"],
    ["token_type mac", { access_token: "abc", token_type: "mac" }, "token_type"],
  ])("refuses %s with InvalidTokenResponseError naming the field", async (_name, body, field) => {
    const { error } = await tokenFrom(() => ({ body }));
    expect(error).toBeInstanceOf(InvalidTokenResponseError);
    expect((error as InvalidTokenResponseError).code).toBe("ERR_INVALID_TOKEN_RESPONSE");
    expect((error as InvalidTokenResponseError).field).toBe(field);
    expect((error as Error).message).toContain(`"${field}"`);
    expect((error as Error).message).not.toContain("oops");
  });

  it("maps a 401 invalid_client to TokenRequestError with the RFC fields", async () => {
    const { error } = await tokenFrom(() => ({
      status: 401,
      body: { error: "invalid_client", error_description: "AADSTS7000215: Invalid client secret.", error_uri: "https://e.example/x" },
    }));
    expect(error).toBeInstanceOf(TokenRequestError);
    expect(error).toMatchObject({
      code: "ERR_TOKEN_REQUEST",
      status: 401,
      error: "invalid_client",
      errorDescription: "AADSTS7000215: Invalid client secret.",
      errorUri: "https://e.example/x",
      message: "token endpoint responded 401 invalid_client: AADSTS7000215: Invalid client secret.",
    });
  });

  it("treats an error member in a 200 as a failure", async () => {
    const { error } = await tokenFrom(() => ({ body: { error: "invalid_scope", access_token: "abc" } }));
    expect(error).toMatchObject({ code: "ERR_TOKEN_REQUEST", status: 200, error: "invalid_scope" });
  });

  it("strips control characters from error_description and caps its length", async () => {
    const { error } = await tokenFrom(() => ({
      status: 400,
      body: { error: "invalid_request", error_description: `line1\r\nFAKE LOG LINE\u001b[31m${"x".repeat(2000)}` },
    }));
    const description = (error as TokenRequestError).errorDescription ?? "";
    expect(description).not.toMatch(/[\r\n\u001b]/);
    expect(description.length).toBeLessThanOrEqual(301);
  });

  it("refuses a body over 1 MiB", async () => {
    const { error, token } = await tokenFrom(() => ({ body: { access_token: "a", padding: "x".repeat(1_100_000) } }));
    expect(token).toBeUndefined();
    expect(error).toBeInstanceOf(TokenRequestError);
    expect((error as TokenRequestError).code).toBe("ERR_TOKEN_REQUEST");
    expect(String(error)).toContain("larger than 1 MiB");
  });

  it("reports an unreachable endpoint as ERR_TOKEN_NETWORK with the low-level code", async () => {
    const server = await startTokenServer();
    await server.close();
    const auth = createTokenRefreshInterceptor({ tokenUrl: server.url, clientId: "c", clientSecret: SECRET, retry: { attempts: 1 } });
    const error = await auth.getAccessToken().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ERR_TOKEN_NETWORK", networkCode: "ECONNREFUSED" });
  });
});

describe("secrets never leak into errors", () => {
  it.each([
    ["client_secret_post, 401", "client_secret_post", { status: 401, body: { error: "invalid_client" } }],
    ["client_secret_basic, 500", "client_secret_basic", { status: 500, body: "<html>boom</html>" }],
    ["client_secret_post, bad body", "client_secret_post", { body: { access_token: "bad token" } }],
  ] as const)("%s: no secret, Basic credential or form body in any rendering", async (_name, method, reply) => {
    const { error } = await tokenFrom(() => reply, { clientAuthMethod: method });
    expect(error).toBeInstanceOf(Error);
    const basic = Buffer.from(`my-client:${encodeURIComponent(SECRET)}`).toString("base64");
    expectNoSecrets(error, SECRET, encodeURIComponent(SECRET), basic, "client_secret=");
  });

  it("no secret in a network failure's error and its cause chain", async () => {
    const server = await startTokenServer();
    await server.close();
    const { error } = await tokenFrom(undefined, { tokenUrl: server.url });
    expectNoSecrets(error, SECRET, encodeURIComponent(SECRET));
  });

  it("util.inspect and JSON.stringify of the interceptor show no secret", async () => {
    const { auth } = await tokenFrom(undefined);
    const { inspect } = await import("node:util");
    expect(inspect(auth, { depth: Infinity, showHidden: true })).not.toContain(SECRET);
    expect(JSON.stringify(auth)).not.toContain(SECRET);
    expect(JSON.stringify(auth)).toContain("my-client");
  });
});
