/**
 * End to end against oauth2-mock-server, an OAuth 2 server we did not write, on 127.0.0.1.
 *
 * What that server does, read from its source (8.2.x): it authenticates no client (its discovery
 * document says token_endpoint_auth_methods_supported: ["none"]), so client authentication is
 * asserted on what it received, through its beforeResponse hook. For client_credentials it answers
 * `{ access_token, token_type: "Bearer", expires_in: 3600, scope }`, the access token an RS256 JWT
 * (iss, iat, exp = iat + 3600, nbf, scope, aud) signed with a key it publishes at /jwks. Shorter
 * lifetimes come from its hooks: beforeResponse for expires_in, beforeTokenSigning for exp.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import axios from "axios";
import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";
import { OAuth2Server, type MutableResponse, type MutableToken, type TokenRequestIncomingMessage } from "oauth2-mock-server";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { createTokenRefreshInterceptor, type TokenEvent, type TokenRefreshOptions } from "../src/index.js";

const T0 = Date.UTC(2026, 10, 27, 12);
const CLIENT_ID = "orders-service";
const SECRET = "s3cr3t +/=%?&:é";

/** A token request as oauth2-mock-server received and parsed it. */
interface SeenTokenRequest {
  authorization: string | undefined;
  contentType: string | undefined;
  body: Record<string, unknown>;
}

let idp: OAuth2Server;
let issuer: string;
let jwks: ReturnType<typeof createRemoteJWKSet>;
let seen: SeenTokenRequest[] = [];

beforeAll(async () => {
  idp = new OAuth2Server();
  await idp.issuer.keys.generate("RS256");
  await idp.start(0, "127.0.0.1");
  // It names itself http://localhost:PORT, and localhost may resolve to ::1 where it does not listen.
  issuer = `http://127.0.0.1:${idp.address().port}`;
  idp.issuer.url = issuer;
  jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  // Every token gets a jti, so a resource server can revoke one.
  idp.service.on("beforeTokenSigning", (token: MutableToken) => {
    token.payload.jti = randomUUID();
  });
  idp.service.on("beforeResponse", (_response: MutableResponse, req: TokenRequestIncomingMessage) => {
    seen.push({ authorization: req.headers.authorization, contentType: req.headers["content-type"], body: { ...req.body } });
  });
});

afterAll(async () => {
  await idp?.stop();
});

beforeEach(() => {
  seen = [];
});

afterEach(() => {
  vi.useRealTimers();
});

function client(options: Partial<TokenRefreshOptions> = {}) {
  const events: TokenEvent[] = [];
  const auth = createTokenRefreshInterceptor({
    tokenUrl: `${issuer}/token`,
    clientId: CLIENT_ID,
    clientSecret: SECRET,
    retry: { attempts: 1 },
    onEvent: (event) => events.push(event),
    ...options,
  } as TokenRefreshOptions);
  onTestFinished(() => auth.dispose());
  return { auth, events };
}

/** Adds a listener to the server for this test only. */
function hook(event: "beforeResponse", listener: (response: MutableResponse) => void): void;
function hook(event: "beforeTokenSigning", listener: (token: MutableToken) => void): void;
function hook(event: string, listener: (value: never) => void): void {
  const handler = listener as (...args: unknown[]) => void;
  idp.service.on(event, handler);
  onTestFinished(() => {
    idp.service.off(event, handler);
  });
}

/** RFC 6749 §2.3.1: base64 of form-encoded id ":" form-encoded secret. */
function decodeBasic(authorization: string): [string, string] {
  const decoded = Buffer.from(authorization.replace(/^Basic /, ""), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const formDecode = (part: string) => decodeURIComponent(part.replace(/\+/g, " "));
  return [formDecode(decoded.slice(0, colon)), formDecode(decoded.slice(colon + 1))];
}

/** Polls with real timers (Date may be faked) until `condition` holds; at most 2 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i += 1) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition(), what).toBe(true);
}

/**
 * Fetches a token and lets 10 s pass on a faked Date (the server and jose read the same clock): the
 * library does not drop a token fetched under 5 s ago on a 401, so a replay starts from an older one.
 */
async function usedFor10s(auth: { getAccessToken(): Promise<string> }): Promise<string> {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(T0);
  const token = await auth.getAccessToken();
  vi.setSystemTime(T0 + 10_000);
  return token;
}

/** A resource server that accepts only RS256 tokens from the mock server's JWKS whose jti is not revoked. */
async function startResourceServer() {
  const revoked = new Set<string>();
  const requests: { authorization: string | undefined; status: number; jti: unknown }[] = [];
  const server = createServer((req, res) => {
    req.resume();
    void (async () => {
      const authorization = req.headers.authorization;
      const token = /^Bearer (\S+)$/.exec(authorization ?? "")?.[1];
      let status = 401;
      let jti: unknown;
      if (token !== undefined) {
        try {
          const { payload } = await jwtVerify(token, jwks, { issuer, algorithms: ["RS256"] });
          jti = payload.jti;
          status = typeof payload.jti === "string" && !revoked.has(payload.jti) ? 200 : 401;
        } catch {
          status = 401;
        }
      }
      requests.push({ authorization, status, jti });
      if (status === 200) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ ok: true, path: req.url }));
      } else {
        res.writeHead(401, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
        res.end();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, revoked, requests };
}

describe("client authentication at oauth2-mock-server (RFC 6749 §2.3.1)", () => {
  it("client_secret_post: id and secret travel in the form body, no Authorization header", async () => {
    const { auth } = client({ clientAuthMethod: "client_secret_post", scope: ["orders:read", "orders:write"] });
    const token = await auth.getAccessToken();
    expect(seen).toEqual([
      {
        authorization: undefined,
        contentType: "application/x-www-form-urlencoded",
        body: { grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: SECRET, scope: "orders:read orders:write" },
      },
    ]);
    expect(decodeJwt(token).scope).toBe("orders:read orders:write");
  });

  it("client_secret_basic: form-encoded id and secret in a Basic header, neither in the body", async () => {
    const { auth } = client({ clientAuthMethod: "client_secret_basic", clientId: "orders service:1", scope: "orders:read" });
    await auth.getAccessToken();
    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request?.body).toEqual({ grant_type: "client_credentials", scope: "orders:read" });
    expect(request?.authorization).toMatch(/^Basic [A-Za-z0-9+/]+=*$/);
    expect(decodeBasic(request?.authorization ?? "")).toEqual(["orders service:1", SECRET]);
  });
});

describe("tokens from oauth2-mock-server", () => {
  it("are RS256 JWTs that verify against the server's JWKS, cached after the first request", async () => {
    const { auth } = client();
    const token = await auth.getAccessToken();
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer, algorithms: ["RS256"] });
    expect(protectedHeader.alg).toBe("RS256");
    expect(payload.exp! - payload.iat!).toBe(3600);
    await expect(auth.getAccessToken()).resolves.toBe(token);
    expect(seen).toHaveLength(1);
  });

  it.each([
    [
      "a 60 s expires_in (JWT exp says 3600 s)",
      () => hook("beforeResponse", (response) => Object.assign(response.body, { expires_in: 60 })),
    ],
    ["a 60 s JWT exp (expires_in says 3600 s)", () => hook("beforeTokenSigning", (token) => (token.payload.exp = token.payload.iat + 60))],
  ])(
    "honour %s: reused until the refresh margin, refreshed once in the background, waited for past the expiry buffer",
    async (_, shorten) => {
      shorten();
      vi.useFakeTimers({ toFake: ["Date"] }); // the server stamps iat/exp with the same faked clock
      vi.setSystemTime(T0);
      const { auth, events } = client({ refreshMarginMs: 10_000, expiryBufferMs: 2_000, refreshJitter: 0 });
      const first = await auth.getAccessToken();
      expect(decodeJwt(first).iat).toBe(T0 / 1000);

      vi.setSystemTime(T0 + 49_999);
      await expect(auth.getAccessToken()).resolves.toBe(first);
      expect(seen).toHaveLength(1);

      // Refresh margin: everybody still gets the cached token at once; one background refresh runs.
      vi.setSystemTime(T0 + 50_000);
      const during = await Promise.all(Array.from({ length: 10 }, () => auth.getAccessToken()));
      expect(new Set(during)).toEqual(new Set([first]));
      await until(() => events.filter((event) => event.type === "token_refreshed").length === 2, "the background refresh settles");
      expect(seen).toHaveLength(2);
      const second = await auth.getAccessToken();
      expect(second).not.toBe(first);

      // The second token was requested at T0 + 50 s: past its expiry buffer (58 s later) callers wait.
      vi.setSystemTime(T0 + 50_000 + 58_000);
      const third = await auth.getAccessToken();
      expect(third).not.toBe(second);
      expect(seen).toHaveLength(3);
      expect(
        events.filter((event) => event.type === "token_refreshed").map((event) => event.type === "token_refreshed" && event.background),
      ).toEqual([false, true, false]);
    },
  );
});

describe("401 replay with attach() against a resource server that checks the JWKS", () => {
  it("a revoked token gets one 401, one new token, and one replay that carries it and succeeds", async () => {
    const api = await startResourceServer();
    const instance = axios.create({ baseURL: api.origin });
    const { auth, events } = client();
    auth.attach(instance);
    const first = await usedFor10s(auth);
    api.revoked.add(decodeJwt(first).jti as string);

    const response = await instance.get<{ ok: boolean }>("/orders");
    expect(response.status).toBe(200);
    expect(api.requests.map((request) => request.status)).toEqual([401, 200]);
    expect(api.requests[0]?.authorization).toBe(`Bearer ${first}`);
    expect(seen).toHaveLength(2);
    const second = await auth.getAccessToken();
    expect(second).not.toBe(first);
    expect(api.requests[1]?.authorization).toBe(`Bearer ${second}`);
    expect(api.requests[1]?.jti).toBe(decodeJwt(second).jti);
    expect(events.filter((event) => event.type === "unauthorized_replayed")).toEqual([
      { type: "unauthorized_replayed", status: 401, invalidated: true },
    ]);

    // The new token stays cached: the next request needs no token request.
    await instance.get("/orders/2");
    expect(api.requests.at(-1)).toMatchObject({ authorization: `Bearer ${second}`, status: 200 });
    expect(seen).toHaveLength(2);
  });

  it("a request without replay (noReplay) gets the 401, with our token redacted in the error", async () => {
    const api = await startResourceServer();
    const instance = axios.create({ baseURL: api.origin });
    const { auth } = client();
    auth.attach(instance);
    const first = await usedFor10s(auth);
    api.revoked.add(decodeJwt(first).jti as string);

    const error = await instance.get("/orders", { tokenRefresh: { noReplay: true } }).catch((e: unknown) => e);
    expect(axios.isAxiosError(error) && error.response?.status).toBe(401);
    expect(JSON.stringify(axios.isAxiosError(error) ? error.config?.headers : undefined)).not.toContain(first);
    expect(api.requests).toHaveLength(1);
    expect(seen).toHaveLength(1);
  });
});
