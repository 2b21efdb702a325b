/**
 * Where the token may go. The final URL is worked out as axios's adapter will (buildFullPath:
 * an absolute or protocol-relative `url` overrides `baseURL`, CVE-2025-27152), parsed with
 * WHATWG `URL`, and its exact origin compared with the allowed set: no prefix or substring
 * tests, which `https://api.example.com.evil.test` would pass. Redirects to other origins lose the header.
 */
import { InvalidOptionError, TokenRefreshError } from "./errors.js";

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** Returns true for hosts that never leave the machine: localhost, 127.0.0.0/8, [::1]. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOST.test(hostname);
}

/**
 * Parses a URL the user configured and refuses what must never carry a credential:
 * other schemes, userinfo, fragments, and cleartext `http:` off the machine (RFC 6749 §3.2, §10.9).
 */
export function parseSecureUrl(name: string, value: string, allowInsecureHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidOptionError(`"${name}" must be an absolute URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new InvalidOptionError(`"${name}" must use https: (got ${url.protocol})`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new InvalidOptionError(`"${name}" must not contain credentials; use "clientId" and "clientSecret"`);
  }
  if (value.includes("#")) throw new InvalidOptionError(`"${name}" must not contain a fragment`);
  if (url.protocol === "http:" && !allowInsecureHttp && !isLoopbackHost(url.hostname)) {
    throw new InvalidOptionError(`"${name}" must use https: outside loopback hosts (set "allowInsecureHttp: true" to override)`);
  }
  return url;
}

/** The request fields that decide where it goes. */
export interface RequestTarget {
  url?: unknown;
  baseURL?: unknown;
  allowAbsoluteUrls?: unknown;
}

/** The `beforeRedirect` shape of axios's Node adapter (follow-redirects). */
export type RedirectHook = (
  options: Record<string, unknown>,
  responseDetails: { headers: Record<string, string>; statusCode: number },
  requestDetails?: { headers: Record<string, string>; url: string; method: string },
) => void;

/** Origins a token may go to, with the redirect hook that enforces them. */
export interface AllowedOrigins {
  readonly origins: ReadonlySet<string>;
  readonly stripOnRedirect: RedirectHook;
}

const ABSOLUTE_URL = /^([a-z][a-z\d+\-.]*:)?\/\//i; // axios helpers/isAbsoluteURL
const MAX_MEMO = 64;

/** Decides, per request, whether the token may be attached. */
export class OriginPolicy {
  readonly #configured: AllowedOrigins | undefined;
  readonly #allowInsecureHttp: boolean;
  /** baseURL → its origin and default allowed set; a service uses a handful of base URLs. */
  readonly #byBaseURL = new Map<string, { origin: string | undefined; allowed: AllowedOrigins | Error }>();
  /**
   * The last target {@link OriginPolicy.forRequest} judged, and its decision: one client's requests
   * mostly repeat it (same baseURL, relative urls), so a warm request compares a few fields instead
   * of parsing. `#lastUrl` is undefined for a relative url, whose decision depends on baseURL alone.
   */
  #lastBase: string | undefined;
  #lastUrl: string | undefined;
  #lastAllowAbsolute: unknown;
  #lastAllowed: AllowedOrigins | undefined;

  constructor(configured: ReadonlySet<string> | undefined, allowInsecureHttp: boolean) {
    this.#configured = configured === undefined ? undefined : allowedOrigins(configured);
    this.#allowInsecureHttp = allowInsecureHttp;
  }

  /** Whether a list of origins was configured (otherwise each request's `baseURL` decides). */
  get configured(): boolean {
    return this.#configured !== undefined;
  }

  /**
   * What the request interceptor asks: {@link OriginPolicy.allowedFor}, after the URL's own
   * credentials (userinfo, which axios turns into Basic: the caller's, so no token of ours), with
   * the last decision remembered. It is remembered only when it is a function of the fields compared:
   * a non-empty string baseURL (the page origin plays no part then, or was fixed when baseURL was
   * first seen), and for an absolute url the url itself and `allowAbsoluteUrls`. A throw is not remembered.
   */
  forRequest(target: RequestTarget): AllowedOrigins | undefined {
    const { baseURL, url } = target;
    if (typeof baseURL !== "string" || baseURL === "" || (url !== undefined && url !== null && typeof url !== "string")) {
      return this.#judge(target);
    }
    const absolute = typeof url === "string" && isAbsoluteUrl(url);
    if (
      baseURL === this.#lastBase &&
      (absolute ? url === this.#lastUrl && target.allowAbsoluteUrls === this.#lastAllowAbsolute : this.#lastUrl === undefined)
    ) {
      return this.#lastAllowed;
    }
    const allowed = this.#judge(target);
    this.#lastBase = baseURL;
    this.#lastUrl = absolute ? url : undefined;
    this.#lastAllowAbsolute = target.allowAbsoluteUrls;
    this.#lastAllowed = allowed;
    return allowed;
  }

  #judge(target: RequestTarget): AllowedOrigins | undefined {
    return hasUserinfo(target) ? undefined : this.allowedFor(target);
  }

  /**
   * Returns the allowed origins when the request may carry the token, `undefined` when it must go
   * without. Throws when nothing says which origins are allowed.
   */
  allowedFor(target: RequestTarget): AllowedOrigins | undefined {
    const base = typeof target.baseURL === "string" && target.baseURL !== "" ? this.#base(target.baseURL) : undefined;
    const allowed = this.#configured ?? base?.allowed;
    if (allowed === undefined) {
      throw new TokenRefreshError(
        'no origin is allowed to receive the token: give the axios instance a "baseURL" or list "allowedOrigins"',
        "ERR_ORIGIN_NOT_CONFIGURED",
      );
    }
    if (allowed instanceof Error) throw allowed;

    const url = target.url === undefined || target.url === null ? "" : String(target.url);
    if (!isAbsoluteUrl(url)) {
      // Joined to baseURL with a "/", so the origin is baseURL's whatever the url says.
      if (base !== undefined) return base.origin !== undefined && allowed.origins.has(base.origin) ? allowed : undefined;
      return allowed.origins.has(originOf(url, pageOrigin()) ?? "") ? allowed : undefined;
    }
    // An absolute url is judged as absolute even when allowAbsoluteUrls is false (axios 1.8.0–1.8.1 sent such URLs as they were).
    const origin = originOf(url, pageOrigin());
    if (origin === undefined || !allowed.origins.has(origin)) return undefined;
    if (target.allowAbsoluteUrls === false && base !== undefined && (base.origin === undefined || !allowed.origins.has(base.origin))) {
      return undefined;
    }
    return allowed;
  }

  #base(baseURL: string): { origin: string | undefined; allowed: AllowedOrigins | Error } {
    let memo = this.#byBaseURL.get(baseURL);
    if (memo === undefined) {
      const origin = originOf(baseURL, pageOrigin());
      memo = { origin, allowed: this.#defaultFor(baseURL, origin) };
      if (this.#byBaseURL.size >= MAX_MEMO) this.#byBaseURL.clear();
      this.#byBaseURL.set(baseURL, memo);
    }
    return memo;
  }

  #defaultFor(baseURL: string, origin: string | undefined): AllowedOrigins | Error {
    if (origin === undefined) {
      return new TokenRefreshError(`"baseURL" is not an http(s) URL; list "allowedOrigins"`, "ERR_ORIGIN_NOT_CONFIGURED");
    }
    const { protocol, hostname } = new URL(origin);
    if (protocol === "http:" && !this.#allowInsecureHttp && !isLoopbackHost(hostname)) {
      return new TokenRefreshError(
        `the token is only sent over https: (or to loopback hosts); "baseURL" ${JSON.stringify(stripQuery(baseURL))} is not (set "allowInsecureHttp: true" to override)`,
        "ERR_ORIGIN_NOT_CONFIGURED",
      );
    }
    return allowedOrigins(new Set([origin]));
  }
}

/**
 * Whether the URL the request goes to carries a user or password, which axios turns into Basic
 * credentials: the caller's own, so our token stays off. The url when absolute, else baseURL.
 */
function hasUserinfo(target: RequestTarget): boolean {
  const url = typeof target.url === "string" ? target.url : "";
  const full = isAbsoluteUrl(url) ? url : typeof target.baseURL === "string" ? target.baseURL : "";
  if (!full.includes("@")) return false;
  try {
    const parsed = new URL(full);
    return parsed.username !== "" || parsed.password !== "";
  } catch {
    return false;
  }
}

/** axios's isAbsoluteURL; a "/path" (the common url) is answered without the regular expression. */
function isAbsoluteUrl(url: string): boolean {
  if (url.charCodeAt(0) === 47 /* "/" */) return url.charCodeAt(1) === 47; // "//host" is protocol-relative: absolute
  return ABSOLUTE_URL.test(url);
}

/** Our hooks, each mapped to the user's hook it wraps (or undefined). */
const ourHooks = new WeakMap<RedirectHook, RedirectHook | undefined>();

/** Composes the user's own `beforeRedirect` with ours; ours runs last, so it has the final say. */
export function composeRedirectHook(allowed: AllowedOrigins, hook: unknown): RedirectHook {
  const user = userRedirectHook(hook);
  if (user === undefined) return allowed.stripOnRedirect;
  const composed: RedirectHook = (options, responseDetails, requestDetails) => {
    user(options, responseDetails, requestDetails);
    allowed.stripOnRedirect(options, responseDetails, requestDetails);
  };
  ourHooks.set(composed, user);
  return composed;
}

/** The user's own `beforeRedirect` inside `hook`, so a replayed config does not stack our hooks. */
export function userRedirectHook(hook: unknown): RedirectHook | undefined {
  if (typeof hook !== "function") return undefined;
  const ours = ourHooks.get(hook as RedirectHook);
  return ours === undefined && !ourHooks.has(hook as RedirectHook) ? (hook as RedirectHook) : ours;
}

function allowedOrigins(origins: ReadonlySet<string>): AllowedOrigins {
  const allowed: AllowedOrigins = {
    origins,
    stripOnRedirect(options) {
      const origin = redirectOrigin(options);
      if (origin !== undefined && origins.has(origin)) return;
      const headers = options.headers as Record<string, unknown> | undefined;
      if (headers === undefined) return;
      for (const name of Object.keys(headers)) {
        const lower = name.toLowerCase();
        // A DPoP proof names the URL it was made for, and goes with the token.
        if (lower === "authorization" || lower === "dpop") delete headers[name];
      }
    },
  };
  ourHooks.set(allowed.stripOnRedirect, undefined);
  return allowed;
}

function redirectOrigin(options: Record<string, unknown>): string | undefined {
  if (typeof options.href === "string") return originOf(options.href, undefined);
  if (typeof options.protocol !== "string" || typeof options.hostname !== "string") return undefined;
  const port = options.port === undefined || options.port === null || options.port === "" ? "" : `:${String(options.port)}`;
  const host = options.hostname.includes(":") && !options.hostname.startsWith("[") ? `[${options.hostname}]` : options.hostname;
  return originOf(`${options.protocol}//${host}${port}`, undefined);
}

/** The http(s) origin of `url` as WHATWG URL normalizes it, or undefined. */
function originOf(url: string, base: string | undefined): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url, base);
  } catch {
    return undefined;
  }
  return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.origin : undefined;
}

/** In browsers the adapter resolves relative URLs against the page; elsewhere there is no page. */
function pageOrigin(): string | undefined {
  const location = (globalThis as { location?: { origin?: unknown } }).location;
  return typeof location?.origin === "string" ? location.origin : undefined;
}

function stripQuery(url: string): string {
  return url.replace(/[?#].*$/, "");
}

/** The request fields that make the URL axios calls. */
export interface RequestUrlFields {
  readonly url?: unknown;
  readonly baseURL?: unknown;
  readonly allowAbsoluteUrls?: unknown;
}

/**
 * The URL axios will call, as its buildFullPath makes it: an absolute `url` as it is (unless
 * `allowAbsoluteUrls: false`), else `baseURL` and `url` joined with one "/". Params only add a query,
 * which `htu` leaves out. Undefined when it is not an absolute http(s) URL.
 */
export function requestUrl(config: RequestUrlFields): string | undefined {
  const url = typeof config.url === "string" ? config.url : "";
  const baseURL = typeof config.baseURL === "string" ? config.baseURL : "";
  const absolute = isAbsoluteUrl(url);
  const full = baseURL !== "" && (!absolute || config.allowAbsoluteUrls === false) ? joinUrl(baseURL, url) : url;
  try {
    const parsed = new URL(full);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : undefined;
  } catch {
    return undefined;
  }
}

function joinUrl(baseURL: string, url: string): string {
  return url === "" ? baseURL : `${baseURL.replace(/\/?\/$/, "")}/${url.replace(/^\/+/, "")}`;
}
