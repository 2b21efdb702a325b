/**
 * DPoP (RFC 9449) against loopback servers: the proof's exact header and claims, verified with jose
 * and the key it embeds; the token request's proof, the server nonce, the token types, and the
 * error a client gets when its server requires DPoP and it has none. Resource requests: dpop-resource
 * tests below; end to end against oidc-provider: e2e-dpop.test.ts.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { inspect } from "node:util";
import fc from "fast-check";
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, exportJWK, generateKeyPair, jwtVerify, type JWK } from "jose";
import { describe, expect, it, onTestFinished } from "vitest";
import { createDpopKey, jwkThumbprint, nonceOfProof, targetUri } from "../src/dpop.js";
import { requestUrl } from "../src/origin.js";
import { createTokenSource, InMemoryTokenStore, InvalidTokenResponseError, TokenRequestError } from "../src/index.js";
import { startTokenServer, type Handler, type RecordedRequest } from "./helpers/servers.js";

const SECRET = "dpop-secret-6d2e";

async function verifiedProof(proof: string) {
  const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: "dpop+jwt" });
  return { payload, protectedHeader };
}

const proofOf = (request: RecordedRequest | undefined): string => {
  const proof = request?.headers.dpop;
  if (typeof proof !== "string") throw new Error("no DPoP header");
  return proof;
};

const dpopTokens: Handler = (_request, n) => ({ body: { access_token: `dpop-token-${n}`, token_type: "DPoP", expires_in: 3600 } });

describe("a proof", () => {
  it("has RFC 9449's header and claims, and verifies with the public key it carries", async () => {
    const key = createDpopKey(true);
    const before = Math.floor(Date.now() / 1000);
    const proof = await key.proof({ method: "post", url: "https://api.example/orders/7?expand=lines#top", accessToken: "at-1" });
    const { payload, protectedHeader } = await verifiedProof(proof);
    expect(protectedHeader).toEqual({
      typ: "dpop+jwt",
      alg: "ES256",
      jwk: { kty: "EC", crv: "P-256", x: expect.any(String), y: expect.any(String) },
    });
    expect(Object.keys(protectedHeader.jwk as JWK).sort()).toEqual(["crv", "kty", "x", "y"]); // no private member, no key_ops
    expect(payload).toEqual({
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      htm: "POST",
      htu: "https://api.example/orders/7",
      iat: expect.any(Number),
      ath: createHash("sha256").update("at-1").digest("base64url"),
    });
    expect(payload.iat).toBeGreaterThanOrEqual(before);
  });

  it("is new every time (jti), and takes the nonce its origin gave last", async () => {
    const key = createDpopKey(true);
    const first = (await verifiedProof(await key.proof({ method: "GET", url: "https://api.example/a" }))).payload;
    expect(first.nonce).toBeUndefined();
    expect(key.rememberNonce("https://api.example/elsewhere", "n-1")).toBe(true);
    expect(key.rememberNonce("https://api.example/again", "n-1")).toBe(false);
    const second = (await verifiedProof(await key.proof({ method: "GET", url: "https://api.example/a" }))).payload;
    const other = (await verifiedProof(await key.proof({ method: "GET", url: "https://other.example/a" }))).payload;
    expect(second.jti).not.toBe(first.jti);
    expect(second.nonce).toBe("n-1");
    expect(other.nonce).toBeUndefined();
    expect(key.rememberNonce("https://api.example/", "bad nonce with spaces")).toBe(false);
  });

  it.each([
    [
      "an EC KeyObject",
      () => createPrivateKey(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" })),
      "ES256",
    ],
    ["an Ed25519 KeyObject", () => generateKeyPairSync("ed25519").privateKey, "EdDSA"],
    ["an RSA KeyObject", () => generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey, "RS256"],
  ] as const)("signs with %s (%s), and its thumbprint keys the cache", async (_name, makeKey, alg) => {
    const privateKey = makeKey();
    const key = createDpopKey({ privateKey });
    const { protectedHeader } = await verifiedProof(await key.proof({ method: "GET", url: "https://api.example/" }));
    expect(protectedHeader.alg).toBe(alg);
    expect(key.cacheId).toBe(`jkt:${await calculateJwkThumbprint(protectedHeader.jwk as JWK, "sha256")}`);
  });

  it("signs with a CryptoKey pair (non-extractable private key)", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: false });
    const key = createDpopKey({ privateKey, publicKey });
    const { protectedHeader } = await verifiedProof(await key.proof({ method: "GET", url: "https://api.example/" }));
    expect(protectedHeader.jwk).toEqual(await exportJWK(publicKey).then(({ kty, crv, x, y }) => ({ kty, crv, x, y })));
    expect(key.cacheId).toMatch(/^key:/);
    expect(createDpopKey({ privateKey, publicKey }).cacheId).toBe(key.cacheId); // the same key object, the same tokens
  });

  it.each([
    [{ privateKey: "pem" }, '"dpop.privateKey" must be a CryptoKey or a KeyObject'],
    [{ algorithm: "HS256" }, '"dpop.algorithm" must be'],
    [{ allowBearer: "yes" }, '"dpop.allowBearer" must be a boolean'],
    [{ keys: 1 }, 'unknown option "dpop.keys"'],
    [false, '"dpop" must be true or an object'],
  ])("refuses %j", (value, message) => {
    expect(() => createDpopKey(value)).toThrow(message);
  });

  it("needs the public CryptoKey with a private CryptoKey", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    expect(() => createDpopKey({ privateKey })).toThrow('"dpop.publicKey" (a CryptoKey) must be given');
  });

  it("signs with WebCrypto where Node's synchronous crypto is missing (Node before 20.16, workers), and proofNow then declines", async () => {
    const runtime = process as { getBuiltinModule?: unknown };
    const saved = runtime.getBuiltinModule;
    runtime.getBuiltinModule = undefined;
    let key: ReturnType<typeof createDpopKey>;
    try {
      key = createDpopKey(true);
      const proof = await key.proof({ method: "GET", url: "https://api.example/x", accessToken: "at-1" });
      expect((await verifiedProof(proof)).payload).toMatchObject({ htm: "GET", htu: "https://api.example/x" });
    } finally {
      runtime.getBuiltinModule = saved;
    }
    expect(key.canSignNow).toBe(false);
    expect(key.proofNow({ method: "GET", url: "https://api.example/x" })).toBeUndefined();
  });

  it("signs in the caller's tick once the key is imported, where Node's crypto is at hand", async () => {
    const key = createDpopKey(true);
    expect(key.proofNow({ method: "GET", url: "https://api.example/x" })).toBeUndefined(); // still importing
    await key.proof({ method: "GET", url: "https://api.example/x" });
    expect(key.canSignNow).toBe(true);
    const proof = key.proofNow({ method: "GET", url: "https://api.example/x", accessToken: "at-1" });
    expect((await verifiedProof(proof ?? "")).payload).toMatchObject({
      htm: "GET",
      ath: createHash("sha256").update("at-1").digest("base64url"),
    });
  });

  it("refuses keys it cannot use, naming the option", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    expect(() => createDpopKey({ publicKey })).toThrow('"dpop.publicKey" goes with "dpop.privateKey"');
    expect(() => createDpopKey({ privateKey: publicKey, publicKey })).toThrow('"dpop.privateKey" must be a private key');
    expect(() => createDpopKey({ privateKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey })).toThrow(
      '"dpop.privateKey" must be a private key',
    );
    expect(() => createDpopKey({ privateKey: generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey })).toThrow(
      "must be a P-256, Ed25519 or RSA key",
    );
    const hmac = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    expect(() =>
      createDpopKey({ privateKey: { ...hmac, type: "private", algorithm: hmac.algorithm, usages: [] } as unknown as CryptoKey, publicKey }),
    ).toThrow("DPoP here signs with ES256, EdDSA, RS256 or PS256");
    expect(privateKey.type).toBe("private");
  });

  it.each([
    ["a generated EdDSA key", () => createDpopKey({ algorithm: "EdDSA" }), "EdDSA"],
    [
      "an RSA KeyObject signing PS256",
      () => createDpopKey({ privateKey: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey, algorithm: "PS256" }),
      "PS256",
    ],
  ] as const)("signs with %s, in the caller's tick too", async (_name, make, alg) => {
    const key = make();
    const proof = await key.proof({ method: "GET", url: "https://api.example/x" });
    expect((await verifiedProof(proof)).protectedHeader.alg).toBe(alg);
    const now = key.proofNow({ method: "GET", url: "https://api.example/x" });
    expect((await verifiedProof(now ?? "")).protectedHeader.alg).toBe(alg);
  });

  it("signs with an Ed25519 CryptoKey pair", async () => {
    const { privateKey, publicKey } = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
    const key = createDpopKey({ privateKey, publicKey });
    expect((await verifiedProof(await key.proof({ method: "GET", url: "https://api.example/x" }))).protectedHeader.alg).toBe("EdDSA");
  });

  it("keeps at most 64 origins' nonces", () => {
    const key = createDpopKey(true);
    for (let i = 0; i < 70; i += 1) expect(key.rememberNonce(`https://api${i}.example/`, `n-${i}`)).toBe(true);
    expect(key.rememberNonce("https://api69.example/", "n-69")).toBe(false);
    expect(key.rememberNonce("not a url", "n")).toBe(true);
  });

  it("works out the URL axios calls, as buildFullPath does", () => {
    expect(requestUrl({ baseURL: "https://api.example/v1/", url: "/orders" })).toBe("https://api.example/v1/orders");
    expect(requestUrl({ baseURL: "https://api.example/v1", url: "" })).toBe("https://api.example/v1");
    expect(requestUrl({ baseURL: "https://api.example/v1", url: "https://other.example/x" })).toBe("https://other.example/x");
    expect(requestUrl({ baseURL: "https://api.example/v1", url: "https://other.example/x", allowAbsoluteUrls: false })).toBe(
      "https://api.example/v1/https://other.example/x",
    );
    expect(requestUrl({ url: "/relative" })).toBeUndefined();
    expect(requestUrl({ url: "ftp://files.example/x" })).toBeUndefined();
    expect(requestUrl({ url: 42 })).toBeUndefined();
  });

  it("reads the nonce of a proof, and nothing from what is not one", async () => {
    const key = createDpopKey(true);
    key.rememberNonce("https://api.example/", "n-7");
    expect(nonceOfProof(await key.proof({ method: "GET", url: "https://api.example/x" }))).toBe("n-7");
    expect(nonceOfProof(await createDpopKey(true).proof({ method: "GET", url: "https://api.example/x" }))).toBeUndefined();
    for (const junk of [undefined, 42, "", "a.b.c", "a.!!!.c", `a.${Buffer.from("[1]").toString("base64url")}.c`]) {
      expect(nonceOfProof(junk)).toBeUndefined();
    }
  });

  it("drops query and fragment from htu", () => {
    expect(targetUri("https://API.example:443/a/b?c=d#e")).toBe("https://api.example/a/b");
  });
});

describe("the thumbprint (RFC 7638)", () => {
  it("matches RFC 7638 §3.1's example", () => {
    const jwk = {
      kty: "RSA",
      n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
      e: "AQAB",
      alg: "RS256",
      kid: "2011-04-29",
    };
    expect(jwkThumbprint(jwk)).toBe("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  });

  it("equals jose's for random EC keys (the synchronous SHA-256 against node:crypto's)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 1000 }), async () => {
        const jwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" });
        expect(jwkThumbprint(jwk)).toBe(await calculateJwkThumbprint(jwk as JWK, "sha256"));
      }),
      { numRuns: 25 },
    );
    for (const size of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000]) {
      const data = randomBytes(size).toString("hex");
      const jwk = { kty: "OKP", crv: "Ed25519", x: data };
      expect(jwkThumbprint(jwk)).toBe(
        createHash("sha256")
          .update(JSON.stringify({ crv: "Ed25519", kty: "OKP", x: data }))
          .digest("base64url"),
      );
    }
  });
});

describe("the token request with dpop", () => {
  async function dpopSource(handler: Handler = dpopTokens, dpop: Parameters<typeof createTokenSource>[0]["dpop"] = true) {
    const server = await startTokenServer(handler);
    const source = createTokenSource({ tokenUrl: `${server.url}?tenant=x`, clientId: "svc", clientSecret: SECRET, dpop });
    onTestFinished(() => source.dispose());
    return { server, source };
  }

  it("carries a proof for POST to the token endpoint, without ath, and gets a DPoP token", async () => {
    const { server, source } = await dpopSource();
    const token = await source.getToken();
    expect(token).toMatchObject({ accessToken: "dpop-token-1", tokenType: "DPoP" });
    const { payload } = await verifiedProof(proofOf(server.requests[0]));
    expect(payload).toMatchObject({ htm: "POST", htu: server.url });
    expect(payload.ath).toBeUndefined();
  });

  it("retries once with the server's nonce, and uses the nonce in the next token request", async () => {
    let nonce = "nonce-a";
    const { server, source } = await dpopSource(async (request, n) => {
      const { payload } = await verifiedProof(proofOf(request));
      if (payload.nonce !== nonce) return { status: 400, headers: { "DPoP-Nonce": nonce }, body: { error: "use_dpop_nonce" } };
      return { headers: { "DPoP-Nonce": nonce }, body: { access_token: `dpop-token-${n}`, token_type: "DPoP", expires_in: 3600 } };
    });
    await source.getToken();
    expect(server.count).toBe(2);
    await source.getToken({ forceRefresh: true });
    expect(server.count).toBe(3);
    nonce = "nonce-b"; // rotated: one more round trip, not a loop
    await source.getToken({ forceRefresh: true });
    expect(server.count).toBe(5);
  });

  it("does not loop on a nonce demand that repeats the nonce it was just given", async () => {
    const { server, source } = await dpopSource(() => ({
      status: 400,
      headers: { "DPoP-Nonce": "same" },
      body: { error: "use_dpop_nonce" },
    }));
    await expect(source.getToken()).rejects.toMatchObject({ code: "ERR_TOKEN_REQUEST", error: "use_dpop_nonce" });
    expect(server.count).toBe(2);
  });

  it("refuses a Bearer token unless allowBearer, which then sends it as Bearer", async () => {
    const bearer = () => ({ body: { access_token: "plain", token_type: "Bearer", expires_in: 3600 } });
    const strict = await dpopSource(bearer);
    const error = await strict.source.getToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidTokenResponseError);
    expect((error as Error).message).toContain('"token_type" must be "DPoP" (got "Bearer"): the server did not bind the token');
    const lenient = await dpopSource(bearer, { allowBearer: true });
    await expect(lenient.source.getToken()).resolves.toMatchObject({ tokenType: "Bearer" });
  });

  it("without dpop: a DPoP token says to set dpop, and a server requiring DPoP gives ERR_DPOP_REQUIRED", async () => {
    const server = await startTokenServer((_request, n) =>
      n === 1
        ? { body: { access_token: "dpop-token", token_type: "DPoP", expires_in: 3600 } }
        : { status: 400, body: { error: "invalid_dpop_proof", error_description: "DPoP proof JWT Required" } },
    );
    const source = createTokenSource({ tokenUrl: server.url, clientId: "svc", clientSecret: SECRET });
    onTestFinished(() => source.dispose());
    const first = await source.getToken().catch((e: unknown) => e);
    expect((first as Error).message).toContain('set "dpop: true"');
    const second = await source.getToken().catch((e: unknown) => e);
    expect(second).toBeInstanceOf(TokenRequestError);
    expect(second).toMatchObject({ code: "ERR_DPOP_REQUIRED", status: 400, error: "invalid_dpop_proof" });
    expect((second as Error).message).toContain('set "dpop: true"');
    expect(server.requests.every((request) => request.headers.dpop === undefined)).toBe(true);
  });

  it("keys the cache by the key: two sources with different keys sharing a store fetch a token each", async () => {
    const server = await startTokenServer(dpopTokens);
    const store = new InMemoryTokenStore();
    const keyA = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    for (const privateKey of [keyA, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, keyA]) {
      const source = createTokenSource({ tokenUrl: server.url, clientId: "svc", clientSecret: SECRET, store, dpop: { privateKey } });
      onTestFinished(() => source.dispose());
      await source.getToken();
    }
    expect(server.count).toBe(2); // the third shares the first one's key, so its token
  });

  it("makes proofs for the caller's own requests with createDpopProof(), and refuses without dpop", async () => {
    const { source } = await dpopSource();
    const { accessToken } = await source.getToken();
    const proof = await source.createDpopProof({ method: "put", url: "https://api.example/orders/1?x=1", accessToken });
    expect((await verifiedProof(proof)).payload).toMatchObject({
      htm: "PUT",
      htu: "https://api.example/orders/1",
      ath: createHash("sha256").update(accessToken).digest("base64url"),
    });
    const plain = createTokenSource({ tokenUrl: "https://idp.example/token", clientId: "svc", clientSecret: SECRET });
    onTestFinished(() => plain.dispose());
    await expect(plain.createDpopProof({ method: "GET", url: "https://api.example/" })).rejects.toThrow('"dpop" is not set');
    await expect(source.createDpopProof({ method: "GET" } as never)).rejects.toThrow(
      "createDpopProof() takes { method, url, accessToken? }",
    );
    const withoutToken = await source.createDpopProof({ method: "GET", url: "https://api.example/" });
    expect((await verifiedProof(withoutToken)).payload.ath).toBeUndefined();
  });

  it("never shows the key or a proof in the source's renderings", async () => {
    const privateKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const d = (privateKey.export({ format: "jwk" }) as { d: string }).d;
    const { server, source } = await dpopSource(dpopTokens, { privateKey });
    await source.getToken();
    const shown = `${inspect(source, { depth: Infinity, showHidden: true })}\n${JSON.stringify(source)}`;
    expect(shown).not.toContain(d);
    expect(shown).not.toContain(proofOf(server.requests[0]).split(".")[2]);
    expect(decodeProtectedHeader(proofOf(server.requests[0])).jwk).not.toHaveProperty("d");
  });
});
