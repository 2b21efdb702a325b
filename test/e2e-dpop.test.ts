/**
 * End to end for `dpop` (RFC 9449, issue #14) against oidc-provider, which checks every proof at its
 * token endpoint and binds the token to the proof's key, and a resource server that checks proofs
 * and bindings the way §7.1 asks (test/helpers/dpop-resource.ts). Every case counts the token
 * requests at the provider and the requests at the resource. What the provider does with proofs,
 * nonces and DPoP-bound clients: the file comment of test/helpers/oidc-provider.ts.
 */
import axios, { type AxiosError } from "axios";
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, type JWK } from "jose";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  createTokenRefreshInterceptor,
  createTokenSource,
  InMemoryTokenStore,
  InvalidTokenResponseError,
  isTokenRefreshError,
  TokenRequestError,
} from "../src/index.js";
import { sha256, startDpopResourceServer, type DpopResourceOptions, type DpopResourceServer } from "./helpers/dpop-resource.js";
import { JWT_RESOURCE, startOidcProvider, type OidcTestBed, type OidcTestBedOptions, type SecretClient } from "./helpers/oidc-provider.js";
import { failure, outcomes } from "./helpers/outcomes.js";
import { expectNoSecrets } from "./helpers/secrets.js";
import { startResourceServer } from "./helpers/servers.js";

type Options = Parameters<typeof createTokenRefreshInterceptor>[0];
/** Options over those of {@link optionsFor}; `dpop: null` leaves `dpop` out. */
type Extra = Omit<Partial<Options>, "dpop"> & { dpop?: Options["dpop"] | null };

/** A provider of this test's own, closed when the test finishes. */
async function startBed(options: OidcTestBedOptions = {}): Promise<OidcTestBed> {
  const bed = await startOidcProvider(options);
  onTestFinished(() => bed.close());
  return bed;
}

/** Interceptor options for `client` (client_secret_post, the JWT resource) at `bed`, with `dpop: true` unless `extra` says otherwise. */
function optionsFor(bed: OidcTestBed, client: SecretClient, { dpop = true, ...extra }: Extra = {}): Options {
  return {
    tokenUrl: bed.discovery.token_endpoint,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
    clientAuthMethod: "client_secret_post",
    extraParams: { resource: JWT_RESOURCE },
    ...(dpop === null ? {} : { dpop }),
    ...extra,
  } as Options;
}

/** An interceptor attached to an axios instance for a new DPoP resource server of `bed`. */
async function connect(bed: OidcTestBed, extra: Extra = {}, resource: DpopResourceOptions = {}, client = bed.clients.post) {
  const rs = await startDpopResourceServer(bed, resource);
  const auth = createTokenRefreshInterceptor(optionsFor(bed, client, extra));
  onTestFinished(() => auth.dispose());
  const api = axios.create({ baseURL: rs.origin });
  auth.attach(api);
  return { auth, api, rs };
}

/** The token requests as `status:error` or `status:token_type`, in order. */
const tokenLog = (bed: OidcTestBed) => bed.tokenRequests.map((request) => `${request.status}:${request.error ?? request.tokenType}`);

/** The resource requests as `status` or `status:refusal`, in order. */
const resourceLog = (rs: DpopResourceServer) =>
  rs.requests.map((request) => (request.refused === undefined ? String(request.status) : `${request.status}:${request.refused}`));

/** RFC 7638 thumbprint of a proof header's `jwk`. */
function thumbprintOf(jwk: JWK | undefined): Promise<string> {
  if (jwk === undefined) throw new Error("the proof header has no jwk");
  return calculateJwkThumbprint(jwk);
}

/** `cnf.jkt` of a JWT access token. */
function jktOf(accessToken: string): unknown {
  return (decodeJwt(accessToken).cnf as { jkt?: unknown } | undefined)?.jkt;
}

describe("DPoP tokens from oidc-provider", () => {
  it("a DPoP-bound client: the token is DPoP, bound to the key of the proof the provider saw", async () => {
    const bed = await startBed();
    const { auth, api, rs } = await connect(bed, {}, {}, bed.clients.dpopClient);

    await expect(api.get("/first")).resolves.toMatchObject({ status: 200 });
    const token = await auth.getToken();

    expect(token.tokenType).toBe("DPoP");
    expect(bed.count).toBe(1);
    expect(tokenLog(bed)).toEqual(["200:DPoP"]);
    const [proof] = bed.dpopProofs;
    expect(bed.dpopProofs).toHaveLength(1);
    expect(proof?.header).toMatchObject({ typ: "dpop+jwt", alg: "ES256", jwk: { kty: "EC", crv: "P-256" } });
    expect(proof?.header.jwk).not.toHaveProperty("d");
    expect(proof?.claims).toMatchObject({
      htm: "POST",
      htu: bed.discovery.token_endpoint,
      jti: expect.any(String),
      iat: expect.any(Number),
    });
    // No access token yet, so no ath; no nonce was asked for.
    expect(proof?.claims).not.toHaveProperty("ath");
    expect(proof?.claims).not.toHaveProperty("nonce");
    expect(jktOf(token.accessToken)).toBe(await thumbprintOf(proof?.header.jwk));

    expect(resourceLog(rs)).toEqual(["200"]);
    expect(rs.requests[0]).toMatchObject({ scheme: "DPoP", token: token.accessToken });
    expect(await thumbprintOf(rs.requests[0]?.proofHeader?.jwk)).toBe(jktOf(token.accessToken));
  });

  it("a client the provider does not require DPoP of, with `dpop: true`: the provider binds the token anyway", async () => {
    const bed = await startBed();
    const { auth, api, rs } = await connect(bed);

    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });

    expect((await auth.getToken()).tokenType).toBe("DPoP");
    expect(tokenLog(bed)).toEqual(["200:DPoP"]);
    expect(jktOf(await auth.getAccessToken())).toBe(await thumbprintOf(bed.dpopProofs[0]?.header.jwk));
    expect(resourceLog(rs)).toEqual(["200"]);

    // The same client without dpop gets a Bearer token: the binding follows the proof, not the registration.
    const plain = createTokenRefreshInterceptor(optionsFor(bed, bed.clients.post, { dpop: null }));
    onTestFinished(() => plain.dispose());
    expect((await plain.getToken()).tokenType).toBe("Bearer");
    expect(tokenLog(bed)).toEqual(["200:DPoP", "200:Bearer"]);
    expect(bed.dpopProofs).toHaveLength(1);
  });

  it("createTokenSource with `dpop: true`: getToken() returns a DPoP token after one token request", async () => {
    const bed = await startBed();
    const source = createTokenSource(optionsFor(bed, bed.clients.dpopClient) as Parameters<typeof createTokenSource>[0]);
    onTestFinished(() => source.dispose());

    const [a, b] = await Promise.all([source.getToken(), source.getToken()]);

    expect(a.tokenType).toBe("DPoP");
    expect(b.accessToken).toBe(a.accessToken);
    expect(bed.count).toBe(1);
    expect(jktOf(a.accessToken)).toBe(await thumbprintOf(bed.dpopProofs[0]?.header.jwk));
  });

  it("the proof's htu is the token URL without its query", async () => {
    const bed = await startBed();
    const auth = createTokenRefreshInterceptor(
      optionsFor(bed, bed.clients.post, { tokenUrl: `${bed.discovery.token_endpoint}?tenant=main` }),
    );
    onTestFinished(() => auth.dispose());

    expect((await auth.getToken()).tokenType).toBe("DPoP");
    expect(bed.dpopProofs.map((proof) => proof.claims.htu)).toEqual([bed.discovery.token_endpoint]);
  });

  it("without `dpop`, a client the provider requires DPoP of: ERR_DPOP_REQUIRED saying to set `dpop`, one token request", async () => {
    const bed = await startBed();
    const { auth, api, rs } = await connect(bed, { dpop: null, retry: { attempts: 3 } }, {}, bed.clients.dpopClient);

    const error = await failure(auth.getToken());

    expect(error).toBeInstanceOf(TokenRequestError);
    expect(isTokenRefreshError(error)).toBe(true);
    expect(error).toMatchObject({ code: "ERR_DPOP_REQUIRED", status: 400, error: "invalid_grant" });
    expect((error as Error).message).toContain("dpop");
    expectNoSecrets(error, bed.clients.dpopClient.clientSecret);
    // On the wire only "invalid_grant: grant request is invalid"; the reason is in the provider's log.
    expect(bed.tokenRequests).toEqual([
      expect.objectContaining({ status: 400, error: "invalid_grant", errorDetail: "DPoP proof JWT not provided" }),
    ]);
    expect(bed.dpopProofs).toHaveLength(0);

    // The refusal is final, so the library's back-off window answers the next call without a token request.
    const fromAxios = await failure(api.get("/orders"));
    expect(fromAxios).toMatchObject({ code: "ERR_DPOP_REQUIRED" });
    expect(bed.count).toBe(1);
    expect(rs.requests).toHaveLength(0);
  });

  it("a provider with DPoP off answers Bearer: InvalidTokenResponseError on token_type, unless allowBearer", async () => {
    const bed = await startBed({ dpop: false });
    const strict = createTokenRefreshInterceptor(optionsFor(bed, bed.clients.post, { retry: { attempts: 1 } }));
    onTestFinished(() => strict.dispose());

    const error = await failure(strict.getToken());

    expect(error).toBeInstanceOf(InvalidTokenResponseError);
    expect(error).toMatchObject({ code: "ERR_INVALID_TOKEN_RESPONSE", field: "token_type" });
    expect(tokenLog(bed)).toEqual(["200:Bearer"]);
    expectNoSecrets(error, bed.clients.post.clientSecret);

    const rs = await bed.startResourceServer();
    const lenient = createTokenRefreshInterceptor(optionsFor(bed, bed.clients.post, { dpop: { allowBearer: true } }));
    onTestFinished(() => lenient.dispose());
    const api = axios.create({ baseURL: rs.origin });
    lenient.attach(api);

    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });
    const token = await lenient.getToken();
    expect(token.tokenType).toBe("Bearer");
    expect(rs.authorizations).toEqual([`Bearer ${token.accessToken}`]);
    expect(tokenLog(bed)).toEqual(["200:Bearer", "200:Bearer"]);
  });
});

describe("proofs at the resource", () => {
  it("a burst of 50 concurrent requests: 1 token request, 50 proofs with distinct jti, htu without the query", async () => {
    const bed = await startBed();
    const { auth, api, rs } = await connect(bed);

    // Half with the query in the URL, half in `params`: either way the final URL has one, the htu none.
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? api.get(`/items/${i}?q=1`) : api.get(`/items/${i}`, { params: { q: 1 } }))),
    );

    expect(outcomes(results)).toEqual(Array.from({ length: 50 }, () => 200));
    expect(bed.count).toBe(1);
    expect(rs.requests).toHaveLength(50);
    expect(resourceLog(rs)).toEqual(Array.from({ length: 50 }, () => "200"));
    const token = await auth.getAccessToken();
    expect(new Set(rs.requests.map((request) => request.proof?.jti)).size).toBe(50);
    expect(new Set(rs.requests.map((request) => request.dpop)).size).toBe(50);
    for (const request of rs.requests) {
      const path = request.url.split("?")[0];
      expect(request.url).toMatch(/^\/items\/\d+\?q=1$/);
      expect(request.proof).toMatchObject({ htm: "GET", htu: `${rs.origin}${path}`, ath: sha256(token), iat: expect.any(Number) });
      expect(request.proof).not.toHaveProperty("nonce");
      expect(request).toMatchObject({ scheme: "DPoP", token });
    }
    expect(new Set(rs.requests.map((request) => request.proof?.htu)).size).toBe(50);
    // One key per interceptor: the same as at the token endpoint.
    const thumbprints = new Set(await Promise.all(rs.requests.map((request) => thumbprintOf(request.proofHeader?.jwk))));
    expect([...thumbprints]).toEqual([jktOf(token)]);
  });

  it("htm follows the method: POST, PUT and DELETE each carry their own", async () => {
    const bed = await startBed();
    const { api, rs } = await connect(bed);

    await api.post("/orders", { n: 1 });
    await api.put("/orders/1", { n: 2 });
    await api.delete("/orders/1");

    expect(resourceLog(rs)).toEqual(["200", "200", "200"]);
    expect(rs.requests.map((request) => [request.method, request.proof?.htm, request.proof?.htu])).toEqual([
      ["POST", "POST", `${rs.origin}/orders`],
      ["PUT", "PUT", `${rs.origin}/orders/1`],
      ["DELETE", "DELETE", `${rs.origin}/orders/1`],
    ]);
    expect(bed.count).toBe(1);
  });

  it("through api.interceptors.request.use(auth) too: DPoP scheme and a proof", async () => {
    const bed = await startBed();
    const rs = await startDpopResourceServer(bed);
    const auth = createTokenRefreshInterceptor(optionsFor(bed, bed.clients.post));
    onTestFinished(() => auth.dispose());
    const api = axios.create({ baseURL: rs.origin });
    api.interceptors.request.use(auth);

    await expect(api.get("/plain", { params: { page: 2 } })).resolves.toMatchObject({ status: 200 });

    expect(resourceLog(rs)).toEqual(["200"]);
    expect(rs.requests[0]?.proof).toMatchObject({ htm: "GET", htu: `${rs.origin}/plain` });
    expect(bed.count).toBe(1);
  });

  it("a 401 invalid_token (the resource revoked the token): one new token, the replay with a new proof", async () => {
    const bed = await startBed();
    const { auth, api, rs } = await connect(bed);
    await expect(api.get("/before")).resolves.toMatchObject({ status: 200 });
    const first = await auth.getAccessToken();
    rs.denylist.add(first);

    await expect(api.get("/after")).resolves.toMatchObject({ status: 200 });

    expect(bed.count).toBe(2);
    expect(tokenLog(bed)).toEqual(["200:DPoP", "200:DPoP"]);
    expect(resourceLog(rs)).toEqual(["200", "401:denylisted", "200"]);
    const [, refused, replay] = rs.requests;
    const second = await auth.getAccessToken();
    expect(second).not.toBe(first);
    expect(refused?.token).toBe(first);
    expect(replay?.token).toBe(second);
    expect(replay?.proof?.jti).not.toBe(refused?.proof?.jti);
    expect(replay?.proof).toMatchObject({ htm: "GET", htu: `${rs.origin}/after`, ath: sha256(second) });
    expect(jktOf(second)).toBe(jktOf(first));
  });

  it("a redirect to another origin: the second server sees neither Authorization nor DPoP", async () => {
    const bed = await startBed();
    const { api, rs } = await connect(bed);
    const other = await startResourceServer();
    rs.redirects.set("/moved", `${other.origin}/landing`);

    const response = await api.get("/moved");

    expect(response.status).toBe(200);
    expect(resourceLog(rs)).toEqual(["302"]);
    expect(rs.requests[0]).toMatchObject({ scheme: "DPoP", proof: { htu: `${rs.origin}/moved` } });
    expect(other.requests).toHaveLength(1);
    expect(other.requests[0]?.url).toBe("/landing");
    expect(other.requests[0]?.headers.authorization).toBeUndefined();
    expect(other.requests[0]?.headers.dpop).toBeUndefined();
    expect(bed.count).toBe(1);
  });
});

describe("nonces", () => {
  it("at the token endpoint (requireNonce): 1 refused and 1 accepted request, and a forced refresh reuses the nonce", async () => {
    const bed = await startBed({ dpop: { requireNonce: true } });
    const { auth, api, rs } = await connect(bed);

    expect((await auth.getToken()).tokenType).toBe("DPoP");

    expect(tokenLog(bed)).toEqual(["400:use_dpop_nonce", "200:DPoP"]);
    const [refused, accepted] = bed.dpopProofs;
    expect(refused?.claims).not.toHaveProperty("nonce");
    expect(refused?.answeredNonce).toEqual(expect.any(String));
    expect(accepted?.claims.nonce).toBe(refused?.answeredNonce);
    expect(accepted?.claims.jti).not.toBe(refused?.claims.jti);

    await auth.getToken({ forceRefresh: true });

    // The provider's nonces last 3 to 4 minutes, and it sends a new one only when the step changed.
    const latest = [refused, accepted]
      .map((proof) => proof?.answeredNonce)
      .filter((nonce) => nonce !== undefined)
      .at(-1);
    expect(tokenLog(bed)).toEqual(["400:use_dpop_nonce", "200:DPoP", "200:DPoP"]);
    expect(bed.dpopProofs[2]?.claims.nonce).toBe(latest);

    // Nonces are per origin: the resource never gets the provider's.
    await expect(api.get("/orders")).resolves.toMatchObject({ status: 200 });
    expect(resourceLog(rs)).toEqual(["200"]);
    expect(rs.requests[0]?.proof).not.toHaveProperty("nonce");
  });

  it("at the resource: 401 use_dpop_nonce, one replay with the nonce and the same token; after a rotation once more", async () => {
    const bed = await startBed();
    const { auth, api, rs } = await connect(bed, {}, { nonce: "required" });
    const firstNonce = rs.nonce;

    await expect(api.get("/a")).resolves.toMatchObject({ status: 200 });

    expect(resourceLog(rs)).toEqual(["401:use-nonce", "200"]);
    const token = await auth.getAccessToken();
    expect(rs.requests[0]?.proof).not.toHaveProperty("nonce");
    expect(rs.requests[0]?.answeredNonce).toBe(firstNonce);
    expect(rs.requests[1]?.proof).toMatchObject({ nonce: firstNonce, htu: `${rs.origin}/a`, ath: sha256(token) });
    expect(rs.requests[1]?.proof?.jti).not.toBe(rs.requests[0]?.proof?.jti);
    expect(rs.requests.map((request) => request.token)).toEqual([token, token]);
    expect(bed.count).toBe(1);

    // Remembered: the next request carries it at once.
    await expect(api.get("/b")).resolves.toMatchObject({ status: 200 });
    expect(resourceLog(rs)).toEqual(["401:use-nonce", "200", "200"]);
    expect(rs.requests[2]?.proof?.nonce).toBe(firstNonce);

    const secondNonce = rs.rotateNonce();
    await expect(api.get("/c")).resolves.toMatchObject({ status: 200 });

    expect(resourceLog(rs)).toEqual(["401:use-nonce", "200", "200", "401:use-nonce", "200"]);
    expect(rs.requests[3]?.proof?.nonce).toBe(firstNonce);
    expect(rs.requests[4]?.proof?.nonce).toBe(secondNonce);
    expect(bed.count).toBe(1);
  });

  it("a burst of 20 against a resource that wants a nonce: each request replayed at most once, all 200, 1 token request", async () => {
    const bed = await startBed();
    const { api, rs } = await connect(bed, {}, { nonce: "required" });

    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => api.get(`/burst/${i}`)));

    expect(outcomes(results)).toEqual(Array.from({ length: 20 }, () => 200));
    const served = rs.requests.filter((request) => request.status === 200);
    expect(served).toHaveLength(20);
    expect(served.every((request) => request.proof?.nonce === rs.nonce)).toBe(true);
    // Requests that left before the first refusal came back have no nonce; none is refused twice.
    const refusedPaths = rs.requests.filter((request) => request.refused === "use-nonce").map((request) => request.url);
    expect(new Set(refusedPaths).size).toBe(refusedPaths.length);
    expect(rs.requests.length).toBe(20 + refusedPaths.length);
    expect(bed.count).toBe(1);
  });

  it("a nonce handed out on a 200 is used by the next request, with no 401", async () => {
    const bed = await startBed();
    const { api, rs } = await connect(bed);
    rs.announceNonce = true;

    await expect(api.get("/a")).resolves.toMatchObject({ status: 200 });
    const announced = rs.requests[0]?.answeredNonce;
    rs.nonceMode = "required";
    await expect(api.get("/b")).resolves.toMatchObject({ status: 200 });

    expect(resourceLog(rs)).toEqual(["200", "200"]);
    expect(rs.requests[1]?.proof?.nonce).toBe(announced);
  });

  it("a resource that refuses every nonce: 2 requests, not a loop; the 401 reaches the caller with no proof or token in it", async () => {
    const bed = await startBed();
    const { auth, api, rs } = await connect(bed, {}, { nonce: "refuse-all" });

    const error = await failure(api.get("/never"));

    expect(axios.isAxiosError(error)).toBe(true);
    expect((error as AxiosError).response?.status).toBe(401);
    expect(resourceLog(rs)).toEqual(["401:use-nonce", "401:use-nonce"]);
    expect(rs.requests[1]?.proof?.nonce).toBe(rs.requests[0]?.answeredNonce);
    expect(bed.count).toBe(1);

    const token = await auth.getAccessToken();
    const proofs = rs.requests.map((request) => request.dpop).filter((proof) => proof !== undefined);
    expect(proofs).toHaveLength(2);
    // Every rendering: String, stack, JSON.stringify and util.inspect, down the cause chain.
    expectNoSecrets(error, token, ...proofs, bed.clients.post.clientSecret);
  });
});

describe("keys of the caller's", () => {
  it("`dpop: { privateKey, publicKey }` with a non-extractable jose ES256 pair: proofs carry that key", async () => {
    const bed = await startBed();
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: false });
    const expected = await calculateJwkThumbprint(await exportJWK(publicKey));
    const { auth, api, rs } = await connect(bed, { dpop: { privateKey, publicKey } });

    await expect(api.get("/mine")).resolves.toMatchObject({ status: 200 });

    expect(jktOf(await auth.getAccessToken())).toBe(expected);
    expect(await thumbprintOf(bed.dpopProofs[0]?.header.jwk)).toBe(expected);
    expect(await thumbprintOf(rs.requests[0]?.proofHeader?.jwk)).toBe(expected);
    expect(bed.dpopProofs[0]?.header.alg).toBe("ES256");
    expect(bed.count).toBe(1);
  });

  it("two interceptors with different keys sharing one store: 2 token requests, each its own bound token", async () => {
    const bed = await startBed();
    const store = new InMemoryTokenStore();
    const pairA = await generateKeyPair("ES256", { extractable: false });
    const pairB = await generateKeyPair("ES256", { extractable: false });
    const a = await connect(bed, { store, dpop: { privateKey: pairA.privateKey, publicKey: pairA.publicKey } });
    const b = await connect(bed, { store, dpop: { privateKey: pairB.privateKey, publicKey: pairB.publicKey } });

    await expect(a.api.get("/a")).resolves.toMatchObject({ status: 200 });
    await expect(b.api.get("/b")).resolves.toMatchObject({ status: 200 });

    expect(bed.count).toBe(2);
    const [tokenA, tokenB] = [await a.auth.getAccessToken(), await b.auth.getAccessToken()];
    expect(tokenA).not.toBe(tokenB);
    expect(jktOf(tokenA)).toBe(await calculateJwkThumbprint(await exportJWK(pairA.publicKey)));
    expect(jktOf(tokenB)).toBe(await calculateJwkThumbprint(await exportJWK(pairB.publicKey)));
    expect(resourceLog(a.rs)).toEqual(["200"]);
    expect(resourceLog(b.rs)).toEqual(["200"]);
  });

  it("two interceptors with the same key sharing one store: 1 token request, the token shared", async () => {
    const bed = await startBed();
    const store = new InMemoryTokenStore();
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: false });
    const a = await connect(bed, { store, dpop: { privateKey, publicKey } });
    const b = await connect(bed, { store, dpop: { privateKey, publicKey } });

    await expect(a.api.get("/a")).resolves.toMatchObject({ status: 200 });
    await expect(b.api.get("/b")).resolves.toMatchObject({ status: 200 });

    expect(bed.count).toBe(1);
    expect(await b.auth.getAccessToken()).toBe(await a.auth.getAccessToken());
  });
});
