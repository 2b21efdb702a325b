/**
 * Base64 and base64url over bytes and UTF-8 text, with the globals every runtime has (`btoa`,
 * `atob`, `TextEncoder`), so the core entry needs no `Buffer`.
 */

const utf8 = new TextEncoder();

/** Standard base64 of UTF-8 text (HTTP Basic credentials). */
export function base64(text: string): string {
  return bytesToBase64(utf8.encode(text));
}

/** base64url without padding (RFC 7515 §2), of bytes or of UTF-8 text. */
export function base64url(data: Uint8Array | string): string {
  // ASCII text (JSON of our JWS headers and claims) is its own Latin-1, which btoa takes as it is.
  const base64 = typeof data === "string" ? (ASCII.test(data) ? btoa(data) : bytesToBase64(utf8.encode(data))) : bytesToBase64(data);
  return base64.replace(BASE64_TO_URL, toUrlAlphabet);
}

const ASCII = /^[\x00-\x7f]*$/;
const BASE64_TO_URL = /[+/=]/g;
const toUrlAlphabet = (c: string): string => (c === "+" ? "-" : c === "/" ? "_" : "");

/** The bytes of standard base64 (whitespace ignored); undefined when it is not base64. */
export function base64ToBytes(text: string): Uint8Array<ArrayBuffer> | undefined {
  const compact = text.replace(/\s+/g, "");
  if (compact === "" || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return undefined;
  let binary: string;
  try {
    binary = atob(compact);
  } catch {
    return undefined;
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The bytes of unpadded base64url; undefined when it is not base64url. */
export function base64urlToBytes(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  if (text === "") return new Uint8Array(0);
  return base64ToBytes(text.replace(/-/g, "+").replace(/_/g, "/"));
}

function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  // In chunks: String.fromCharCode with a whole certificate as arguments could exceed the call stack.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
