/**
 * `issuer`: the token endpoint read from the authorization server's metadata, on a loopback server
 * that serves one or both well-known forms. Counted at the server: metadata requests, token requests,
 * and what the client authenticated with. The same against oidc-provider: e2e-discovery.test.ts.
 */
import { readFileSync } from "node:fs";
import axios from "axios";
import { decodeJwt } from "jose";
import { describe, expect, it, onTestFinished } from "vitest";
import { createTokenRefreshInterceptor, createTokenSource, DiscoveryError, TokenRequestError, type TokenEvent } from "../src/index.js";
import { metadataUrls } from "../src/discovery.js";
import { expectNoSecrets } from "./helpers/secrets.js";
import { startResourceServer, startTokenServer, type Handler, type RecordedRequest, type Reply } from "./helpers/servers.js";

const SECRET = "discovery-secret-9f3a";

interface AuthorizationServer {
  readonly issuer: string;
  readonly origin: string;
  readonly metadataRequests: readonly RecordedRequest[];
  readonly tokenRequests: readonly RecordedRequest[];
  /** What a metadata request gets; by default the document of `issuer`. */
  metadata: (path: string, n: number) => Reply;
}

/**
 * An authorization server on loopback whose issuer has the path `issuerPath`; `forms` says which
 * well-known URLs serve the document, and `document` adds to or overrides its members.
 */
async function startAuthorizationServer(
  options: { issuerPath?: string; forms?: readonly ("oidc" | "rfc8414")[]; document?: Record<string, unknown> } = {},
): Promise<AuthorizationServer> {
  const { issuerPath = "/realms/main", forms = ["oidc"], document = {} } = options;
  let state: AuthorizationServer | undefined;
  let metadataCount = 0;
  const handler: Handler = (request, n) => {
    const path = request.url;
    if (path.includes("/.well-known/")) {
      metadataCount += 1;
      return (state as AuthorizationServer).metadata(path, metadataCount);
    }
    if (request.method === "POST" && path === `${issuerPath.replace(/\/$/, "")}/token`) {
      return { body: { access_token: `token-${n}`, token_type: "Bearer", expires_in: 3600 } };
    }
    return { status: 404, headers: { "Content-Type": "text/html" }, body: "<html>Not found</html>" };
  };
  const server = await startTokenServer(handler);
  const issuer = `${server.origin}${issuerPath}`;
  const paths = {
    oidc: `${issuerPath.replace(/\/$/, "")}/.well-known/openid-configuration`,
    rfc8414: `/.well-known/oauth-authorization-server${issuerPath.replace(/\/$/, "")}`,
  };
  state = {
    issuer,
    origin: server.origin,
    get metadataRequests() {
      return server.requests.filter((request) => request.url.includes("/.well-known/"));
    },
    get tokenRequests() {
      return server.requests.filter((request) => request.method === "POST");
    },
    metadata: (path) =>
      forms.some((form) => paths[form] === path)
        ? { body: { issuer, token_endpoint: `${server.origin}${issuerPath.replace(/\/$/, "")}/token`, ...document } }
        : { status: 404, headers: { "Content-Type": "text/html" }, body: "<html>Not found</html>" },
  };
  return state;
}

function sourceFor(issuer: string, extra: Record<string, unknown> = {}) {
  const source = createTokenSource({ issuer, clientId: "svc", clientSecret: SECRET, ...extra } as Parameters<typeof createTokenSource>[0]);
  onTestFinished(() => source.dispose());
  return source;
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error,
  );
}

describe("the metadata URLs of an issuer", () => {
  it("puts OpenID Connect's after the path and RFC 8414's before it, without a trailing slash", () => {
    expect(metadataUrls("https://kc.example.com/realms/main")).toEqual([
      "https://kc.example.com/realms/main/.well-known/openid-configuration",
      "https://kc.example.com/.well-known/oauth-authorization-server/realms/main",
    ]);
    expect(metadataUrls("https://example.auth0.com/")).toEqual([
      "https://example.auth0.com/.well-known/openid-configuration",
      "https://example.auth0.com/.well-known/oauth-authorization-server",
    ]);
    expect(metadataUrls("https://example.okta.com/oauth2/default")[1]).toBe(
      "https://example.okta.com/.well-known/oauth-authorization-server/oauth2/default",
    );
  });
});

describe("issuer discovery", () => {
  it("a cold burst of 100 requests costs 1 metadata request and 1 token request", async () => {
    const as = await startAuthorizationServer();
    const rs = await startResourceServer();
    const auth = createTokenRefreshInterceptor({ issuer: as.issuer, clientId: "svc", clientSecret: SECRET });
    onTestFinished(() => auth.dispose());
    const api = axios.create({ baseURL: rs.origin });
    auth.attach(api);

    const responses = await Promise.all(Array.from({ length: 100 }, (_, i) => api.get(`/items/${i}`)));

    expect(responses.every((response) => response.status === 200)).toBe(true);
    expect(as.metadataRequests.map((request) => request.url)).toEqual(["/realms/main/.well-known/openid-configuration"]);
    expect(as.tokenRequests).toHaveLength(1);
    expect(as.tokenRequests[0]?.url).toBe("/realms/main/token");
    expect(new Set(rs.authorizations)).toEqual(new Set(["Bearer token-2"]));
    // The metadata request carries nothing of the client's.
    expect(as.metadataRequests[0]?.headers.authorization).toBeUndefined();
    expect(as.metadataRequests[0]?.method).toBe("GET");
  });

  it("falls back to the RFC 8414 form when the OpenID Connect form is missing, and keeps the document", async () => {
    const as = await startAuthorizationServer({ forms: ["rfc8414"] });
    const source = sourceFor(as.issuer);

    await source.getToken();
    await source.getToken({ forceRefresh: true });

    expect(as.metadataRequests.map((request) => request.url)).toEqual([
      "/realms/main/.well-known/openid-configuration",
      "/.well-known/oauth-authorization-server/realms/main",
    ]);
    expect(as.tokenRequests).toHaveLength(2);
  });

  it("takes an issuer that ends in a slash, as Auth0's does, and compares it exactly", async () => {
    const as = await startAuthorizationServer({ issuerPath: "/" });
    const source = sourceFor(as.issuer);
    expect(as.issuer.endsWith("/")).toBe(true);
    await source.getToken();
    expect(as.metadataRequests.map((request) => request.url)).toEqual(["/.well-known/openid-configuration"]);

    const withoutSlash = sourceFor(as.issuer.slice(0, -1));
    const error = await failure(withoutSlash.getToken());
    expect(error).toMatchObject({ code: "ERR_ISSUER_MISMATCH", expectedIssuer: as.issuer.slice(0, -1), receivedIssuer: as.issuer });
  });

  it("refuses a document of another issuer, names both, and sends no token request", async () => {
    const as = await startAuthorizationServer({ document: { issuer: "https://evil.example/realms/main" } });
    const events: TokenEvent[] = [];
    const source = sourceFor(as.issuer, { onEvent: (event: TokenEvent) => events.push(event) });

    const error = await failure(source.getToken());

    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error).toMatchObject({
      code: "ERR_ISSUER_MISMATCH",
      expectedIssuer: as.issuer,
      receivedIssuer: "https://evil.example/realms/main",
      metadataUrl: `${as.issuer}/.well-known/openid-configuration`,
    });
    expect((error as Error).message).toContain(as.issuer);
    expect((error as Error).message).toContain("https://evil.example/realms/main");
    expect(as.tokenRequests).toHaveLength(0);
    expect(events).toContainEqual({ type: "refresh_failed", code: "ERR_ISSUER_MISMATCH", servingCachedToken: false });
  });

  it.each([
    ["a token_endpoint over http off loopback", { token_endpoint: "http://idp.example/token" }, "https:"],
    ["no token_endpoint", { token_endpoint: undefined }, '"token_endpoint" is missing'],
    ["a token_endpoint with credentials", { token_endpoint: "https://user:pw@idp.example/token" }, "credentials"],
  ])("refuses a document with %s, and sends no token request", async (_name, document, message) => {
    const as = await startAuthorizationServer({ document });
    const error = await failure(sourceFor(as.issuer).getToken());
    expect(error).toMatchObject({ code: "ERR_DISCOVERY", status: 200 });
    expect((error as Error).message).toContain(message);
    expect(as.tokenRequests).toHaveLength(0);
  });

  it("names no received issuer when the document's is not a string", async () => {
    const as = await startAuthorizationServer({ document: { issuer: 42 } });
    const error = await failure(sourceFor(as.issuer).getToken());
    expect(error).toMatchObject({ code: "ERR_ISSUER_MISMATCH", receivedIssuer: undefined });
    expect((error as Error).message).toContain("is of issuer null");
  });

  it("reads a malformed token_endpoint_auth_methods_supported as none listed: the secret goes as Basic", async () => {
    const as = await startAuthorizationServer({ document: { token_endpoint_auth_methods_supported: "client_secret_post" } });
    await sourceFor(as.issuer).getToken();
    expect(as.tokenRequests[0]?.headers.authorization).toBe(`Basic ${btoa(`svc:${SECRET}`)}`);
  });

  it.each([
    ["HTML", { headers: { "Content-Type": "text/html" }, body: "<html>login</html>" }],
    ["a JSON array", { body: [] as unknown }],
  ])("refuses a metadata answer that is %s", async (_name, reply) => {
    const as = await startAuthorizationServer();
    as.metadata = () => reply;
    const error = await failure(sourceFor(as.issuer).getToken());
    expect(error).toMatchObject({ code: "ERR_DISCOVERY" });
    expect((error as Error).message).toContain("not a JSON object");
  });

  it("names both URLs when neither form exists, and is not cached: the next call asks again", async () => {
    const as = await startAuthorizationServer({ forms: [] });
    const source = sourceFor(as.issuer);

    const error = await failure(source.getToken());
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error).toMatchObject({ code: "ERR_DISCOVERY", status: 404 });
    expect((error as Error).message).toContain(`${as.issuer}/.well-known/openid-configuration answered 404`);
    expect((error as Error).message).toContain(`${as.origin}/.well-known/oauth-authorization-server/realms/main answered 404`);

    as.metadata = (path) =>
      path.endsWith("openid-configuration") ? { body: { issuer: as.issuer, token_endpoint: `${as.issuer}/token` } } : { status: 404 };
    await expect(source.getAccessToken()).resolves.toMatch(/^token-/);
    expect(as.metadataRequests).toHaveLength(3);
    expect(as.tokenRequests).toHaveLength(1);
  });

  it("retries a metadata server that is down (503), within the call, and once up serves the token", async () => {
    const as = await startAuthorizationServer();
    const serve = as.metadata;
    as.metadata = (path, n) => (n <= 2 ? { status: 503, body: "down" } : serve(path, n));
    const source = sourceFor(as.issuer, { retry: { attempts: 3, baseDelayMs: 1 } });

    await expect(source.getAccessToken()).resolves.toMatch(/^token-/);
    expect(as.metadataRequests).toHaveLength(3);
    expect(as.tokenRequests).toHaveLength(1);
  });

  it("fails a call whose retries are spent while the metadata server is down; the next call after it is up succeeds", async () => {
    const as = await startAuthorizationServer();
    const serve = as.metadata;
    let down = true;
    as.metadata = (path, n) => (down ? { status: 503, body: "down" } : serve(path, n));
    const source = sourceFor(as.issuer, { retry: { attempts: 1 } });

    const error = await failure(source.getToken());
    expect(error).toMatchObject({ code: "ERR_DISCOVERY", status: 503 });
    expect(as.tokenRequests).toHaveLength(0);

    down = false;
    await expect(source.getAccessToken()).resolves.toMatch(/^token-/);
    expect(as.tokenRequests).toHaveLength(1);
  });

  it("does not follow a redirect from the metadata URL", async () => {
    const as = await startAuthorizationServer();
    const elsewhere = await startAuthorizationServer();
    as.metadata = () => ({ status: 302, headers: { Location: `${elsewhere.issuer}/.well-known/openid-configuration` } });
    const error = await failure(sourceFor(as.issuer).getToken());
    expect(error).toMatchObject({ code: "ERR_DISCOVERY", status: 302 });
    expect(elsewhere.metadataRequests).toHaveLength(0);
  });

  it("refuses a metadata document over 1 MiB, as it would a token response", async () => {
    const as = await startAuthorizationServer({ document: { padding: "x".repeat(1024 * 1024) } });
    const error = await failure(sourceFor(as.issuer, { retry: { attempts: 1 } }).getToken());
    expect(error).toBeInstanceOf(TokenRequestError);
    expect((error as Error).message).toContain(
      `authorization server metadata at ${as.issuer}/.well-known/openid-configuration answered with a body larger than 1 MiB`,
    );
    expect(as.tokenRequests).toHaveLength(0);
  });

  it("bounds a hung metadata request by the token budget", async () => {
    const as = await startAuthorizationServer();
    as.metadata = () => ({ hang: true });
    const source = sourceFor(as.issuer, { timeoutMs: 300, retry: { attempts: 1 } });
    const started = performance.now();
    const error = await failure(source.getToken());
    expect(error).toMatchObject({ code: "ERR_TOKEN_TIMEOUT" });
    expect(performance.now() - started).toBeLessThan(3_000);
  });
});

describe("the client authentication method, from token_endpoint_auth_methods_supported", () => {
  const basicOf = (request: RecordedRequest | undefined) => request?.headers.authorization;

  it("sends the secret in the body when the server lists client_secret_post", async () => {
    const as = await startAuthorizationServer({
      document: { token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"] },
    });
    await sourceFor(as.issuer).getToken();
    expect(as.tokenRequests[0]?.body).toContain(`client_secret=${SECRET}`);
    expect(basicOf(as.tokenRequests[0])).toBeUndefined();
  });

  it("sends Basic when the server lists only client_secret_basic, and when it lists nothing (RFC 8414's default)", async () => {
    for (const document of [{ token_endpoint_auth_methods_supported: ["client_secret_basic", "private_key_jwt"] }, {}]) {
      const as = await startAuthorizationServer({ document });
      await sourceFor(as.issuer).getToken();
      expect(basicOf(as.tokenRequests[0])).toBe(`Basic ${btoa(`svc:${SECRET}`)}`);
      expect(as.tokenRequests[0]?.body).not.toContain("client_secret");
    }
  });

  it("refuses, before sending anything, a method the server does not list, and names what it lists", async () => {
    const as = await startAuthorizationServer({
      document: { token_endpoint_auth_methods_supported: ["client_secret_basic", "private_key_jwt"] },
    });
    const error = await failure(sourceFor(as.issuer, { clientAuthMethod: "client_secret_post" }).getToken());
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error).toMatchObject({ code: "ERR_AUTH_METHOD_UNSUPPORTED", supportedMethods: ["client_secret_basic", "private_key_jwt"] });
    expect((error as Error).message).toContain("client_secret_basic, private_key_jwt");
    expect(as.tokenRequests).toHaveLength(0);
    expectNoSecrets(error, SECRET);
  });

  it("signs an assertion for a server whose metadata lists no methods at all (nothing listed restricts nothing)", async () => {
    const as = await startAuthorizationServer();
    const privateKey = readFileSync(new URL("./fixtures/certs/ec-key.pem", import.meta.url), "utf8");
    const source = createTokenSource({ issuer: as.issuer, clientId: "svc", clientCertificate: { privateKey } });
    onTestFinished(() => source.dispose());
    await source.getToken();
    const form = new URLSearchParams(as.tokenRequests[0]?.body);
    expect(form.get("client_assertion_type")).toBe("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    expect(decodeJwt(form.get("client_assertion") ?? "").aud).toBe(`${as.issuer}/token`);
  });

  it("refuses a client assertion at a server that lists no JWT method", async () => {
    const as = await startAuthorizationServer({ document: { token_endpoint_auth_methods_supported: ["client_secret_basic"] } });
    const source = createTokenSource({ issuer: as.issuer, clientId: "svc", clientAssertion: () => "a.b.c" });
    onTestFinished(() => source.dispose());
    await expect(source.getToken()).rejects.toMatchObject({ code: "ERR_AUTH_METHOD_UNSUPPORTED" });
    expect(as.tokenRequests).toHaveLength(0);
  });
});

describe("a tokenUrl that is the issuer", () => {
  it("gets a hint when the server answers 404 with an HTML page", async () => {
    const as = await startAuthorizationServer();
    const source = createTokenSource({ tokenUrl: as.issuer, clientId: "svc", clientSecret: SECRET });
    onTestFinished(() => source.dispose());
    const error = await failure(source.getToken());
    expect(error).toBeInstanceOf(TokenRequestError);
    expect(error).toMatchObject({ status: 404 });
    expect((error as Error).message).toContain('is "tokenUrl" the issuer? pass it as "issuer"');
  });

  it("gets no such hint for a JSON 404", async () => {
    const server = await startTokenServer(() => ({ status: 404, body: { error: "not_found" } }));
    const source = createTokenSource({ tokenUrl: server.url, clientId: "svc", clientSecret: SECRET });
    onTestFinished(() => source.dispose());
    const error = await failure(source.getToken());
    expect((error as Error).message).not.toContain("issuer");
  });
});

describe("issuer options", () => {
  it.each([
    [
      { issuer: "https://idp.example/realms/main", tokenUrl: "https://idp.example/token" },
      'exactly one of "tokenUrl", "tenantId" and "issuer"',
    ],
    [{ issuer: "https://idp.example/realms/main?x=1" }, '"issuer" must not have a query'],
    [{ issuer: "http://idp.example/realms/main" }, '"issuer" must use https:'],
    [{ issuer: "idp.example" }, '"issuer" must be an absolute URL'],
    [{ issuer: "https://idp.example", authorityHost: "https://login.example" }, '"authorityHost" goes with "tenantId" only'],
  ])("%j is refused: %s", (options, message) => {
    expect(() =>
      createTokenSource({ clientId: "svc", clientSecret: SECRET, ...options } as Parameters<typeof createTokenSource>[0]),
    ).toThrow(message);
  });

  it("keys the cache by the issuer, so two issuers never share a token", async () => {
    const a = await startAuthorizationServer();
    const b = await startAuthorizationServer();
    const store = new Map<string, unknown>();
    const shared = {
      get: (key: string) => store.get(key) as never,
      set: (key: string, value: unknown) => void store.set(key, value),
      delete: (key: string) => void store.delete(key),
    };
    await sourceFor(a.issuer, { store: shared }).getToken();
    await sourceFor(b.issuer, { store: shared }).getToken();
    expect(store.size).toBe(2);
    expect(b.tokenRequests).toHaveLength(1);
  });
});
