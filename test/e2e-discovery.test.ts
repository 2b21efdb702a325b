/**
 * End to end against oidc-provider for what `issuer` and `clientCertificate` add: metadata read once
 * (OpenID Connect Discovery, else RFC 8414) under a path issuer, the issuer check, outages, the
 * client authentication method chosen from the metadata, RFC 7523 assertions the library signs from
 * a fixture key, narrowed scope, and the diagnostics channels. Every case counts what reached the
 * provider. What the provider does and how the test bed serves the two well-known forms:
 * test/helpers/oidc-provider.ts; the keys: test/fixtures/certs/README.md.
 */
import { createPrivateKey, randomUUID, X509Certificate } from "node:crypto";
import diagnostics_channel from "node:diagnostics_channel";
import axios from "axios";
import { decodeJwt } from "jose";
import { beforeAll, afterAll, describe, expect, it, onTestFinished } from "vitest";
import { createTokenRefreshInterceptor, DiscoveryError, isTokenRefreshError, type TokenEvent } from "../src/index.js";
import {
  CERTS,
  JWT_RESOURCE,
  RESOURCE_SCOPE,
  startOidcProvider,
  type CertificateClient,
  type OidcTestBed,
  type OidcTestBedOptions,
  type WellKnownForm,
} from "./helpers/oidc-provider.js";
import { failure, outcomes } from "./helpers/outcomes.js";
import { expectNoSecrets } from "./helpers/secrets.js";

const ISSUER_PATH = "/realms/main";
/** A scope the resource servers never grant. */
const UNGRANTED_SCOPE = "api:write";

type Options = Parameters<typeof createTokenRefreshInterceptor>[0];

/** Shared by the cases that do not count metadata requests; those start a bed of their own. */
let idp: OidcTestBed;

beforeAll(async () => {
  idp = await startOidcProvider({ issuerPath: ISSUER_PATH });
});

afterAll(async () => {
  await idp?.close();
});

/** A provider of this test's own, under the path issuer unless told otherwise, closed when the test finishes. */
async function startBed(options: OidcTestBedOptions = {}): Promise<OidcTestBed> {
  const bed = await startOidcProvider({ issuerPath: ISSUER_PATH, ...options });
  onTestFinished(() => bed.close());
  return bed;
}

/** An interceptor with `options` (and the JWT resource), attached to an axios instance for a new resource server of `bed`. */
async function connect(bed: OidcTestBed, options: Options) {
  const rs = await bed.startResourceServer();
  const auth = createTokenRefreshInterceptor({ extraParams: { resource: JWT_RESOURCE }, ...options });
  onTestFinished(() => auth.dispose());
  const api = axios.create({ baseURL: rs.origin });
  auth.attach(api);
  return { auth, api, rs };
}

/** The metadata requests as `form:status`, in order. */
const metadataLog = (bed: OidcTestBed) => bed.metadataRequests.map((request) => `${request.form}:${request.status}`);

/** Every rendering of a secret that could leak: as is, form-encoded, and inside a Basic credential. */
function secretForms(clientId: string, secret: string): string[] {
  const encode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
  return [secret, encode(secret), Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString("base64")];
}

/** base64url of the raw digest behind an `AB:CD:…` fingerprint. */
function thumbprint(fingerprint: string): string {
  return Buffer.from(fingerprint.replaceAll(":", ""), "hex").toString("base64url");
}

describe("discovery: the token endpoint read from the issuer's metadata", () => {
  it.each([
    ["path issuer, OpenID Connect form only", ISSUER_PATH, ["oidc"], ["oidc:200"]],
    ["path issuer, RFC 8414 form only", ISSUER_PATH, ["rfc8414"], ["oidc:404", "rfc8414:200"]],
    ["path issuer, both forms: the OpenID Connect one is asked first", ISSUER_PATH, ["oidc", "rfc8414"], ["oidc:200"]],
    ["origin issuer, RFC 8414 form only", "", ["rfc8414"], ["oidc:404", "rfc8414:200"]],
  ] as const)(
    "%s: a cold burst of 100 requests costs 1 token request and one metadata request per form asked",
    async (_, issuerPath, wellKnown: readonly WellKnownForm[], expected) => {
      const bed = await startBed({ issuerPath, wellKnown });
      const { clientId, clientSecret } = bed.clients.post;
      const { auth, api, rs } = await connect(bed, { issuer: bed.issuer, clientId, clientSecret });

      const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => api.get(`/orders/${i}`)));

      expect(outcomes(results)).toEqual(Array.from({ length: 100 }, () => 200));
      // Any other /.well-known/ path (the form appended to the issuer, a trailing slash) would be logged as "other".
      expect(metadataLog(bed)).toEqual(expected);
      expect(bed.metadataRequests.map((request) => request.path)).toEqual(
        expected.map((entry) => new URL(bed.metadataUrls[entry.startsWith("oidc") ? "oidc" : "rfc8414"]).pathname),
      );
      expect(bed.count).toBe(1);
      expect(bed.tokenRequests.map((request) => request.status)).toEqual([200]);
      expect(rs.requests.map((request) => request.format)).toEqual(Array.from({ length: 100 }, () => "jwt"));
      expect(new Set(rs.authorizations).size).toBe(1);

      // The metadata is kept: a later call neither asks for it nor for a token.
      const { accessToken } = await auth.getToken();
      expect(rs.authorizations[0]).toBe(`Bearer ${accessToken}`);
      expect(bed.metadataRequests).toHaveLength(expected.length);
      expect(bed.count).toBe(1);
    },
  );

  it.each([
    ["OpenID Connect", ["oidc"], ["oidc:200"]],
    ["RFC 8414", ["rfc8414"], ["oidc:404", "rfc8414:200"]],
  ] as const)(
    "the %s document names another issuer: ERR_ISSUER_MISMATCH naming both, no token request, not cached",
    async (_, wellKnown: readonly WellKnownForm[], perCall) => {
      const bed = await startBed({ wellKnown });
      const other = "https://login.example.com/realms/main";
      bed.metadata.patch = { issuer: other };
      const { clientId, clientSecret } = bed.clients.post;
      const { auth, api, rs } = await connect(bed, { issuer: bed.issuer, clientId, clientSecret, retry: { attempts: 1 } });

      const error = await failure(auth.getToken());
      expect(error).toBeInstanceOf(DiscoveryError);
      expect(isTokenRefreshError(error)).toBe(true);
      expect(error).toMatchObject({ code: "ERR_ISSUER_MISMATCH", expectedIssuer: bed.issuer, receivedIssuer: other });
      expect((error as Error).message).toContain(bed.issuer);
      expect((error as Error).message).toContain(other);
      expectNoSecrets(error, ...secretForms(clientId, clientSecret));

      // A failed discovery is not kept: the request through axios asks again, and fails the same way.
      const fromAxios = await failure(api.get("/orders"));
      expect(fromAxios).toMatchObject({ code: "ERR_ISSUER_MISMATCH", expectedIssuer: bed.issuer, receivedIssuer: other });
      expect(metadataLog(bed)).toEqual([...perCall, ...perCall]);
      expect(bed.count).toBe(0);
      expect(rs.requests).toHaveLength(0);
    },
  );

  it("an issuer configured with a trailing slash the server does not state: ERR_ISSUER_MISMATCH, no token request", async () => {
    const bed = await startBed();
    const configured = `${bed.issuer}/`;
    const { clientId, clientSecret } = bed.clients.post;
    const { auth } = await connect(bed, { issuer: configured, clientId, clientSecret, retry: { attempts: 1 } });

    const error = await failure(auth.getToken());

    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error).toMatchObject({ code: "ERR_ISSUER_MISMATCH", expectedIssuer: configured, receivedIssuer: bed.issuer });
    // The metadata URL is built without the slash, so the document is found; it just names the other string.
    expect(metadataLog(bed)).toEqual(["oidc:200"]);
    expect(bed.count).toBe(0);
  });

  it("metadata down (503): the call fails after its one attempt, the failure is not kept, and the next call once it is back gets a token", async () => {
    const bed = await startBed();
    bed.metadata.down = true;
    const { clientId, clientSecret } = bed.clients.post;
    const { auth, api, rs } = await connect(bed, { issuer: bed.issuer, clientId, clientSecret, retry: { attempts: 1 } });

    const error = await failure(auth.getToken());
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(isTokenRefreshError(error)).toBe(true);
    expect(error).toMatchObject({ code: "ERR_DISCOVERY", status: 503, metadataUrl: bed.metadataUrls.oidc });
    // A 5xx is the server's trouble, not a missing document: RFC 8414 is not tried.
    expect(metadataLog(bed)).toEqual(["oidc:503"]);
    expect(bed.count).toBe(0);

    bed.metadata.down = false;
    const token = await auth.getToken();

    expect(metadataLog(bed)).toEqual(["oidc:503", "oidc:200"]);
    expect(bed.count).toBe(1);
    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });
    expect(rs.authorizations).toEqual([`Bearer ${token.accessToken}`]);
  });

  it("metadata answers 503 twice, then 200: retried within one call (3 attempts), one token request", async () => {
    const bed = await startBed();
    bed.metadata.failNext = 2;
    const { clientId, clientSecret } = bed.clients.post;
    const { auth } = await connect(bed, { issuer: bed.issuer, clientId, clientSecret, retry: { attempts: 3, baseDelayMs: 1 } });

    await expect(auth.getToken()).resolves.toMatchObject({ tokenType: "Bearer" });

    expect(metadataLog(bed)).toEqual(["oidc:503", "oidc:503", "oidc:200"]);
    expect(bed.count).toBe(1);
  });

  it("neither form served (404, 404): ERR_DISCOVERY naming the last URL asked, no token request", async () => {
    const bed = await startBed({ wellKnown: [] });
    const { clientId, clientSecret } = bed.clients.post;
    const { auth } = await connect(bed, { issuer: bed.issuer, clientId, clientSecret, retry: { attempts: 1 } });

    const error = await failure(auth.getToken());

    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error).toMatchObject({ code: "ERR_DISCOVERY", status: 404, metadataUrl: bed.metadataUrls.rfc8414 });
    expect(metadataLog(bed)).toEqual(["oidc:404", "rfc8414:404"]);
    expect(bed.count).toBe(0);
  });
});

describe("client authentication chosen from token_endpoint_auth_methods_supported", () => {
  // oidc-provider takes a secret either way from any secret client (see the helper's file comment),
  // so the method is proven by what the recorded token request carried, not by the token.
  it("the server lists only client_secret_basic: with no clientAuthMethod the secret goes as Basic, and a token is issued", async () => {
    const bed = await startBed({ clientAuthMethods: ["client_secret_basic"] });
    expect(bed.discovery.token_endpoint_auth_methods_supported).toEqual(["client_secret_basic"]);
    const { clientId, clientSecret } = bed.clients.basic;
    const { api } = await connect(bed, { issuer: bed.issuer, clientId, clientSecret });

    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });

    expect(bed.tokenRequests).toHaveLength(1);
    expect(bed.tokenRequests[0]).toMatchObject({ clientId, authorization: "Basic", status: 200 });
    expect(bed.tokenRequests[0]?.fields).not.toContain("client_secret");
  });

  it("the server lists client_secret_post (and basic): with no clientAuthMethod the secret goes in the body", async () => {
    const bed = await startBed();
    expect(bed.discovery.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(["client_secret_basic", "client_secret_post"]),
    );
    const { clientId, clientSecret } = bed.clients.post;
    const { api } = await connect(bed, { issuer: bed.issuer, clientId, clientSecret });

    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });

    expect(bed.tokenRequests).toHaveLength(1);
    expect(bed.tokenRequests[0]).toMatchObject({ clientId, authorization: undefined, status: 200 });
    expect(bed.tokenRequests[0]?.fields).toEqual(expect.arrayContaining(["client_id", "client_secret"]));
  });

  it.each([
    [
      "clientAuthMethod client_secret_post",
      (bed: OidcTestBed) => ({ ...bed.clients.post, clientAuthMethod: "client_secret_post" as const }),
    ],
    [
      "clientCertificate (private_key_jwt)",
      (bed: OidcTestBed) => ({
        clientId: bed.clients.certEs256.clientId,
        clientCertificate: { privateKey: bed.clients.certEs256.privateKey },
      }),
    ],
  ] as const)(
    "%s while the server lists only client_secret_basic: ERR_AUTH_METHOD_UNSUPPORTED with supportedMethods, no token request",
    async (_, credentials) => {
      const bed = await startBed({ clientAuthMethods: ["client_secret_basic"] });
      const { auth, api, rs } = await connect(bed, { issuer: bed.issuer, ...credentials(bed), retry: { attempts: 1 } });

      const error = await failure(auth.getToken());

      expect(error).toBeInstanceOf(DiscoveryError);
      expect(isTokenRefreshError(error)).toBe(true);
      expect(error).toMatchObject({ code: "ERR_AUTH_METHOD_UNSUPPORTED", supportedMethods: ["client_secret_basic"] });
      expectNoSecrets(error, ...secretForms(bed.clients.post.clientId, bed.clients.post.clientSecret), CERTS.ecKey);
      await expect(failure(api.get("/orders"))).resolves.toMatchObject({ code: "ERR_AUTH_METHOD_UNSUPPORTED" });
      expect(bed.count).toBe(0);
      expect(rs.requests).toHaveLength(0);
    },
  );
});

describe("clientCertificate: RFC 7523 assertions signed by the library", () => {
  it.each([
    ["ES256 from a PKCS#8 P-256 key, no certificate", () => idp.clients.certEs256],
    ["RS256 from a PKCS#8 RSA key, with its certificate", () => idp.clients.certRs256],
  ] as const)("%s: 3 forced refreshes, every assertion accepted, each fresh and as RFC 7523 wants", async (_, which) => {
    const client: CertificateClient = which();
    const { clientId, privateKey, certificate } = client;
    const { auth, api, rs } = await connect(idp, {
      issuer: idp.issuer,
      clientId,
      clientCertificate: certificate === undefined ? { privateKey } : { privateKey, certificate },
    });
    const before = { count: idp.count, assertions: idp.assertions.length };

    await expect(api.get("/before")).resolves.toMatchObject({ status: 200 });
    const tokens = [(await auth.getToken()).accessToken];
    for (let i = 0; i < 3; i += 1) {
      const { accessToken } = await auth.getToken({ forceRefresh: true });
      tokens.push(accessToken);
      await expect(api.get(`/after-refresh-${i}`)).resolves.toMatchObject({ status: 200 });
      expect(rs.authorizations.at(-1)).toBe(`Bearer ${accessToken}`);
    }

    expect(new Set(tokens).size).toBe(4);
    expect(idp.count - before.count).toBe(4);
    const sent = idp.assertions.slice(before.assertions);
    // The provider refuses a replayed jti, so four 200s also mean four distinct assertions.
    expect(sent.map((assertion) => [assertion.clientId, assertion.status])).toEqual(Array.from({ length: 4 }, () => [clientId, 200]));
    const x509 = certificate === undefined ? undefined : new X509Certificate(certificate);
    for (const { header, claims } of sent) {
      expect(header).toEqual(
        x509 === undefined
          ? { alg: client.alg, typ: "JWT" }
          : { alg: client.alg, typ: "JWT", x5t: thumbprint(x509.fingerprint), "x5t#S256": thumbprint(x509.fingerprint256) },
      );
      expect(claims).toMatchObject({ iss: clientId, sub: clientId, aud: idp.discovery.token_endpoint });
      const { iat, nbf, exp, jti } = claims;
      expect([typeof iat, typeof nbf, typeof exp, typeof jti]).toEqual(["number", "number", "number", "string"]);
      expect(exp! - iat!).toBeGreaterThan(0);
      expect(exp! - iat!).toBeLessThanOrEqual(600);
      expect(nbf!).toBeLessThanOrEqual(iat!);
      expect(Math.abs(iat! - Date.now() / 1000)).toBeLessThan(60);
    }
    expect(new Set(sent.map(({ claims }) => claims.jti)).size).toBe(4);
    expect(rs.unauthorized).toBe(0);
  });

  it.each([
    ["an RSA key as PKCS#1 PEM (BEGIN RSA PRIVATE KEY), with its certificate", () => idp.clients.certRs256, "pkcs1", "RS256"],
    ["a P-256 key as SEC1 PEM (BEGIN EC PRIVATE KEY)", () => idp.clients.certEs256, "sec1", "ES256"],
    ["an RSA key as a KeyObject", () => idp.clients.certRs256, "KeyObject", "RS256"],
    ["an RSA key with algorithm PS256", () => idp.clients.certPs256, "pkcs8", "PS256"],
  ] as const)("%s: one token, accepted", async (_, which, form, alg) => {
    const client: CertificateClient = which();
    const header = { pkcs1: "-----BEGIN RSA PRIVATE KEY-----", sec1: "-----BEGIN EC PRIVATE KEY-----" } as const;
    if (form === "pkcs1" || form === "sec1") expect(client.traditionalPrivateKey.startsWith(header[form])).toBe(true);
    const privateKey =
      form === "KeyObject" ? createPrivateKey(client.privateKey) : form === "pkcs8" ? client.privateKey : client.traditionalPrivateKey;
    const { auth, api } = await connect(idp, {
      issuer: idp.issuer,
      clientId: client.clientId,
      clientCertificate: {
        privateKey,
        ...(client.certificate === undefined ? {} : { certificate: client.certificate }),
        ...(alg === "PS256" ? { algorithm: alg } : {}),
      },
    });
    const before = idp.assertions.length;

    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });
    await auth.getToken();

    const sent = idp.assertions.slice(before);
    expect(sent.map((assertion) => [assertion.clientId, assertion.header.alg, assertion.status])).toEqual([[client.clientId, alg, 200]]);
  });
});

describe("granted scope (RFC 6749 §3.3): the resource servers grant RESOURCE_SCOPE only", () => {
  const narrowed = (events: TokenEvent[]) => events.filter((event) => event.type === "scope_narrowed");

  it("asked for two scopes, granted one: getToken().scope is the granted one, and scope_narrowed fires once per token", async () => {
    const events: TokenEvent[] = [];
    const { clientId, clientSecret } = idp.clients.post;
    const { auth, api } = await connect(idp, {
      tokenUrl: idp.discovery.token_endpoint,
      clientId,
      clientSecret,
      scope: [RESOURCE_SCOPE, UNGRANTED_SCOPE],
      onEvent: (event) => events.push(event),
    });
    const before = idp.tokenRequests.length;
    const expected = {
      type: "scope_narrowed",
      requested: [RESOURCE_SCOPE, UNGRANTED_SCOPE],
      granted: [RESOURCE_SCOPE],
      missing: [UNGRANTED_SCOPE],
    };

    const token = await auth.getToken();
    expect(token.scope).toBe(RESOURCE_SCOPE);
    expect(decodeJwt(token.accessToken).scope).toBe(RESOURCE_SCOPE);
    expect(idp.tokenRequests.slice(before).map(({ requestedScope, grantedScope }) => [requestedScope, grantedScope])).toEqual([
      [`${RESOURCE_SCOPE} ${UNGRANTED_SCOPE}`, RESOURCE_SCOPE],
    ]);
    expect(narrowed(events)).toEqual([expected]);

    // The cached token is the same token: no second event.
    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });
    await expect(auth.getToken()).resolves.toMatchObject({ accessToken: token.accessToken, scope: RESOURCE_SCOPE });
    expect(narrowed(events)).toHaveLength(1);

    const refreshed = await auth.getToken({ forceRefresh: true });
    expect(refreshed.accessToken).not.toBe(token.accessToken);
    expect(refreshed.scope).toBe(RESOURCE_SCOPE);
    expect(narrowed(events)).toEqual([expected, expected]);
    expect(idp.tokenRequests.length - before).toBe(2);
  });

  it("granted what was asked: scope as granted, no scope_narrowed", async () => {
    const events: TokenEvent[] = [];
    const { clientId, clientSecret } = idp.clients.post;
    const { auth } = await connect(idp, {
      tokenUrl: idp.discovery.token_endpoint,
      clientId,
      clientSecret,
      scope: RESOURCE_SCOPE,
      onEvent: (event) => events.push(event),
    });

    await expect(auth.getToken()).resolves.toMatchObject({ scope: RESOURCE_SCOPE });
    expect(idp.tokenRequests.at(-1)).toMatchObject({ requestedScope: RESOURCE_SCOPE, grantedScope: RESOURCE_SCOPE });
    expect(narrowed(events)).toEqual([]);
  });

  it("no scope asked: getToken() has no scope", async () => {
    const { clientId, clientSecret } = idp.clients.post;
    const { auth } = await connect(idp, { tokenUrl: idp.discovery.token_endpoint, clientId, clientSecret });

    const token = await auth.getToken();

    expect(token).not.toHaveProperty("scope");
    expect(idp.tokenRequests.at(-1)).toMatchObject({ requestedScope: undefined, grantedScope: undefined });
  });

  // oidc-provider grants nothing here and leaves `scope` out of the response, which RFC 6749 §5.1
  // says means "as requested". The library can only believe it; this records that it does.
  it("asked only for a scope it does not grant: the response has no scope, so getToken().scope is the requested one", async () => {
    const events: TokenEvent[] = [];
    const { clientId, clientSecret } = idp.clients.post;
    const { auth } = await connect(idp, {
      tokenUrl: idp.discovery.token_endpoint,
      clientId,
      clientSecret,
      scope: UNGRANTED_SCOPE,
      onEvent: (event) => events.push(event),
    });

    const token = await auth.getToken();

    expect(idp.tokenRequests.at(-1)).toMatchObject({ requestedScope: UNGRANTED_SCOPE, grantedScope: undefined, status: 200 });
    expect(decodeJwt(token.accessToken).scope).toBeUndefined();
    expect(token.scope).toBe(UNGRANTED_SCOPE);
    expect(narrowed(events)).toEqual([]);
  });
});

describe("diagnostics_channel: token requests published for tracing", () => {
  const CHANNELS = {
    start: "axios-token-refresh:token-request:start",
    end: "axios-token-refresh:token-request:end",
    error: "axios-token-refresh:token-request:error",
  } as const;

  interface Published {
    readonly channel: keyof typeof CHANNELS;
    readonly message: Record<string, unknown>;
    /** The message as it was when published: the same object is completed for end and error. */
    readonly snapshot: Record<string, unknown>;
  }

  /** Everything published on the three channels about `tokenUrl` until the test finishes. */
  function subscribe(tokenUrl: string): Published[] {
    const seen: Published[] = [];
    for (const channel of Object.keys(CHANNELS) as (keyof typeof CHANNELS)[]) {
      const listener = (message: unknown) => {
        const fields = message as Record<string, unknown>;
        if (fields.tokenUrl === tokenUrl) seen.push({ channel, message: fields, snapshot: JSON.parse(JSON.stringify(fields)) });
      };
      diagnostics_channel.subscribe(CHANNELS[channel], listener);
      onTestFinished(() => {
        diagnostics_channel.unsubscribe(CHANNELS[channel], listener);
      });
    }
    return seen;
  }

  async function secretClient(
    kind: "token" | "wrong secret",
  ): Promise<{ auth: ReturnType<typeof createTokenRefreshInterceptor>; secrets: string[] }> {
    const { clientId, clientSecret } = idp.clients.post;
    const secret = kind === "token" ? clientSecret : `wrong ${randomUUID()} +/=`;
    const { auth } = await connect(idp, {
      tokenUrl: idp.discovery.token_endpoint,
      clientId,
      clientSecret: secret,
      clientAuthMethod: "client_secret_post",
      retry: { attempts: 1 },
    });
    return { auth, secrets: secretForms(clientId, secret) };
  }

  it("one token request for a burst of 20: start, then end with the same object, status 200 and a duration; no secret or token in any message", async () => {
    const seen = subscribe(idp.discovery.token_endpoint);
    const { auth, secrets } = await secretClient("token");
    const before = idp.count;

    const tokens = await Promise.all(Array.from({ length: 20 }, () => auth.getToken()));

    expect(idp.count - before).toBe(1);
    expect(seen.map((published) => published.channel)).toEqual(["start", "end"]);
    const [start, end] = seen as [Published, Published];
    expect(end.message).toBe(start.message);
    expect(start.snapshot).toEqual({ cacheKey: expect.any(String), tokenUrl: idp.discovery.token_endpoint, attempt: 1 });
    expect(end.snapshot).toEqual({ ...start.snapshot, status: 200, durationMs: expect.any(Number) });
    expect(end.snapshot.durationMs as number).toBeGreaterThanOrEqual(0);
    const everything = JSON.stringify(seen);
    for (const secret of [...secrets, tokens[0]!.accessToken]) expect(everything).not.toContain(secret);
  });

  it("a refused request (wrong secret): start, then error with the same object, the error's code and status 401", async () => {
    const seen = subscribe(idp.discovery.token_endpoint);
    const { auth, secrets } = await secretClient("wrong secret");

    const error = await failure(auth.getToken());

    expect(isTokenRefreshError(error)).toBe(true);
    expect(error).toMatchObject({ error: "invalid_client", status: 401 });
    expect(seen.map((published) => published.channel)).toEqual(["start", "error"]);
    const [start, failed] = seen as [Published, Published];
    expect(failed.message).toBe(start.message);
    expect(failed.snapshot).toEqual({
      ...start.snapshot,
      status: 401,
      code: (error as { code: string }).code,
      durationMs: expect.any(Number),
    });
    const everything = JSON.stringify(seen);
    for (const secret of secrets) expect(everything).not.toContain(secret);
  });
});
