/** Builds unsigned JWT-shaped strings for expiry tests; nothing verifies them, and the library must not either. */
export function unsignedJwt(payload: unknown, header: unknown = { alg: "none", typ: "JWT" }): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${encode(header)}.${encode(payload)}.signature`;
}

/** A JWT whose payload segment is raw text (not JSON, bad base64, …). */
export function jwtWithRawPayload(segment: string): string {
  return `${Buffer.from('{"alg":"none"}').toString("base64url")}.${segment}.sig`;
}
