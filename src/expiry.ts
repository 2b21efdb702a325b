/**
 * Token timing: when a token expires, when to refresh it, and how fresh a cached one is.
 * Expiry comes from `expires_in` measured from when the request was sent (MSAL's reqTimestamp);
 * a JWT `exp` may only shorten it, and is ignored when unreadable or when the local clock
 * is so far ahead that it already looks past.
 */
import { jwtDecode } from "jwt-decode";
import type { StoredToken } from "./store.js";

/** The timing settings this file needs. */
export interface ExpiryPolicy {
  readonly refreshMarginMs: number;
  readonly expiryBufferMs: number;
  readonly refreshJitter: number;
}

/** Lifetime assumed when neither `expires_in` nor a readable JWT `exp` says: neither "expired at once" (MSAL) nor "forever" (golang/oauth2). */
export const DEFAULT_LIFETIME_MS = 5 * 60_000;
/** Longest lifetime believed: a larger `expires_in` (a typo, seconds sent as ms) is cut to a day. */
export const MAX_LIFETIME_MS = 24 * 3_600_000;

/** What `resolveToken` reads from a validated token response. */
export interface TokenTiming {
  readonly accessToken: string;
  readonly expiresIn: unknown;
  readonly refreshIn: unknown;
  /** The cache key the entry will be stored under. */
  readonly cacheKey?: string;
  /** The granted scope, or the requested one when the response did not say. */
  readonly scope?: string | undefined;
  /** `DPoP` for a token bound to the source's DPoP key. */
  readonly tokenType?: "Bearer" | "DPoP";
}

/**
 * Returns the entry to store for a freshly issued token. Decodes a JWT once, here,
 * so that requests only compare numbers.
 */
export function resolveToken(timing: TokenTiming, sentAt: number, policy: ExpiryPolicy, random = Math.random): StoredToken {
  const fromExpiresIn = atLeastOneSecond(parseSeconds(timing.expiresIn));
  const fromExp = atLeastOneSecond(jwtLifetime(timing.accessToken, sentAt));
  let lifetime = fromExpiresIn ?? fromExp ?? DEFAULT_LIFETIME_MS;
  if (fromExpiresIn !== undefined && fromExp !== undefined) lifetime = Math.min(fromExpiresIn, fromExp);
  lifetime = Math.min(lifetime, MAX_LIFETIME_MS);

  const expiresAt = sentAt + lifetime;
  const margin = Math.min(policy.refreshMarginMs, lifetime / 2);
  let refreshAt = expiresAt - margin - random() * policy.refreshJitter * margin;
  const refreshIn = atLeastOneSecond(parseSeconds(timing.refreshIn));
  // Honour Entra's refresh_in, but not so early that a hostile value refreshes on every request.
  if (refreshIn !== undefined) refreshAt = Math.max(sentAt + lifetime / 10, Math.min(refreshAt, sentAt + refreshIn));
  const entry: StoredToken = { accessToken: timing.accessToken, expiresAt, refreshAt, obtainedAt: sentAt, cacheKey: timing.cacheKey ?? "" };
  return {
    ...entry,
    ...(timing.scope === undefined ? {} : { scope: timing.scope }),
    ...(timing.tokenType === "DPoP" ? { tokenType: "DPoP" as const } : {}),
  };
}

/** Sub-second lifetimes are garbage (5e-324 is a valid JSON number) and would refresh per request. */
function atLeastOneSecond(ms: number | undefined): number | undefined {
  return ms !== undefined && ms >= 1000 ? ms : undefined;
}

/**
 * From its refresh point on, a token is still served, and one background refresh starts (the soft
 * margin: `refreshMarginMs`, at most half the lifetime, jittered, or Entra's `refresh_in`).
 */
export function shouldRefresh(token: StoredToken, at: number): boolean {
  return at >= token.refreshAt;
}

/**
 * Inside the hard buffer before expiry (`expiryBufferMs`, at most a tenth of the lifetime), past
 * expiry, or with the clock more than a minute before the token was obtained, a token is not served:
 * callers wait for a new one.
 *
 * A token another replica stored may look obtained a little in the future, since replicas' clocks
 * differ by a few seconds; that is tolerated, expiry is what matters. A clock that stepped back
 * further than that would make the token look valid for longer than it is, so it is refetched.
 */
export function mustRefresh(token: StoredToken, at: number, expiryBufferMs: number): boolean {
  const buffer = Math.min(expiryBufferMs, (token.expiresAt - token.obtainedAt) / 10);
  return at >= token.expiresAt - buffer || at < token.obtainedAt - CLOCK_SKEW_TOLERANCE_MS;
}

/** How far another replica's clock may run ahead of ours before its tokens look suspicious. */
export const CLOCK_SKEW_TOLERANCE_MS = 60_000;

/** Where a token stands at `at`: the two rules above in one word, for tests and events. */
export type Freshness = "fresh" | "refresh-due" | "expired";

/** Classifies a token by {@link mustRefresh} and {@link shouldRefresh}. */
export function freshness(token: StoredToken, at: number, expiryBufferMs: number): Freshness {
  if (mustRefresh(token, at, expiryBufferMs)) return "expired";
  return shouldRefresh(token, at) ? "refresh-due" : "fresh";
}

/** `expires_in`/`refresh_in` as ms: a positive finite number or numeric string (PayPal, Entra v1 send strings), else undefined. */
export function parseSeconds(value: unknown): number | undefined {
  let seconds: number;
  if (typeof value === "number") seconds = value;
  else if (typeof value === "string" && /^\s*\d+(\.\d+)?\s*$/.test(value)) seconds = Number(value);
  else return undefined;
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
}

/**
 * Lifetime from a JWT `exp`, or undefined. Tokens are opaque to clients (RFC 9068 §6, Entra):
 * anything that is not a three-part JWT with a finite numeric `exp` is simply ignored, and
 * nothing in the header (`alg`, `jku`) is ever looked at.
 */
function jwtLifetime(accessToken: string, sentAt: number): number | undefined {
  if (accessToken.split(".").length !== 3) return undefined;
  let exp: unknown;
  try {
    exp = jwtDecode<{ exp?: unknown }>(accessToken).exp;
  } catch {
    return undefined;
  }
  if (typeof exp !== "number" || !Number.isFinite(exp)) return undefined;
  const lifetime = exp * 1000 - sentAt;
  // An exp already past while the server just issued the token means our clock runs ahead:
  // believing it would refetch on every request.
  return lifetime > 0 ? lifetime : undefined;
}
