/**
 * Client assertions signed by the library (RFC 7523 §2.2, `private_key_jwt`): the key is read once,
 * at construction, into PKCS#8 bytes; imported into WebCrypto (non-extractable) at the first token
 * request, after which the bytes are dropped; and a fresh assertion is signed for every request
 * (jws.ts: Node's synchronous signature where it is at hand, else WebCrypto).
 *
 * Microsoft Entra's certificate credential is the shape: header `alg`, `typ: "JWT"` and the
 * certificate's thumbprints `x5t#S256` (SHA-256) and `x5t` (SHA-1, which older Entra code reads);
 * claims `aud` = the token endpoint, `iss` = `sub` = the client id, a unique `jti`, `iat`, `nbf`, `exp`.
 */
import { base64ToBytes, base64url } from "./encoding.js";
import { isKeyObject, JWS_KEY_PARAMS, jwsKey, signJws, type JwsKey } from "./jws.js";
import { InvalidOptionError, TokenRefreshError } from "./errors.js";
import type { ClientAssertionAlgorithm } from "./options.js";

/** How long an assertion is valid: long enough for a retried request and some clock skew, far below Entra's 10-minute limit. */
const ASSERTION_LIFETIME_SECONDS = 300;
const MIN_RSA_BITS = 2048; // Entra's minimum, and NIST's since 2015

const OID_RSA = "2a864886f70d010101";
const OID_EC = "2a8648ce3d0201";
const OID_P256 = "2a8648ce3d030107";

type KeyKind = "rsa" | "p256";
/** Bytes over a plain ArrayBuffer, as WebCrypto takes them. */
type Bytes = Uint8Array<ArrayBuffer>;

/** Signs this client's assertions; holds the key where neither `util.inspect` nor `JSON.stringify` can reach it. */
export class AssertionSigner {
  /** The JWS `alg` of every assertion. */
  readonly algorithm: ClientAssertionAlgorithm;
  /** Bytes that identify the credential in the cache key (the certificate, else the key), never shown. */
  readonly #identity: Bytes;
  #pkcs8: Bytes | undefined;
  #key: Promise<JwsKey> | undefined;
  readonly #certificate: Bytes | undefined;
  #header: Promise<string> | undefined;

  constructor(pkcs8: Bytes, algorithm: ClientAssertionAlgorithm, certificate: Bytes | undefined) {
    this.algorithm = algorithm;
    this.#pkcs8 = pkcs8;
    this.#certificate = certificate;
    this.#identity = certificate ?? pkcs8;
  }

  /** The bytes the cache key's fingerprint is taken of. */
  get identity(): Bytes {
    return this.#identity;
  }

  /** Returns a fresh assertion for one token request to `audience` (the token endpoint). */
  async sign(clientId: string, audience: string, now = Date.now()): Promise<string> {
    const subtle = webCrypto();
    const [key, header] = await Promise.all([this.#importedKey(subtle), this.#encodedHeader(subtle)]);
    const issuedAt = Math.floor(now / 1000);
    const claims = {
      aud: audience,
      iss: clientId,
      sub: clientId,
      jti: globalThis.crypto.randomUUID(),
      iat: issuedAt,
      nbf: issuedAt,
      exp: issuedAt + ASSERTION_LIFETIME_SECONDS,
    };
    return signJws(key, `${header}.${base64url(JSON.stringify(claims))}`);
  }

  #importedKey(subtle: SubtleCrypto): Promise<JwsKey> {
    if (this.#key === undefined) {
      const pkcs8 = this.#pkcs8 ?? new Uint8Array(0);
      this.#key = subtle.importKey("pkcs8", pkcs8, JWS_KEY_PARAMS[this.algorithm], false, ["sign"]).then(
        (key) => {
          // From here on the key exists only as a non-extractable CryptoKey.
          this.#pkcs8 = undefined;
          return jwsKey(key, this.algorithm);
        },
        () => {
          this.#key = undefined;
          // WebCrypto's own message says nothing useful and its error is not attached: it may quote key material.
          throw new TokenRefreshError(
            `"clientCertificate.privateKey" could not be imported for ${this.algorithm}`,
            "ERR_CLIENT_CREDENTIAL",
          );
        },
      );
    }
    return this.#key;
  }

  #encodedHeader(subtle: SubtleCrypto): Promise<string> {
    this.#header ??= (async () => {
      const header: Record<string, string> = { alg: this.algorithm, typ: "JWT" };
      if (this.#certificate !== undefined) {
        const certificate = this.#certificate;
        const [sha1, sha256] = await Promise.all([subtle.digest("SHA-1", certificate), subtle.digest("SHA-256", certificate)]);
        header.x5t = base64url(new Uint8Array(sha1));
        header["x5t#S256"] = base64url(new Uint8Array(sha256));
      }
      return base64url(JSON.stringify(header));
    })();
    return this.#header;
  }
}

/**
 * Reads `clientCertificate` into a signer, checking all that can be checked without WebCrypto's
 * (asynchronous) import: the PEM form, the key type and size, the algorithm, the certificate.
 */
export function createAssertionSigner(value: unknown): AssertionSigner {
  if (value === null || typeof value !== "object") {
    throw new InvalidOptionError('"clientCertificate" must be an object with "privateKey"', "ERR_INVALID_ARG_TYPE");
  }
  const own = (key: string): unknown => (Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined);
  for (const name of Object.keys(value)) {
    if (name !== "privateKey" && name !== "certificate" && name !== "algorithm") {
      throw new InvalidOptionError(`unknown option "clientCertificate.${name}"; the options are "privateKey", "certificate", "algorithm"`);
    }
  }
  if (typeof globalThis.crypto?.subtle?.importKey !== "function") {
    throw new InvalidOptionError('"clientCertificate" needs WebCrypto (globalThis.crypto.subtle), which this runtime lacks');
  }
  const { pkcs8, kind } = readPrivateKey(own("privateKey"));
  const algorithm = own("algorithm") ?? (kind === "rsa" ? "RS256" : "ES256");
  if (algorithm !== "RS256" && algorithm !== "PS256" && algorithm !== "ES256") {
    throw new InvalidOptionError('"clientCertificate.algorithm" must be "RS256", "PS256" or "ES256"');
  }
  if ((algorithm === "ES256") !== (kind === "p256")) {
    throw new InvalidOptionError(
      `"clientCertificate.algorithm" ${algorithm} does not fit a${kind === "rsa" ? "n RSA" : " P-256"} key (RSA: RS256 or PS256; P-256: ES256)`,
    );
  }
  const certificate = own("certificate");
  return new AssertionSigner(pkcs8, algorithm, certificate === undefined ? undefined : readCertificate(certificate));
}

/** A private key as PKCS#8 bytes, with its kind; PKCS#1 and SEC1 PEMs are wrapped into PKCS#8, as WebCrypto takes only that. */
function readPrivateKey(value: unknown): { pkcs8: Bytes; kind: KeyKind } {
  const name = "clientCertificate.privateKey";
  if (isKeyObject(value)) {
    if (value.type !== "private") throw new InvalidOptionError(`"${name}" must be a private key (got a ${value.type} key)`);
    let der: Bytes;
    try {
      der = new Uint8Array(value.export({ format: "der", type: "pkcs8" }));
    } catch {
      throw new InvalidOptionError(`"${name}" could not be exported as PKCS#8`);
    }
    return { pkcs8: der, kind: pkcs8Kind(der, name) };
  }
  if (typeof value !== "string") {
    throw new InvalidOptionError(`"${name}" must be a PEM string or a KeyObject`, "ERR_INVALID_ARG_TYPE");
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(value)) {
    throw new InvalidOptionError(
      `"${name}" is encrypted; pass it decrypted, or as a KeyObject (crypto.createPrivateKey({ key, passphrase }))`,
    );
  }
  const block = /-----BEGIN (PRIVATE KEY|RSA PRIVATE KEY|EC PRIVATE KEY)-----([^-]*)-----END \1-----/.exec(value);
  const der = block === null ? undefined : base64ToBytes(block[2] ?? "");
  if (block === null || der === undefined) {
    throw new InvalidOptionError(`"${name}" must be a PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)`);
  }
  const label = block[1];
  if (label === "PRIVATE KEY") return { pkcs8: der, kind: pkcs8Kind(der, name) };
  if (label === "RSA PRIVATE KEY") {
    checkRsaSize(der, name);
    return { pkcs8: wrapPkcs8(OID_RSA, derTlv(0x05, new Uint8Array(0)), der), kind: "rsa" };
  }
  const curve = sec1Curve(der, name);
  return { pkcs8: wrapPkcs8(OID_EC, derTlv(0x06, hexBytes(curve)), der), kind: "p256" };
}

function readCertificate(value: unknown): Bytes {
  const name = "clientCertificate.certificate";
  if (typeof value !== "string") throw new InvalidOptionError(`"${name}" must be a PEM string`, "ERR_INVALID_ARG_TYPE");
  // The first block: a chain file starts with the leaf.
  const block = /-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/.exec(value);
  const der = block === null ? undefined : base64ToBytes(block[1] ?? "");
  if (der === undefined || readTlv(der, 0, name).tag !== 0x30) {
    throw new InvalidOptionError(`"${name}" must be a PEM certificate (BEGIN CERTIFICATE)`);
  }
  return der;
}

/** The key kind a PKCS#8 PrivateKeyInfo holds (RFC 5208 §5): its algorithm OID, and for EC the curve. */
function pkcs8Kind(der: Bytes, name: string): KeyKind {
  const info = children(der, readTlv(der, 0, name), name);
  const algorithm = info[1];
  const key = info[2];
  if (info[0]?.tag !== 0x02 || algorithm?.tag !== 0x30 || key?.tag !== 0x04) {
    throw new InvalidOptionError(`"${name}" is not a PKCS#8 private key`);
  }
  const [oid, parameters] = children(der, algorithm, name);
  const oidHex = oid === undefined ? "" : hex(der.subarray(oid.start, oid.end));
  if (oidHex === OID_RSA) {
    checkRsaSize(der.subarray(key.start, key.end), name);
    return "rsa";
  }
  if (oidHex === OID_EC && parameters !== undefined && hex(der.subarray(parameters.start, parameters.end)) === OID_P256) return "p256";
  throw new InvalidOptionError(`"${name}" must be an RSA or an EC P-256 key`);
}

/** Refuses an RSA key below 2048 bits (PKCS#1 RSAPrivateKey: version, then the modulus). */
function checkRsaSize(pkcs1: Bytes, name: string): void {
  const modulus = children(pkcs1, readTlv(pkcs1, 0, name), name)[1];
  if (modulus?.tag !== 0x02) throw new InvalidOptionError(`"${name}" is not an RSA private key`);
  let start = modulus.start;
  while (start < modulus.end && pkcs1[start] === 0) start += 1;
  const bits = (modulus.end - start) * 8;
  if (bits < MIN_RSA_BITS) throw new InvalidOptionError(`"${name}" is an RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are needed`);
}

/** The curve OID of a SEC1 ECPrivateKey (RFC 5915 §3), which must be P-256. */
function sec1Curve(sec1: Bytes, name: string): string {
  const parameters = children(sec1, readTlv(sec1, 0, name), name).find((part) => part.tag === 0xa0);
  const oid = parameters === undefined ? undefined : readTlv(sec1, parameters.start, name);
  const curve = oid?.tag === 0x06 ? hex(sec1.subarray(oid.start, oid.end)) : undefined;
  if (curve !== OID_P256) throw new InvalidOptionError(`"${name}" must be an EC key on P-256`);
  return curve;
}

/** PKCS#8 PrivateKeyInfo { version 0, AlgorithmIdentifier { oid, parameters }, OCTET STRING key }. */
function wrapPkcs8(algorithmOid: string, parameters: Bytes, key: Bytes): Bytes {
  const algorithm = derTlv(0x30, concat(derTlv(0x06, hexBytes(algorithmOid)), parameters));
  return derTlv(0x30, concat(derTlv(0x02, new Uint8Array([0])), algorithm, derTlv(0x04, key)));
}

interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

/** One DER element at `offset`: its tag and where its content starts and ends. */
function readTlv(bytes: Bytes, offset: number, name: string): Tlv {
  const tag = bytes[offset];
  let length = bytes[offset + 1];
  let start = offset + 2;
  if (tag === undefined || length === undefined) throw malformed(name);
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4) throw malformed(name);
    length = 0;
    for (let i = 0; i < octets; i += 1) length = length * 256 + (bytes[start + i] ?? Number.NaN);
    start += octets;
  }
  const end = start + length;
  if (!Number.isFinite(end) || end > bytes.length) throw malformed(name);
  return { tag, start, end };
}

/** The elements inside a constructed element (at most a few dozen: the structures read here are small). */
function children(bytes: Bytes, parent: Tlv, name: string): Tlv[] {
  const parts: Tlv[] = [];
  for (let offset = parent.start; offset < parent.end && parts.length < 32; ) {
    const part = readTlv(bytes, offset, name);
    if (part.end > parent.end) throw malformed(name);
    parts.push(part);
    offset = part.end;
  }
  return parts;
}

function malformed(name: string): InvalidOptionError {
  return new InvalidOptionError(`"${name}" is not well-formed DER inside its PEM`);
}

function derTlv(tag: number, content: Bytes): Bytes {
  const length = content.length;
  const lengthBytes = length < 0x80 ? [length] : length < 0x100 ? [0x81, length] : [0x82, length >> 8, length & 0xff];
  return concat(new Uint8Array([tag, ...lengthBytes]), content);
}

function concat(...parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function hex(bytes: Bytes): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function hexBytes(text: string): Bytes {
  return new Uint8Array(text.match(/../g)?.map((pair) => Number.parseInt(pair, 16)) ?? []);
}

function webCrypto(): SubtleCrypto {
  return globalThis.crypto.subtle;
}
