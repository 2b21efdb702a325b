/**
 * Property-based tests (fast-check): no token response body and no JWT payload makes the library
 * throw outside its promise, hang, or store an invalid entry.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readResponse } from "../src/client-credentials.js";
import { MAX_LIFETIME_MS, resolveToken, type ExpiryPolicy } from "../src/expiry.js";
import { createTokenRefreshInterceptor, InMemoryTokenStore, isTokenRefreshError } from "../src/index.js";
import { isStoredToken } from "../src/store.js";
import { startTokenServer } from "./helpers/servers.js";

const policy: ExpiryPolicy = { refreshMarginMs: 300_000, expiryBufferMs: 30_000, refreshJitter: 0.1 };
const SENT = Date.UTC(2026, 10, 27);

/** Values a hostile or broken server might put in a member. */
const anyValue = fc.oneof(
  fc.jsonValue(),
  fc.string({ unit: "binary" }),
  fc.constantFrom(
    "3600",
    "zzz",
    -1,
    0,
    1e12,
    3_000_000,
    "1e400",
    "NaN",
    null,
    "DPoP",
    "mac",
    "bearer",
    "BEARER",
    "a\r\nb",
    "a b",
    "\u0000",
  ),
);
const tokenString = fc.oneof(fc.string({ unit: "binary", minLength: 0, maxLength: 40 }), fc.stringMatching(/^[A-Za-z0-9._~+/-]{1,40}=*$/));
const body = fc.record(
  {
    access_token: fc.oneof(tokenString, anyValue),
    token_type: anyValue,
    expires_in: anyValue,
    refresh_in: anyValue,
    error: anyValue,
    __proto__: fc.jsonValue(),
  },
  { requiredKeys: [] },
);
const rawBody = fc.oneof(
  body.map((b) => JSON.stringify(b)),
  fc.string({ unit: "binary" }),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  body.map((b) => JSON.stringify(b).slice(0, -3)),
);

/** A JWT-shaped token with an arbitrary payload or arbitrary segments. */
const jwtLike = fc.oneof(
  fc
    .record({ exp: anyValue, nbf: anyValue, iat: anyValue }, { requiredKeys: [] })
    .map(
      (p) =>
        `${Buffer.from('{"alg":"none","jku":"https://evil.example"}').toString("base64url")}.${Buffer.from(JSON.stringify(p)).toString("base64url")}.sig`,
    ),
  fc.tuple(fc.string(), fc.string(), fc.string()).map((parts) => parts.join(".")),
  fc.jsonValue().map((v) => `e30.${Buffer.from(JSON.stringify(v) ?? "").toString("base64url")}.x`),
);

describe("properties", () => {
  it("any token response: a header-safe Bearer token or a coded error, nothing else (1,000 cases)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), rawBody, (status, data) => {
        try {
          const result = readResponse({ status, data, headers: {} });
          expect(status).toBeGreaterThanOrEqual(200);
          expect(status).toBeLessThan(300);
          expect(result.access_token).toMatch(/^[\x21-\x7e]+$/);
          expect(result.token_type).toBe("Bearer");
        } catch (error) {
          expect(isTokenRefreshError(error)).toBe(true);
        }
      }),
      { numRuns: 1_000 },
    );
  });

  it("any expires_in, refresh_in and JWT payload: a valid entry with a finite expiry within bounds (2,000 cases)", () => {
    fc.assert(
      fc.property(fc.oneof(jwtLike, tokenString), anyValue, anyValue, (accessToken, expiresIn, refreshIn) => {
        const entry = resolveToken({ accessToken: accessToken === "" ? "x" : accessToken, expiresIn, refreshIn }, SENT, policy);
        expect(isStoredToken(entry)).toBe(true);
        expect(entry.expiresAt).toBeGreaterThan(SENT);
        expect(entry.expiresAt).toBeLessThanOrEqual(SENT + MAX_LIFETIME_MS);
        expect(entry.refreshAt).toBeLessThan(entry.expiresAt);
        expect(entry.refreshAt).toBeGreaterThanOrEqual(SENT);
      }),
      { numRuns: 2_000 },
    );
  });

  it("end to end over a loopback token server: every call settles, and the store holds nothing or a valid entry (150 cases)", async () => {
    const server = await startTokenServer();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 200, max: 503 }), rawBody, async (status, data) => {
        server.requests.length = 0;
        server.handler = () => ({ status, body: data });
        const store = new InMemoryTokenStore();
        const auth = createTokenRefreshInterceptor({
          tokenUrl: server.url,
          clientId: "c",
          clientSecret: "s",
          store,
          cacheKey: "k",
          retry: { attempts: 1 },
          timeoutMs: 2_000,
        });
        const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => auth.getAccessToken()));
        for (const outcome of outcomes) {
          if (outcome.status === "rejected") expect(isTokenRefreshError(outcome.reason)).toBe(true);
        }
        const stored = store.get("k");
        expect(stored === undefined || isStoredToken(stored)).toBe(true);
        expect(server.requests.length).toBe(1);
        if (stored !== undefined) {
          await Promise.all(Array.from({ length: 20 }, () => auth.getAccessToken()));
          expect(server.requests.length).toBe(1); // no refresh storm after a success
        }
      }),
      { numRuns: 150 },
    );
  }, 30_000);
});
