/**
 * What a Redis value holds and how it is protected: tokens sealed with AES-256-GCM and tagged with
 * HMAC-SHA-256, both keys derived by HKDF-SHA-256 from the encryption secret (RFC 5869), which is
 * not kept. A value is bound to its Redis key, so a value copied to another key does not open.
 */
import { base64url, base64urlToBytes } from "../encoding.js";
import { InvalidOptionError } from "../errors.js";
import { isStoredToken, type StoredToken } from "../store.js";

const MIN_SECRET_BYTES = 16;

/** The encryption secret as bytes of our own (zeroed once the keys are derived), checked for length. */
export function encryptionSecret(encryptionKey: unknown, clientSecret: unknown): Uint8Array<ArrayBuffer> {
  if ((encryptionKey === undefined) === (clientSecret === undefined)) {
    throw new InvalidOptionError('exactly one of "encryptionKey" and "clientSecret" must be given');
  }
  const name = encryptionKey !== undefined ? "encryptionKey" : "clientSecret";
  const value = encryptionKey ?? clientSecret;
  let bytes: Uint8Array<ArrayBuffer>;
  if (typeof value === "string") bytes = new TextEncoder().encode(value);
  else if (value instanceof Uint8Array && name === "encryptionKey") bytes = Uint8Array.from(value);
  else {
    const expected = name === "encryptionKey" ? "a string or a Uint8Array" : "a string";
    throw new InvalidOptionError(`"${name}" must be ${expected}`, "ERR_INVALID_ARG_TYPE");
  }
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new InvalidOptionError(`"${name}" must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  return bytes;
}

/** What the secret yields; none of it can be turned back into the secret. */
interface DerivedKeys {
  /** AES-256-GCM, not extractable. */
  readonly aes: CryptoKey;
  /** HMAC-SHA-256, not extractable: tags Lua can compare without learning the token. */
  readonly mac: CryptoKey;
  /** Names this secret's keys in Redis. */
  readonly fingerprint: string;
}

/**
 * A token value: `v2.<obtainedAt>.<tag>.<base64url(iv ‖ ciphertext ‖ GCM tag)>`. The header is in
 * clear for the Lua scripts (obtainedAt to fence writes, tag to compare-and-delete) and is part of
 * the associated data, so changing it makes the value not decrypt.
 */
const VALUE = /^v2\.(\d{1,16})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]+)$/;
/** A throttle value: `<untilMs>.<tag>`; the tag keeps whoever can write to Redis without the secret from stalling the fleet. */
const THROTTLE = /^(\d{1,16})\.([A-Za-z0-9_-]{22})$/;
const IV_BYTES = 12; // the GCM standard nonce size (NIST SP 800-38D)
const TAG_BYTES = 16;
const MAC_BYTES = 16; // 128 bits: unforgeable, and short enough to keep next to every value
const FINGERPRINT_BYTES = 9; // 72 bits, 12 characters: two secrets of one deployment never collide
const HKDF_SALT = new TextEncoder().encode("axios-token-refresh/redis");
const HKDF_INFO = new TextEncoder().encode("token store: AES-256-GCM v1");
const HKDF_INFO_MAC = new TextEncoder().encode("token store: HMAC-SHA-256 v2");
const HKDF_INFO_FINGERPRINT = new TextEncoder().encode("token store: key fingerprint v2");

/** Seals and opens this store's values with keys derived from one secret. */
export class Sealer {
  /** The secret they came from is not kept. */
  readonly #keys: Promise<DerivedKeys>;

  constructor(secret: Uint8Array<ArrayBuffer>) {
    this.#keys = deriveKeys(secret);
    this.#keys.catch(() => {}); // surfaces, as a failed command, in the first call
  }

  /** Names this secret's keys in Redis (72 bits of HKDF output, not the key). */
  async fingerprint(): Promise<string> {
    return (await this.#keys).fingerprint;
  }

  /** base64url HMAC of `data` under the derived MAC key, bound to the Redis key it is stored under. */
  async mac(redisKey: string, data: string): Promise<string> {
    const { mac } = await this.#keys;
    const signature = await crypto.subtle.sign("HMAC", mac, new TextEncoder().encode(`${redisKey}\n${data}`));
    return base64url(new Uint8Array(signature, 0, MAC_BYTES));
  }

  /** The value to store for `token` under `redisKey`. */
  async seal(redisKey: string, token: StoredToken): Promise<string> {
    const header = `v2.${fenceTime(token.obtainedAt)}.${await this.mac(redisKey, token.accessToken)}.`;
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: associatedData(redisKey, header) },
      (await this.#keys).aes,
      new TextEncoder().encode(JSON.stringify(token)),
    );
    const out = new Uint8Array(IV_BYTES + sealed.byteLength);
    out.set(iv);
    out.set(new Uint8Array(sealed), IV_BYTES);
    return header + base64url(out);
  }

  /** The token in `raw`, or undefined for anything that does not decrypt, parse and validate. */
  async open(redisKey: string, raw: string): Promise<StoredToken | undefined> {
    try {
      const match = VALUE.exec(raw);
      if (match === null) return undefined;
      const bytes = base64urlToBytes(match[3] as string);
      if (bytes === undefined || bytes.byteLength < IV_BYTES + TAG_BYTES) return undefined;
      const header = raw.slice(0, raw.length - (match[3] as string).length);
      const plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: bytes.subarray(0, IV_BYTES), additionalData: associatedData(redisKey, header) },
        (await this.#keys).aes,
        bytes.subarray(IV_BYTES),
      );
      const value: unknown = JSON.parse(new TextDecoder().decode(plain));
      if (!isStoredToken(value) || String(fenceTime(value.obtainedAt)) !== match[1]) return undefined;
      return copyToken(value);
    } catch {
      return undefined;
    }
  }

  /** A throttle value, `<untilMs>.<tag>`. */
  async throttleValue(throttleKey: string, until: number): Promise<string> {
    return `${until}.${await this.mac(throttleKey, String(until))}`;
  }

  /** The until of a throttle value whose tag is ours, else undefined. */
  async readThrottle(throttleKey: string, raw: string | undefined): Promise<number | undefined> {
    const match = raw === undefined ? null : THROTTLE.exec(raw);
    if (match === null) return undefined;
    const until = Number(match[1]);
    return sameText(match[2] as string, await this.mac(throttleKey, String(until))) ? until : undefined;
  }
}

/** The fields of a token entry and nothing else (what a caller's object or a decrypted one may carry besides). */
export function copyToken(token: StoredToken): StoredToken {
  const { accessToken, expiresAt, refreshAt, obtainedAt, cacheKey, scope, tokenType } = token;
  return {
    accessToken,
    expiresAt,
    refreshAt,
    obtainedAt,
    cacheKey,
    ...(scope === undefined ? {} : { scope }),
    ...(tokenType === undefined ? {} : { tokenType }),
  };
}

/** obtainedAt as the whole, non-negative milliseconds the Lua scripts compare. */
export function fenceTime(obtainedAt: number): number {
  return Math.max(0, Math.floor(obtainedAt));
}

/** A random lock id. */
export function randomId(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}

function associatedData(redisKey: string, header: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${redisKey}\n${header}`);
}

/** Compares two tags without stopping at the first difference. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** The AES-256-GCM and HMAC keys, derived with HKDF-SHA-256 (RFC 5869) and not extractable, and the key fingerprint. */
async function deriveKeys(secret: Uint8Array<ArrayBuffer>): Promise<DerivedKeys> {
  const base = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveKey", "deriveBits"]);
  secret.fill(0); // our own copy: the imported key is all that is needed from here on
  const hkdf = (info: Uint8Array<ArrayBuffer>): HkdfParams => ({ name: "HKDF", hash: "SHA-256", salt: HKDF_SALT, info });
  const [aes, mac, fingerprint] = await Promise.all([
    crypto.subtle.deriveKey(hkdf(HKDF_INFO), base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]),
    crypto.subtle.deriveKey(hkdf(HKDF_INFO_MAC), base, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]),
    crypto.subtle.deriveBits(hkdf(HKDF_INFO_FINGERPRINT), base, FINGERPRINT_BYTES * 8),
  ]);
  return { aes, mac, fingerprint: base64url(new Uint8Array(fingerprint)) };
}
