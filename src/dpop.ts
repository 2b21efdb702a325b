/**
 * DPoP (RFC 9449): tokens bound to a key pair that never leaves the process, so a stolen token is
 * useless without the key. Every request, to the token endpoint and to the resource, carries a fresh
 * proof: a JWT signed with the private key, naming the method and URL (`htm`, `htu`), with the
 * public key in its header, a new `jti`, `iat`, the server's latest nonce, and at a resource the
 * token's hash (`ath`). Signing: jws.ts.
 */
import { base64url, base64urlToBytes } from "./encoding.js";
import { isKeyObject, JWS_KEY_PARAMS, jwsKey, signJws, signJwsNow, type JwsKey } from "./jws.js";
import { sha256 } from "./sha256.js";
import { InvalidOptionError } from "./errors.js";
import type { DpopAlgorithm } from "./options.js";

/** The public members of a JWK, per key type, in RFC 7638 §3.2's order for the thumbprint. */
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = {
  EC: ["crv", "kty", "x", "y"],
  RSA: ["e", "kty", "n"],
  OKP: ["crv", "kty", "x"],
};

/** Nonces remembered per origin; a client talks to a handful of origins. */
const MAX_NONCES = 64;

/** What a proof is for: the request's method and URL, and at a resource the token it accompanies. */
export interface ProofTarget {
  readonly method: string;
  /** The request URL; query and fragment are dropped (RFC 9449 §4.2 `htu`). */
  readonly url: string;
  /** The access token, for `ath`; absent at the token endpoint. */
  readonly accessToken?: string;
}

/** The key pair of one source, its proofs, and the nonces servers gave it. */
export class DpopKey {
  /** The JWS `alg` of every proof. */
  readonly algorithm: DpopAlgorithm;
  /**
   * What the cache key holds for this key: its RFC 7638 thumbprint when the public key is known at
   * construction (a `KeyObject`: replicas that share the key share the token), else an id of this
   * source alone (a key generated here, or a `CryptoKey`, whose public half WebCrypto gives only
   * asynchronously).
   */
  readonly cacheId: string;
  /** Whether a `Bearer` token may be used when the server does not bind the token. */
  readonly allowBearer: boolean;
  readonly #keys: Promise<ReadyKey>;
  /** The key once imported: from then on a proof can be signed in the caller's tick where Node's crypto is at hand. */
  #ready: ReadyKey | undefined;
  readonly #nonces = new Map<string, string>();
  #ath: { token: string; hash: string } | undefined;

  constructor(keys: Promise<{ privateKey: CryptoKey; jwk: JsonWebKey }>, algorithm: DpopAlgorithm, cacheId: string, allowBearer: boolean) {
    this.algorithm = algorithm;
    this.cacheId = cacheId;
    this.allowBearer = allowBearer;
    this.#keys = keys.then(({ privateKey, jwk }) => {
      this.#ready = {
        key: jwsKey(privateKey, algorithm),
        header: base64url(JSON.stringify({ typ: "dpop+jwt", alg: algorithm, jwk: publicJwk(jwk) })),
      };
      return this.#ready;
    });
    this.#keys.catch(() => {}); // surfaces at the first proof
  }

  /** Whether {@link DpopKey.proofNow} can sign: the key is imported and Node's synchronous signing is available. */
  get canSignNow(): boolean {
    return this.#ready?.key.signNow !== undefined;
  }

  /** A fresh proof for one request (RFC 9449 §4.2). */
  async proof(target: ProofTarget, now = Date.now()): Promise<string> {
    const ready = this.#ready ?? (await this.#keys);
    return signJws(ready.key, this.#signingInput(ready, target, now));
  }

  /**
   * The same proof, signed in this tick, or undefined when that is not possible (the key still being
   * imported, or a runtime without Node's crypto): see signJwsNow.
   */
  proofNow(target: ProofTarget, now = Date.now()): string | undefined {
    const ready = this.#ready;
    return ready?.key.signNow === undefined ? undefined : signJwsNow(ready.key, this.#signingInput(ready, target, now));
  }

  #signingInput(ready: ReadyKey, target: ProofTarget, now: number): string {
    const htu = targetUri(target.url);
    const claims: Record<string, string | number> = {
      jti: globalThis.crypto.randomUUID(),
      htm: target.method.toUpperCase(),
      htu,
      iat: Math.floor(now / 1000),
    };
    const nonce = this.#nonces.get(originOf(htu));
    if (nonce !== undefined) claims.nonce = nonce;
    if (target.accessToken !== undefined) claims.ath = this.#tokenHash(target.accessToken);
    return `${ready.header}.${base64url(JSON.stringify(claims))}`;
  }

  /** Remembers the nonce a server sent (`DPoP-Nonce`) for its origin; returns whether it is new. */
  rememberNonce(url: string, nonce: string | undefined): boolean {
    if (nonce === undefined || !/^[\x21-\x7e]{1,512}$/.test(nonce)) return false; // NQCHAR (RFC 9449 §8.1), capped
    const origin = originOf(url);
    if (this.#nonces.get(origin) === nonce) return false;
    if (this.#nonces.size >= MAX_NONCES && !this.#nonces.has(origin)) this.#nonces.clear();
    this.#nonces.set(origin, nonce);
    return true;
  }

  /** base64url(SHA-256(token)), computed once per token. */
  #tokenHash(accessToken: string): string {
    if (this.#ath?.token !== accessToken) {
      this.#ath = { token: accessToken, hash: base64url(sha256(new TextEncoder().encode(accessToken))) };
    }
    return this.#ath.hash;
  }
}

/** An imported key and its encoded proof header. */
interface ReadyKey {
  readonly key: JwsKey;
  readonly header: string;
}

/** The `nonce` claim of one of our proofs, if it had one. */
export function nonceOfProof(proof: unknown): string | undefined {
  if (typeof proof !== "string") return undefined;
  const payload = base64urlToBytes(proof.split(".")[1] ?? "");
  if (payload === undefined) return undefined;
  try {
    const nonce = (JSON.parse(new TextDecoder().decode(payload)) as { nonce?: unknown }).nonce;
    return typeof nonce === "string" ? nonce : undefined;
  } catch {
    return undefined;
  }
}

/** The URL without query and fragment, as `htu` compares it. */
export function targetUri(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

function publicJwk(jwk: JsonWebKey): Record<string, string> {
  const members = THUMBPRINT_MEMBERS[jwk.kty ?? ""];
  if (members === undefined) throw new InvalidOptionError(`"dpop" key type ${String(jwk.kty)} is not supported`);
  const out: Record<string, string> = {};
  for (const member of members) out[member] = String((jwk as Record<string, unknown>)[member]);
  return out;
}

/** The RFC 7638 thumbprint of a public JWK: base64url(SHA-256 of its required members, sorted, without spaces). */
export function jwkThumbprint(jwk: JsonWebKey): string {
  const members = publicJwk(jwk);
  return base64url(sha256(new TextEncoder().encode(JSON.stringify(members))));
}

/**
 * Reads the `dpop` option: `true` generates a non-extractable ES256 pair here; a `KeyObject` or a
 * `CryptoKey` pair is the caller's key.
 */
export function createDpopKey(value: unknown): DpopKey {
  if (typeof globalThis.crypto?.subtle?.sign !== "function") {
    throw new InvalidOptionError('"dpop" needs WebCrypto (globalThis.crypto.subtle), which this runtime lacks');
  }
  if (value === true) {
    const pair = globalThis.crypto.subtle.generateKey(JWS_KEY_PARAMS.ES256, false, ["sign", "verify"]) as Promise<CryptoKeyPair>;
    const keys = pair.then(async ({ privateKey, publicKey }) => ({
      privateKey,
      jwk: await globalThis.crypto.subtle.exportKey("jwk", publicKey),
    }));
    return new DpopKey(keys, "ES256", `instance:${globalThis.crypto.randomUUID()}`, false);
  }
  if (value === null || typeof value !== "object") {
    throw new InvalidOptionError('"dpop" must be true or an object', "ERR_INVALID_ARG_TYPE");
  }
  for (const name of Object.keys(value)) {
    if (!["privateKey", "publicKey", "algorithm", "allowBearer"].includes(name)) {
      throw new InvalidOptionError(`unknown option "dpop.${name}"; the options are "privateKey", "publicKey", "algorithm", "allowBearer"`);
    }
  }
  const own = (key: string): unknown => (Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined);
  const allowBearer = own("allowBearer") ?? false;
  if (typeof allowBearer !== "boolean") throw new InvalidOptionError('"dpop.allowBearer" must be a boolean', "ERR_INVALID_ARG_TYPE");
  const algorithmOption = own("algorithm");
  if (algorithmOption !== undefined && !(typeof algorithmOption === "string" && algorithmOption in JWS_KEY_PARAMS)) {
    throw new InvalidOptionError('"dpop.algorithm" must be "ES256", "EdDSA", "RS256" or "PS256"');
  }
  const privateKey = own("privateKey");
  const publicKey = own("publicKey");
  if (privateKey === undefined) {
    if (publicKey !== undefined) throw new InvalidOptionError('"dpop.publicKey" goes with "dpop.privateKey"');
    const algorithm = (algorithmOption as DpopAlgorithm | undefined) ?? "ES256";
    const pair = globalThis.crypto.subtle.generateKey(JWS_KEY_PARAMS[algorithm], false, ["sign", "verify"]) as Promise<CryptoKeyPair>;
    const keys = pair.then(async (generated) => ({
      privateKey: generated.privateKey,
      jwk: await globalThis.crypto.subtle.exportKey("jwk", generated.publicKey),
    }));
    return new DpopKey(keys, algorithm, `instance:${globalThis.crypto.randomUUID()}`, allowBearer);
  }
  if (isCryptoKey(privateKey)) {
    if (privateKey.type !== "private") throw new InvalidOptionError('"dpop.privateKey" must be a private key');
    if (!isCryptoKey(publicKey) || publicKey.type !== "public") {
      throw new InvalidOptionError('"dpop.publicKey" (a CryptoKey) must be given with a CryptoKey "dpop.privateKey": the proof carries it');
    }
    const algorithm = (algorithmOption as DpopAlgorithm | undefined) ?? algorithmOf(privateKey.algorithm);
    const keys = globalThis.crypto.subtle.exportKey("jwk", publicKey).then((jwk) => ({ privateKey, jwk }));
    return new DpopKey(keys, algorithm, cryptoKeyId(privateKey), allowBearer);
  }
  if (isKeyObject(privateKey)) {
    if (privateKey.type !== "private") throw new InvalidOptionError('"dpop.privateKey" must be a private key');
    let jwk: JsonWebKey;
    let pkcs8: Uint8Array<ArrayBuffer>;
    try {
      jwk = privateKey.export({ format: "jwk" }) as JsonWebKey;
      pkcs8 = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }) as Uint8Array);
    } catch {
      throw new InvalidOptionError('"dpop.privateKey" could not be exported');
    }
    const algorithm = (algorithmOption as DpopAlgorithm | undefined) ?? algorithmOfJwk(jwk);
    const keys = globalThis.crypto.subtle
      .importKey("pkcs8", pkcs8, JWS_KEY_PARAMS[algorithm], false, ["sign"])
      .then((imported) => ({ privateKey: imported, jwk }));
    return new DpopKey(keys, algorithm, `jkt:${jwkThumbprint(jwk)}`, allowBearer);
  }
  throw new InvalidOptionError('"dpop.privateKey" must be a CryptoKey or a KeyObject', "ERR_INVALID_ARG_TYPE");
}

/**
 * An id per CryptoKey object: sources given the same key object share its tokens. (WebCrypto gives
 * the public JWK, and so the thumbprint, only asynchronously, after the cache key is needed.)
 */
const cryptoKeyIds = new WeakMap<CryptoKey, string>();
function cryptoKeyId(key: CryptoKey): string {
  let id = cryptoKeyIds.get(key);
  if (id === undefined) {
    id = `key:${globalThis.crypto.randomUUID()}`;
    cryptoKeyIds.set(key, id);
  }
  return id;
}

function isCryptoKey(value: unknown): value is CryptoKey {
  return value !== null && typeof value === "object" && typeof (value as CryptoKey).algorithm === "object" && "usages" in value;
}

function algorithmOf(algorithm: KeyAlgorithm): DpopAlgorithm {
  if (algorithm.name === "ECDSA" && (algorithm as EcKeyAlgorithm).namedCurve === "P-256") return "ES256";
  if (algorithm.name === "Ed25519") return "EdDSA";
  if (algorithm.name === "RSASSA-PKCS1-v1_5") return "RS256";
  if (algorithm.name === "RSA-PSS") return "PS256";
  throw new InvalidOptionError(`"dpop.privateKey" is a ${algorithm.name} key; DPoP here signs with ES256, EdDSA, RS256 or PS256`);
}

function algorithmOfJwk(jwk: JsonWebKey): DpopAlgorithm {
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "RSA") return "RS256";
  throw new InvalidOptionError('"dpop.privateKey" must be a P-256, Ed25519 or RSA key');
}
