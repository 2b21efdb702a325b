/**
 * `clientCertificate`: the assertion the library signs for every token request, checked claim by
 * claim against Microsoft Entra's certificate-credential format (header alg, typ, x5t#S256, x5t;
 * claims aud = the token endpoint, iss = sub = client id, jti, nbf, iat, exp), its signature
 * verified with jose and the certificate's own public key, and the key never shown anywhere.
 * End to end against oidc-provider's private_key_jwt: e2e-discovery.test.ts.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import axios from "axios";
import { compactVerify, decodeJwt, decodeProtectedHeader, importX509, jwtVerify } from "jose";
import { describe, expect, it, onTestFinished } from "vitest";
import { createTokenRefreshInterceptor, createTokenSource, InvalidOptionError, type TokenEvent } from "../src/index.js";
import { renderings } from "./helpers/secrets.js";
import { startResourceServer, startTokenServer, type RecordedRequest } from "./helpers/servers.js";

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/certs/${name}`, import.meta.url), "utf8");
const RSA_KEY = fixture("rsa-key.pem");
const RSA_KEY_PKCS1 = fixture("rsa-key.pkcs1.pem");
const RSA_CERT = fixture("rsa-cert.pem");
const EC_KEY = fixture("ec-key.pem");
const EC_KEY_SEC1 = fixture("ec-key.sec1.pem");

/** The base64 body of a PEM, and a slice of it: what a leak would show. */
function keyMaterial(pem: string): string[] {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return [body.slice(0, 40), body.slice(body.length / 2, body.length / 2 + 40)];
}

function assertionOf(request: RecordedRequest | undefined): string {
  const assertion = new URLSearchParams(request?.body ?? "").get("client_assertion");
  if (assertion === null) throw new Error("no client_assertion in the token request");
  return assertion;
}

/** base64url of a colon-separated hex fingerprint, as X509Certificate prints it. */
function thumbprint(fingerprint: string): string {
  return Buffer.from(fingerprint.replace(/:/g, ""), "hex").toString("base64url");
}

async function sourceWith(
  clientCertificate: Parameters<typeof createTokenSource>[0] extends infer O
    ? O extends { clientCertificate: infer C }
      ? C
      : never
    : never,
  events?: TokenEvent[],
) {
  const server = await startTokenServer();
  const source = createTokenSource({
    tokenUrl: server.url,
    clientId: "daemon-app",
    clientCertificate,
    ...(events === undefined ? {} : { onEvent: (event: TokenEvent) => events.push(event) }),
  });
  onTestFinished(() => source.dispose());
  return { server, source };
}

describe("the assertion signed for each token request", () => {
  it("has Entra's header and claims, with the certificate's thumbprints, and verifies with the certificate", async () => {
    const { server, source } = await sourceWith({ privateKey: RSA_KEY, certificate: RSA_CERT });
    const before = Math.floor(Date.now() / 1000);
    await source.getToken();
    const assertion = assertionOf(server.requests[0]);

    const form = new URLSearchParams(server.requests[0]?.body);
    expect(form.get("client_id")).toBe("daemon-app");
    expect(form.get("client_assertion_type")).toBe("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    expect(form.get("client_secret")).toBeNull();
    expect(server.requests[0]?.headers.authorization).toBeUndefined();

    const certificate = new X509Certificate(RSA_CERT);
    expect(decodeProtectedHeader(assertion)).toEqual({
      alg: "RS256",
      typ: "JWT",
      x5t: thumbprint(certificate.fingerprint),
      "x5t#S256": thumbprint(certificate.fingerprint256),
    });
    const { payload } = await jwtVerify(assertion, await importX509(RSA_CERT, "RS256"), {
      audience: server.url,
      issuer: "daemon-app",
      subject: "daemon-app",
    });
    expect(Object.keys(payload).sort()).toEqual(["aud", "exp", "iat", "iss", "jti", "nbf", "sub"]);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.nbf).toBe(payload.iat);
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
  });

  it("is fresh for every request, retries included: a new jti each time", async () => {
    const { server, source } = await sourceWith({ privateKey: EC_KEY });
    server.handler = (_request, n) =>
      n === 1 ? { status: 503, body: "busy" } : { body: { access_token: `token-${n}`, token_type: "Bearer", expires_in: 3600 } };
    await source.getToken();
    await source.getToken({ forceRefresh: true });
    await source.getToken({ forceRefresh: true });
    const jtis = server.requests.map((request) => decodeJwt(assertionOf(request)).jti);
    expect(server.requests).toHaveLength(4);
    expect(new Set(jtis).size).toBe(4);
  });

  it.each([
    ["PKCS#8 RSA", RSA_KEY, undefined, "RS256"],
    ["PKCS#1 RSA", RSA_KEY_PKCS1, undefined, "RS256"],
    ["PKCS#8 RSA with PS256", RSA_KEY, "PS256", "PS256"],
    ["PKCS#8 P-256", EC_KEY, undefined, "ES256"],
    ["SEC1 P-256", EC_KEY_SEC1, undefined, "ES256"],
  ] as const)("signs with a %s key (%s → %s), verifiable with its public key", async (_name, privateKey, algorithm, expected) => {
    const { server, source } = await sourceWith(algorithm === undefined ? { privateKey } : { privateKey, algorithm });
    await source.getToken();
    const assertion = assertionOf(server.requests[0]);
    expect(decodeProtectedHeader(assertion)).toEqual({ alg: expected, typ: "JWT" });
    await expect(compactVerify(assertion, createPublicKey(privateKey))).resolves.toBeDefined();
  });

  it("takes a KeyObject", async () => {
    const { server, source } = await sourceWith({ privateKey: createPrivateKey(EC_KEY) });
    await source.getToken();
    await expect(compactVerify(assertionOf(server.requests[0]), createPublicKey(EC_KEY))).resolves.toBeDefined();
  });

  it("through attach(): a burst of 30 is one signed token request", async () => {
    const server = await startTokenServer();
    const rs = await startResourceServer();
    const auth = createTokenRefreshInterceptor({
      tokenUrl: server.url,
      clientId: "daemon-app",
      clientCertificate: { privateKey: RSA_KEY, certificate: RSA_CERT },
    });
    onTestFinished(() => auth.dispose());
    const api = axios.create({ baseURL: rs.origin });
    auth.attach(api);
    await Promise.all(Array.from({ length: 30 }, () => api.get("/")));
    expect(server.count).toBe(1);
    expect(new Set(rs.authorizations)).toEqual(new Set(["Bearer token-1"]));
  });
});

describe("a private key is never shown", () => {
  it("in the interceptor's renderings, events, errors and the token request's failure", async () => {
    const events: TokenEvent[] = [];
    const server = await startTokenServer(() => ({ status: 401, body: { error: "invalid_client", error_description: "bad assertion" } }));
    const auth = createTokenRefreshInterceptor({
      tokenUrl: server.url,
      clientId: "daemon-app",
      clientCertificate: { privateKey: RSA_KEY, certificate: RSA_CERT },
      onEvent: (event) => events.push(event),
    });
    onTestFinished(() => auth.dispose());
    const error = await auth.getToken().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "ERR_TOKEN_REQUEST", error: "invalid_client" });
    const assertion = assertionOf(server.requests[0]);
    const shown = [
      inspect(auth, { depth: Infinity, showHidden: true }),
      JSON.stringify(auth),
      JSON.stringify(events),
      ...renderings(error),
    ].join("\n");
    for (const material of [...keyMaterial(RSA_KEY), assertion, assertion.split(".")[2] ?? "x"]) expect(shown).not.toContain(material);
  });

  it("in the errors of bad keys", () => {
    const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    const cases: [unknown, string][] = [
      [{ privateKey: small }, "RSA key of 1024 bits; at least 2048"],
      [{ privateKey: p384 }, "must be an RSA or an EC P-256 key"],
      [{ privateKey: RSA_KEY, algorithm: "ES256" }, "ES256 does not fit an RSA key"],
      [{ privateKey: EC_KEY, algorithm: "RS256" }, "RS256 does not fit a P-256 key"],
      [{ privateKey: RSA_KEY, algorithm: "HS256" }, 'must be "RS256", "PS256" or "ES256"'],
      [{ privateKey: RSA_CERT }, "must be a PEM private key"],
      [{ privateKey: RSA_KEY.replace(/[A-Za-z]{8}\n/, "\n") }, "well-formed DER"],
      [
        {
          privateKey: RSA_KEY.replace("BEGIN PRIVATE KEY", "BEGIN ENCRYPTED PRIVATE KEY").replace(
            "END PRIVATE KEY",
            "END ENCRYPTED PRIVATE KEY",
          ),
        },
        "is encrypted",
      ],
      [{ privateKey: createPublicKey(RSA_KEY) }, "must be a private key (got a public key)"],
      [{ privateKey: 42 }, "must be a PEM string or a KeyObject"],
      [{ privateKey: RSA_KEY, certificate: RSA_KEY }, "must be a PEM certificate"],
      [{ privateKey: RSA_KEY, thumbprint: "abc" }, 'unknown option "clientCertificate.thumbprint"'],
      ["key", '"clientCertificate" must be an object'],
    ];
    for (const [clientCertificate, message] of cases) {
      let thrown: unknown;
      try {
        createTokenSource({ tokenUrl: "https://idp.example/token", clientId: "c", clientCertificate } as Parameters<
          typeof createTokenSource
        >[0]);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, message).toBeInstanceOf(InvalidOptionError);
      expect((thrown as Error).message).toContain(message);
      for (const material of [...keyMaterial(RSA_KEY), ...keyMaterial(small)])
        expect(renderings(thrown).join("\n")).not.toContain(material);
    }
  });

  it("is one of clientSecret, clientAssertion and clientCertificate", () => {
    expect(() =>
      createTokenSource({
        tokenUrl: "https://idp.example/token",
        clientId: "c",
        clientSecret: "s",
        clientCertificate: { privateKey: RSA_KEY },
      } as unknown as Parameters<typeof createTokenSource>[0]),
    ).toThrow('exactly one of "clientSecret", "clientAssertion" and "clientCertificate" must be given (got 2)');
  });

  it("keys the cache by the certificate, so a rotated certificate does not reuse the old one's token", async () => {
    const store = new Map<string, unknown>();
    const shared = {
      get: (key: string) => store.get(key) as never,
      set: (key: string, value: unknown) => void store.set(key, value),
      delete: (key: string) => void store.delete(key),
    };
    const server = await startTokenServer();
    for (const privateKey of [RSA_KEY, EC_KEY]) {
      const source = createTokenSource({ tokenUrl: server.url, clientId: "daemon-app", clientCertificate: { privateKey }, store: shared });
      onTestFinished(() => source.dispose());
      await source.getToken();
    }
    expect(store.size).toBe(2);
    expect(server.count).toBe(2);
  });
});
