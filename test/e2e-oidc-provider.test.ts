/**
 * End to end against oidc-provider, an OpenID-certified authorization server we did not write,
 * through real axios instances with attach(), and a resource server that checks its tokens
 * (JWTs against its JWKS, opaque ones at its introspection endpoint). What the provider does and
 * how revocation reaches the resource server: test/helpers/oidc-provider.ts.
 */
import { randomUUID } from "node:crypto";
import axios from "axios";
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { createTokenRefreshInterceptor, isTokenRefreshError } from "../src/index.js";
import { JWT_RESOURCE, OPAQUE_RESOURCE, startOidcProvider, type OidcResourceServer, type OidcTestBed } from "./helpers/oidc-provider.js";
import { outcomes } from "./helpers/outcomes.js";
import { expectNoSecrets } from "./helpers/secrets.js";

const TTL_SECONDS = 60;

let idp: OidcTestBed;

beforeAll(async () => {
  idp = await startOidcProvider({ accessTokenTtlSeconds: TTL_SECONDS });
});

afterAll(async () => {
  await idp?.close();
});

afterEach(() => {
  vi.useRealTimers();
});

/** The client's credential, in a shape every version of the options accepts. */
type Credentials = { clientId: string } & (
  | { clientSecret: string; clientAuthMethod?: "client_secret_basic" | "client_secret_post" }
  | { clientAssertion: string | (() => Promise<string>) }
);

interface ConnectOptions {
  resource?: string;
  retryAttempts?: number;
}

/** An interceptor for the provider's token endpoint, attached to an axios instance for `rs`. */
function connect(rs: OidcResourceServer, credentials: Credentials, { resource = JWT_RESOURCE, retryAttempts }: ConnectOptions = {}) {
  const auth = createTokenRefreshInterceptor({
    tokenUrl: idp.discovery.token_endpoint,
    extraParams: { resource },
    ...(retryAttempts === undefined ? {} : { retry: { attempts: retryAttempts } }),
    ...credentials,
  });
  onTestFinished(() => auth.dispose());
  const api = axios.create({ baseURL: rs.origin });
  auth.attach(api);
  return { auth, api };
}

/** A fresh RFC 7523 assertion: oidc-provider accepts each jti once. */
function freshSignedJwt(): Promise<string> {
  const { clientId, privateKey, alg, kid } = idp.clients.privateKeyJwt;
  return new SignJWT({})
    .setProtectedHeader({ alg, kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(idp.issuer)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime("60s")
    .sign(privateKey);
}

function burst(count: number, get: (path: string) => Promise<{ status: number }>): Promise<PromiseSettledResult<{ status: number }>[]> {
  return Promise.allSettled(Array.from({ length: count }, (_, i) => get(`/orders/${i}`)));
}

const basicCredentials = (clientId: string, secret: string) => {
  const encode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
  return Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString("base64");
};

describe("client authentication at oidc-provider", () => {
  // oidc-provider takes either secret method from any secret client, so the method is proven by what was sent, not by the token.
  it.each([
    ["client_secret_basic", () => idp.clients.basic],
    ["client_secret_post", () => idp.clients.post],
  ] as const)(
    "%s: a burst of 20 concurrent requests shares one token request and reaches the resource with a verified token",
    async (method, credentials) => {
      const rs = await idp.startResourceServer();
      const { clientId, clientSecret } = credentials();
      const { api } = connect(rs, { clientId, clientSecret, clientAuthMethod: method });
      const before = idp.count;

      const results = await burst(20, (path) => api.get<{ format: string }>(path));

      expect(outcomes(results)).toEqual(Array.from({ length: 20 }, () => 200));
      expect(idp.count - before).toBe(1);
      const sent = idp.tokenRequests.at(-1);
      expect(sent?.authorization).toBe(method === "client_secret_basic" ? "Basic" : undefined);
      expect(sent?.fields.includes("client_secret")).toBe(method === "client_secret_post");
      expect(rs.requests.map((request) => request.format)).toEqual(Array.from({ length: 20 }, () => "jwt"));
      expect(new Set(rs.authorizations).size).toBe(1);
      expect(rs.unauthorized).toBe(0);
    },
  );

  it("private_key_jwt with a function: a fresh assertion for each of 3 forced refreshes, every one accepted", async () => {
    const rs = await idp.startResourceServer();
    let signed = 0;
    const { auth, api } = connect(rs, {
      clientId: idp.clients.privateKeyJwt.clientId,
      clientAssertion: () => {
        signed += 1;
        return freshSignedJwt();
      },
    });
    const before = idp.count;

    await expect(api.get("/before")).resolves.toMatchObject({ status: 200 });
    const tokens = [await auth.getAccessToken()];
    for (let i = 0; i < 3; i += 1) {
      const token = await auth.getAccessToken({ forceRefresh: true });
      tokens.push(token);
      await expect(api.get(`/after-refresh-${i}`)).resolves.toMatchObject({ status: 200 });
      expect(rs.authorizations.at(-1)).toBe(`Bearer ${token}`);
    }

    expect(new Set(tokens).size).toBe(4);
    expect(signed).toBe(4);
    expect(idp.count - before).toBe(4);
    expect(rs.unauthorized).toBe(0);
  });
});

describe("token formats, chosen by the resource indicator (RFC 8707)", () => {
  it("a JWT access token (RFC 9068) for the JWT resource, verified against the provider's JWKS", async () => {
    const rs = await idp.startResourceServer();
    const { auth, api } = connect(rs, { ...idp.clients.basic, clientAuthMethod: "client_secret_basic" }, { resource: JWT_RESOURCE });

    const token = await auth.getAccessToken();
    expect(decodeProtectedHeader(token)).toMatchObject({ typ: "at+jwt", alg: "RS256" });
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(idp.discovery.jwks_uri)), {
      issuer: idp.issuer,
      audience: JWT_RESOURCE,
      typ: "at+jwt",
    });
    expect(payload).toMatchObject({ client_id: idp.clients.basic.clientId, sub: idp.clients.basic.clientId });
    expect(payload.exp! - payload.iat!).toBe(TTL_SECONDS);
    // Why the resource server keeps its own denylist for JWTs: the provider will not introspect them.
    await expect(idp.introspect(token)).rejects.toThrow(/unsupported_token_type/);

    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200, data: { format: "jwt" } });
    expect(rs.authorizations).toEqual([`Bearer ${token}`]);
  });

  it("an opaque access token for the opaque resource, accepted through introspection", async () => {
    const rs = await idp.startResourceServer();
    const { auth, api } = connect(rs, idp.clients.post, { resource: OPAQUE_RESOURCE });

    const token = await auth.getAccessToken();
    expect(() => decodeProtectedHeader(token)).toThrow();
    const introspection = await idp.introspect(token);
    expect(introspection).toMatchObject({ active: true, aud: OPAQUE_RESOURCE, client_id: idp.clients.post.clientId, token_type: "Bearer" });
    expect(Number(introspection.exp) - Number(introspection.iat)).toBe(TTL_SECONDS);

    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200, data: { format: "opaque" } });
    expect(rs.authorizations).toEqual([`Bearer ${token}`]);
  });

  it("the resource server refuses no token, an unknown opaque token and a JWT with a broken signature", async () => {
    const rs = await idp.startResourceServer();
    const { auth } = connect(rs, idp.clients.post, { resource: JWT_RESOURCE });
    const jwt = await auth.getAccessToken();
    const tampered = `${jwt.slice(0, -4)}${jwt.endsWith("AAAA") ? "BBBB" : "AAAA"}`;
    const plain = axios.create({ baseURL: rs.origin, validateStatus: () => true });

    const answers = await Promise.all([
      plain.get("/orders"),
      plain.get("/orders", { headers: { Authorization: "Bearer not-a-token-we-issued" } }),
      plain.get("/orders", { headers: { Authorization: `Bearer ${tampered}` } }),
    ]);

    expect(answers.map((answer) => [answer.status, answer.headers["www-authenticate"]])).toEqual(
      Array.from({ length: 3 }, () => [401, 'Bearer error="invalid_token"']),
    );
    expect(rs.unauthorized).toBe(3);
  });
});

describe.each([
  ["opaque, revoked at the revocation endpoint", OPAQUE_RESOURCE],
  ["JWT, revoked through the resource server's denylist", JWT_RESOURCE],
] as const)("revocation of the cached token (%s), then a burst of 50", (_, resource) => {
  /**
   * The token is revoked `ageMs` after it was issued; then 50 concurrent requests carry it. Each must
   * get one 401, the token must be dropped once, and one token request must serve all 50 replays.
   */
  async function revokedBurst(age: "real 300 ms" | "6 s on a faked Date") {
    const rs = await idp.startResourceServer();
    const { auth, api } = connect(rs, { ...idp.clients.basic, clientAuthMethod: "client_secret_basic" }, { resource });
    // The provider, jose and the library all read this one Date, so they agree on the token's age.
    if (age === "6 s on a faked Date") vi.useFakeTimers({ toFake: ["Date"] });
    const first = await auth.getAccessToken();
    if (age === "6 s on a faked Date") vi.setSystemTime(Date.now() + 6_000);
    else await new Promise((resolve) => setTimeout(resolve, 300));

    const revocation = await idp.revoke(first);
    expect(revocation).toEqual(
      resource === JWT_RESOURCE
        ? { status: 400, error: "unsupported_token_type", denylisted: true }
        : { status: 200, error: undefined, denylisted: false },
    );
    const before = idp.count;

    const results = await burst(50, (path) => api.get(path));

    expect(outcomes(results)).toEqual(Array.from({ length: 50 }, () => 200));
    expect(idp.count - before).toBe(1);
    expect(rs.unauthorized).toBe(50);
    const second = await auth.getAccessToken();
    expect(second).not.toBe(first);
    expect(rs.authorizations.filter((header) => header === `Bearer ${first}`)).toHaveLength(50);
    expect(rs.authorizations.filter((header) => header === `Bearer ${second}`)).toHaveLength(50);
    expect(rs.requests).toHaveLength(100);
  }

  it("0.3 s after issue: every request replays once with one new token", async () => {
    await revokedBurst("real 300 ms");
  });

  it("6 s after issue: every request replays once with one new token", async () => {
    await revokedBurst("6 s on a faked Date");
  });
});

describe("refusals by the provider", () => {
  it.each(["client_secret_basic", "client_secret_post"] as const)(
    "a wrong secret (%s): a typed invalid_client error that shows the secret nowhere, nor does the error api.get() rejects with",
    async (method) => {
      const rs = await idp.startResourceServer();
      const { clientId } = method === "client_secret_basic" ? idp.clients.basic : idp.clients.post;
      const wrong = `wrong ${randomUUID()} +/=`;
      const { auth, api } = connect(rs, { clientId, clientSecret: wrong, clientAuthMethod: method }, { retryAttempts: 1 });
      const secrets = [wrong, new URLSearchParams({ v: wrong }).toString().slice(2), basicCredentials(clientId, wrong)];

      const error: unknown = await auth.getAccessToken().then(
        () => "no error",
        (e: unknown) => e,
      );
      expect(isTokenRefreshError(error)).toBe(true);
      expect(error).toMatchObject({ code: "ERR_TOKEN_REQUEST", error: "invalid_client", status: 401 });
      expect((error as Error).message).toContain("invalid_client");
      expectNoSecrets(error, ...secrets);

      const fromAxios: unknown = await api.get("/orders").then(
        () => "no error",
        (e: unknown) => e,
      );
      expect(fromAxios).toMatchObject({ error: "invalid_client" });
      expectNoSecrets(fromAxios, ...secrets);
      // Without a token the request is not sent at all, rather than sent without credentials.
      expect(rs.requests).toHaveLength(0);
    },
  );

  it("a wrong secret, 100 sequential getAccessToken() calls: at most 2 token requests", async () => {
    const rs = await idp.startResourceServer();
    const { auth } = connect(
      rs,
      { clientId: idp.clients.basic.clientId, clientSecret: `wrong ${randomUUID()}`, clientAuthMethod: "client_secret_basic" },
      { retryAttempts: 1 },
    );
    const before = idp.count;
    const started = performance.now();

    const errors: unknown[] = [];
    for (let i = 0; i < 100; i += 1) {
      errors.push(
        await auth.getAccessToken().then(
          () => "no error",
          (e: unknown) => e,
        ),
      );
    }
    const elapsedMs = Math.round(performance.now() - started);

    expect(errors.filter((e) => !(isTokenRefreshError(e) && (e as { error?: unknown }).error === "invalid_client"))).toEqual([]);
    expect(idp.count - before, `token requests for 100 calls in ${elapsedMs} ms`).toBeLessThanOrEqual(2);
  });

  it("a fixed-string clientAssertion: the first token works; its replay after forceRefresh is refused, with a hint to pass a function", async () => {
    const rs = await idp.startResourceServer();
    const assertion = await freshSignedJwt();
    const { auth, api } = connect(rs, { clientId: idp.clients.privateKeyJwt.clientId, clientAssertion: assertion }, { retryAttempts: 1 });
    const before = idp.count;

    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });
    const error: unknown = await auth.getAccessToken({ forceRefresh: true }).then(
      () => "no error",
      (e: unknown) => e,
    );

    expect(idp.count - before).toBe(2);
    expect(isTokenRefreshError(error)).toBe(true);
    expect(error).toMatchObject({ code: "ERR_TOKEN_REQUEST", error: "invalid_client", status: 401 });
    expectNoSecrets(error, assertion);
    expect((error as Error).message).toContain("pass a function");
  });
});
