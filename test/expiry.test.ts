import { describe, expect, it } from "vitest";
import { CLOCK_SKEW_TOLERANCE_MS, freshness, parseSeconds, resolveToken, type ExpiryPolicy } from "../src/expiry.js";
import { jwtWithRawPayload, unsignedJwt } from "./helpers/jwt.js";

const policy: ExpiryPolicy = {
  refreshMarginMs: 300_000,
  expiryBufferMs: 30_000,
  refreshJitter: 0,
};
const SENT = Date.UTC(2026, 0, 1);
const lifetimeOf = (accessToken: string, expiresIn?: unknown, at = SENT) =>
  resolveToken({ accessToken, expiresIn, refreshIn: undefined }, at, policy).expiresAt - at;

describe("expires_in (golang TestExchangeRequest_JSONResponse_Expiry)", () => {
  it.each([
    [3600, 3_600_000],
    ["3600", 3_600_000],
    [" 60 ", 60_000],
    [1.5, 1_500],
    [0.5, 300_000],
    [5e-324, 300_000],
    [null, 300_000],
    [false, 300_000],
    [{}, 300_000],
    ["zzz", 300_000],
    ["1e3", 300_000],
    [-1, 300_000],
    [0, 300_000],
    [Number.NaN, 300_000],
    [1e12, 86_400_000],
    [3_000_000, 86_400_000],
  ])("expires_in %j → lifetime %i ms, measured from when the request was sent", (expiresIn, lifetime) => {
    expect(lifetimeOf("opaque-token", expiresIn)).toBe(lifetime);
  });

  it("parseSeconds accepts positive finite numbers and numeric strings only", () => {
    expect(parseSeconds("10")).toBe(10_000);
    expect(parseSeconds("")).toBeUndefined();
    expect(parseSeconds(Infinity)).toBeUndefined();
  });
});

describe("JWT exp is a hint that can only shorten the lifetime", () => {
  const exp = (seconds: number) => SENT / 1000 + seconds;

  it("uses the earlier of expires_in and exp", () => {
    expect(lifetimeOf(unsignedJwt({ exp: exp(600) }), 3600)).toBe(600_000);
    expect(lifetimeOf(unsignedJwt({ exp: exp(7200) }), 3600)).toBe(3_600_000);
  });

  it("uses exp when expires_in is missing", () => {
    expect(lifetimeOf(unsignedJwt({ exp: exp(900) }))).toBe(900_000);
  });

  it("ignores an exp already past: the local clock is ahead, not the token dead", () => {
    expect(lifetimeOf(unsignedJwt({ exp: exp(-3600) }), 3600)).toBe(3_600_000);
    expect(lifetimeOf(unsignedJwt({ exp: exp(-3600) }))).toBe(300_000);
  });

  it("caps an exp in year 9999 at the maximum lifetime", () => {
    expect(lifetimeOf(unsignedJwt({ exp: 253_402_300_799 }))).toBe(86_400_000);
  });

  it.each([
    ["exp as a string", unsignedJwt({ exp: String(SENT / 1000 + 60) })],
    ["exp null", unsignedJwt({ exp: null })],
    ["exp Infinity via 1e400", jwtWithRawPayload(Buffer.from('{"exp":1e400}').toString("base64url"))],
    ["a payload that is not JSON", jwtWithRawPayload(Buffer.from("not json").toString("base64url"))],
    ["bad base64", jwtWithRawPayload("!!!")],
    ["invalid UTF-8", jwtWithRawPayload(Buffer.from([0xff, 0xfe, 0x7b]).toString("base64url"))],
    ["a JSON array payload", unsignedJwt([1, 2])],
    ["a JSON number payload", unsignedJwt(42)],
    ["JSON null payload", unsignedJwt(null)],
    [
      "an exp hidden under __proto__",
      jwtWithRawPayload(Buffer.from(`{"__proto__":{"exp":${SENT / 1000 + 60}},"x":1}`).toString("base64url")),
    ],
    ["a 5-part JWE", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"],
    ["an opaque token", "EwBwA8l6BAAU.opaque"],
  ])("%s: never throws, and expiry comes from expires_in alone", (_name, token) => {
    // Each of these carries an exp 60 s ahead (or none): had it been read, the lifetime would be 60 s.
    expect(lifetimeOf(token, 3600)).toBe(3_600_000);
  });

  it("a JWT's header is never looked at: alg none and a jku change nothing, the numeric exp is read", () => {
    expect(lifetimeOf(unsignedJwt({ exp: SENT / 1000 + 60 }, { alg: "none", jku: "https://evil.example/jwks" }), 3600)).toBe(60_000);
  });
});

describe("refresh thresholds clamp to the token's lifetime", () => {
  const token = (lifetimeMs: number, refreshIn?: number) =>
    resolveToken({ accessToken: "t", expiresIn: lifetimeMs / 1000, refreshIn }, SENT, policy);

  it("an hour-long token: background refresh from 5 min before expiry, waiting from 30 s before", () => {
    const t = token(3_600_000);
    expect(freshness(t, SENT + 3_300_000 - 1, 30_000)).toBe("fresh");
    expect(freshness(t, SENT + 3_300_000, 30_000)).toBe("refresh-due");
    expect(freshness(t, SENT + 3_570_000 - 1, 30_000)).toBe("refresh-due");
    expect(freshness(t, SENT + 3_570_000, 30_000)).toBe("expired");
  });

  it("a 2-minute token is not refreshed on every request: margin ≤ 50%, buffer ≤ 10%", () => {
    const t = token(120_000);
    expect(freshness(t, SENT + 59_999, 30_000)).toBe("fresh");
    expect(freshness(t, SENT + 60_000, 30_000)).toBe("refresh-due");
    expect(freshness(t, SENT + 108_000, 30_000)).toBe("expired");
  });

  it("an 8-second token is still served 6.8 s after it was issued", () => {
    expect(freshness(token(8_000), SENT + 6_800, 30_000)).toBe("refresh-due");
    expect(freshness(token(8_000), SENT + 7_200, 30_000)).toBe("expired");
  });

  it("honours Entra's refresh_in", () => {
    expect(token(3_600_000, 1800).refreshAt).toBe(SENT + 1_800_000);
  });

  it("a refresh_in of 1 s cannot make every request refresh: at most every tenth of the lifetime", () => {
    expect(token(3_600_000, 1).refreshAt).toBe(SENT + 360_000);
  });

  it("jitter moves the refresh earlier by up to 10% of the margin, never later", () => {
    const early = resolveToken(
      { accessToken: "t", expiresIn: 3600, refreshIn: undefined },
      SENT,
      { ...policy, refreshJitter: 0.1 },
      () => 1,
    );
    expect(early.refreshAt).toBe(SENT + 3_600_000 - 300_000 - 30_000);
  });

  it("a token obtained a little in the future (another replica's clock runs ahead) is fresh", () => {
    expect(freshness(token(3_600_000), SENT - 2_000, 30_000)).toBe("fresh");
    expect(freshness(token(3_600_000), SENT - CLOCK_SKEW_TOLERANCE_MS, 30_000)).toBe("fresh");
  });

  it("a clock turned back further than replicas' clocks differ discards the token", () => {
    expect(freshness(token(3_600_000), SENT - CLOCK_SKEW_TOLERANCE_MS - 1, 30_000)).toBe("expired");
  });
});
