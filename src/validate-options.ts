/**
 * Turning what the user passed into validated {@link Settings}: every option checked once, at
 * construction, with an error that names the option and says what it must be.
 */
import { createAssertionSigner } from "./client-assertion.js";
import { createDpopKey, type DpopKey } from "./dpop.js";
import { InvalidOptionError } from "./errors.js";
import {
  DEFAULTS,
  type ClientAuthMethod,
  type RetryOptions,
  type Settings,
  type TokenHttpClient,
  type TokenRefreshOptions,
  type TokenSourceOptions,
} from "./options.js";
import { parseSecureUrl } from "./origin.js";
import { InMemoryTokenStore, type TokenStore } from "./store.js";

/** Every option name, for the unknown-name check; the type below keeps it in step with the option types. */
const OPTION_NAMES = [
  "tokenUrl",
  "tenantId",
  "authorityHost",
  "issuer",
  "clientId",
  "clientSecret",
  "clientAssertion",
  "clientCertificate",
  "clientAuthMethod",
  "scope",
  "extraParams",
  "store",
  "cacheKey",
  "refreshMarginMs",
  "expiryBufferMs",
  "refreshJitter",
  "httpClient",
  "timeoutMs",
  "retry",
  "allowedOrigins",
  "allowInsecureHttp",
  "replayStatuses",
  "onEvent",
  "dpop",
] as const;
type OptionName = (typeof OPTION_NAMES)[number];
/** The names only an interceptor has: where the token may go. */
const INTERCEPTOR_ONLY_NAMES: readonly OptionName[] = ["allowedOrigins", "replayStatuses"];
type KeysOfUnion<T> = T extends unknown ? keyof T : never;
// Fails to compile when an option is added to the types but not to OPTION_NAMES, or the other way round.
const optionNamesMatchTypes: [OptionName] extends [KeysOfUnion<TokenRefreshOptions>]
  ? [KeysOfUnion<TokenRefreshOptions>] extends [OptionName]
    ? true
    : never
  : never = true;
void optionNamesMatchTypes;
const RETRY_OPTION_NAMES: readonly (keyof RetryOptions)[] = ["attempts", "baseDelayMs", "maxDelayMs", "maxRetryAfterMs"];

type Raw = Partial<Record<OptionName, unknown>>;

/**
 * Validates options, reading own properties only so a polluted `Object.prototype` cannot inject any.
 * A token source takes all but the interceptor's own options (`allowedOrigins`, `replayStatuses`).
 */
export function normalizeOptions(options: TokenRefreshOptions | TokenSourceOptions, kind: "interceptor" | "source"): Settings {
  if (options === null || typeof options !== "object") {
    throw new InvalidOptionError("options must be an object", "ERR_INVALID_ARG_TYPE");
  }
  const raw = options as Raw;
  rejectUnknownNames(
    "",
    raw,
    kind === "interceptor" ? OPTION_NAMES : OPTION_NAMES.filter((name) => !INTERCEPTOR_ONLY_NAMES.includes(name)),
  );
  const own = (key: OptionName): unknown => (Object.hasOwn(raw, key) ? raw[key] : undefined);

  const allowInsecureHttp = optionalBoolean("allowInsecureHttp", own("allowInsecureHttp")) ?? false;
  const endpoint = resolveEndpoint(own("tokenUrl"), own("tenantId"), own("authorityHost"), own("issuer"), allowInsecureHttp);
  const clientId = requiredString("clientId", own("clientId"));
  const scope = normalizeScope(own("scope"));
  const extraParams = normalizeExtraParams(own("extraParams"));
  const credential = normalizeCredential(own("clientSecret"), own("clientAssertion"), own("clientCertificate"), own("clientAuthMethod"));

  const store = own("store") ?? new InMemoryTokenStore();
  if (!isTokenStore(store)) {
    throw new InvalidOptionError('"store" must have get, set and delete methods', "ERR_INVALID_ARG_TYPE");
  }
  const dpopOption = own("dpop");
  const dpop = dpopOption === undefined ? undefined : createDpopKey(dpopOption);
  const cacheKey = optionalString("cacheKey", own("cacheKey")) ?? defaultCacheKey(endpoint, clientId, scope, extraParams, credential, dpop);

  const httpClient = own("httpClient");
  if (httpClient !== undefined && typeof (httpClient as { request?: unknown }).request !== "function") {
    throw new InvalidOptionError('"httpClient" must be an axios instance', "ERR_INVALID_ARG_TYPE");
  }

  const retry = own("retry");
  if (retry !== undefined && (retry === null || typeof retry !== "object")) {
    throw new InvalidOptionError('"retry" must be an object', "ERR_INVALID_ARG_TYPE");
  }
  if (retry !== undefined) rejectUnknownNames("retry.", retry as Record<string, unknown>, RETRY_OPTION_NAMES);
  const ownRetry = (key: keyof RetryOptions): unknown =>
    retry !== undefined && Object.hasOwn(retry, key) ? (retry as Record<string, unknown>)[key] : undefined;

  return {
    endpoint,
    clientId,
    credential,
    scope,
    extraParams,
    store,
    cacheKey,
    refreshMarginMs: duration("refreshMarginMs", own("refreshMarginMs"), DEFAULTS.refreshMarginMs),
    expiryBufferMs: duration("expiryBufferMs", own("expiryBufferMs"), DEFAULTS.expiryBufferMs),
    refreshJitter: ratio("refreshJitter", own("refreshJitter"), DEFAULTS.refreshJitter),
    httpClient: httpClient as TokenHttpClient | undefined,
    timeoutMs: duration("timeoutMs", own("timeoutMs"), DEFAULTS.timeoutMs, 1),
    retry: {
      attempts: integer("retry.attempts", ownRetry("attempts"), DEFAULTS.retry.attempts, 1, 10),
      baseDelayMs: duration("retry.baseDelayMs", ownRetry("baseDelayMs"), DEFAULTS.retry.baseDelayMs),
      maxDelayMs: duration("retry.maxDelayMs", ownRetry("maxDelayMs"), DEFAULTS.retry.maxDelayMs),
      maxRetryAfterMs: duration("retry.maxRetryAfterMs", ownRetry("maxRetryAfterMs"), DEFAULTS.retry.maxRetryAfterMs),
    },
    allowedOrigins: normalizeOrigins(own("allowedOrigins"), allowInsecureHttp),
    allowInsecureHttp,
    replayStatuses: normalizeStatuses(own("replayStatuses")),
    onEvent: optionalFunction("onEvent", own("onEvent")) as Settings["onEvent"],
    dpop,
  };
}

function resolveEndpoint(
  tokenUrl: unknown,
  tenantId: unknown,
  authorityHost: unknown,
  issuer: unknown,
  allowInsecureHttp: boolean,
): Settings["endpoint"] {
  const given = [tokenUrl, tenantId, issuer].filter((value) => value !== undefined).length;
  if (given !== 1) {
    throw new InvalidOptionError(`exactly one of "tokenUrl", "tenantId" and "issuer" must be given (got ${given === 0 ? "none" : given})`);
  }
  if (authorityHost !== undefined && tenantId === undefined) {
    throw new InvalidOptionError('"authorityHost" goes with "tenantId" only');
  }
  if (tokenUrl !== undefined) {
    return { kind: "url", tokenUrl: parseSecureUrl("tokenUrl", requiredString("tokenUrl", tokenUrl), allowInsecureHttp).href };
  }
  if (issuer !== undefined) {
    const value = requiredString("issuer", issuer);
    const url = parseSecureUrl("issuer", value, allowInsecureHttp);
    // RFC 8414 §2: an issuer has no query or fragment. It is kept as given: the metadata must state it identically.
    if (url.search !== "" || value.includes("?")) throw new InvalidOptionError('"issuer" must not have a query');
    return { kind: "issuer", issuer: value };
  }
  const tenant = requiredString("tenantId", tenantId);
  if (!/^[A-Za-z0-9.-]+$/.test(tenant)) {
    throw new InvalidOptionError('"tenantId" must be a tenant id or domain name (letters, digits, "." and "-")');
  }
  const host = parseSecureUrl("authorityHost", optionalString("authorityHost", authorityHost) ?? DEFAULTS.authorityHost, allowInsecureHttp);
  return { kind: "url", tokenUrl: new URL(`${tenant}/oauth2/v2.0/token`, host.href.endsWith("/") ? host.href : `${host.href}/`).href };
}

function normalizeCredential(secret: unknown, assertion: unknown, certificate: unknown, method: unknown): Settings["credential"] {
  const given = [secret, assertion, certificate].filter((value) => value !== undefined).length;
  if (given !== 1) {
    throw new InvalidOptionError(
      `exactly one of "clientSecret", "clientAssertion" and "clientCertificate" must be given (got ${given === 0 ? "none" : given})`,
    );
  }
  if (secret === undefined && method !== undefined) {
    throw new InvalidOptionError('"clientAuthMethod" applies to "clientSecret" only');
  }
  if (certificate !== undefined) return { kind: "certificate", signer: createAssertionSigner(certificate) };
  if (assertion !== undefined) {
    if (typeof assertion === "function") {
      return { kind: "assertion", assertion: assertion as () => string | Promise<string>, fixed: false };
    }
    const value = requiredString("clientAssertion", assertion);
    return { kind: "assertion", assertion: () => value, fixed: true };
  }
  if (method !== undefined && method !== "client_secret_post" && method !== "client_secret_basic") {
    throw new InvalidOptionError('"clientAuthMethod" must be "client_secret_post" or "client_secret_basic"');
  }
  return { kind: "secret", secret: requiredString("clientSecret", secret), method: method as ClientAuthMethod | undefined };
}

function normalizeScope(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const parts = typeof value === "string" ? [value] : Array.isArray(value) ? (value as unknown[]) : undefined;
  if (parts === undefined || parts.some((part) => typeof part !== "string")) {
    throw new InvalidOptionError('"scope" must be a string or an array of strings', "ERR_INVALID_ARG_TYPE");
  }
  const joined = (parts as string[])
    .map((part) => part.trim())
    .filter(Boolean)
    .join(" ");
  return joined === "" ? undefined : joined;
}

const RESERVED_PARAMS = new Set(["grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type", "scope"]);

function normalizeExtraParams(value: unknown): Readonly<Record<string, string>> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidOptionError('"extraParams" must be an object of strings', "ERR_INVALID_ARG_TYPE");
  }
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const key of Object.keys(value)) {
    const param = (value as Record<string, unknown>)[key];
    if (typeof param !== "string") {
      throw new InvalidOptionError(`"extraParams.${key}" must be a string`, "ERR_INVALID_ARG_TYPE");
    }
    if (RESERVED_PARAMS.has(key)) {
      throw new InvalidOptionError(`"extraParams.${key}" is set by the library; use the matching option instead`);
    }
    params[key] = param;
  }
  return Object.freeze(params);
}

function normalizeOrigins(value: unknown, allowInsecureHttp: boolean): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    throw new InvalidOptionError('"allowedOrigins" must be a non-empty array of origins', "ERR_INVALID_ARG_TYPE");
  }
  const origins = new Set<string>();
  for (const [index, entry] of (value as unknown[]).entries()) {
    const name = `allowedOrigins[${index}]`;
    const url = parseSecureUrl(name, requiredString(name, entry), allowInsecureHttp);
    if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "") {
      throw new InvalidOptionError(`"${name}" must be an origin (scheme, host, port) without a path`);
    }
    origins.add(url.origin);
  }
  return origins;
}

function normalizeStatuses(value: unknown): ReadonlySet<number> {
  if (value === undefined) return new Set(DEFAULTS.replayStatuses);
  if (!Array.isArray(value) || !value.every((s) => Number.isInteger(s) && (s as number) >= 400 && (s as number) <= 499)) {
    throw new InvalidOptionError('"replayStatuses" must be an array of 4xx status codes');
  }
  return new Set(value as number[]);
}

/**
 * The store key: what makes two configurations interchangeable. Scopes are a set, so they are sorted.
 * A secret's fingerprint keeps the replicas with the old and the new secret of a rotation apart; it
 * is 32 bits of FNV-1a, far too short to confirm a guess of the secret with.
 */
function defaultCacheKey(
  endpoint: Settings["endpoint"],
  clientId: string,
  scope: string | undefined,
  extraParams: Readonly<Record<string, string>>,
  credential: Settings["credential"],
  dpop: DpopKey | undefined,
): string {
  const scopes = scope === undefined ? [] : scope.split(" ").sort();
  const params = Object.keys(extraParams)
    .sort()
    .map((key) => [key, extraParams[key]]);
  const parts: unknown[] = [endpoint.kind === "url" ? endpoint.tokenUrl : `issuer:${endpoint.issuer}`, clientId, scopes, params];
  if (credential.kind === "secret") parts.push(`secret:${fnv1a32(new TextEncoder().encode(credential.secret))}`);
  if (credential.kind === "certificate") parts.push(`key:${fnv1a32(credential.signer.identity)}`);
  // A DPoP-bound token works only with its key: the key's thumbprint (or this source's own id) keeps it apart.
  if (dpop !== undefined) parts.push(`dpop:${dpop.cacheId}`);
  return `axios-token-refresh:${JSON.stringify(parts)}`;
}

function fnv1a32(bytes: Uint8Array): string {
  let hash = 0x811c9dc5;
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

/** Throws for a name that is no option, naming the closest one (a JavaScript caller's `scopes` typo). */
function rejectUnknownNames(prefix: string, value: object, known: readonly string[]): void {
  for (const name of Object.keys(value)) {
    if (known.includes(name)) continue;
    const closest = closestName(name, known);
    const hint =
      closest === undefined
        ? `; the options are ${known.map((k) => `"${prefix}${k}"`).join(", ")}`
        : `; did you mean "${prefix}${closest}"?`;
    throw new InvalidOptionError(`unknown option "${prefix}${name}"${hint}`);
  }
}

function closestName(name: string, known: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (best === undefined || distance < best.distance) best = { name: candidate, distance };
  }
  return best !== undefined && best.distance <= Math.max(2, Math.floor(name.length / 3)) ? best.name : undefined;
}

/** Levenshtein distance, for option names (a few dozen characters). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const row = [i];
    for (let j = 1; j <= b.length; j += 1) {
      row[j] = Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

function isTokenStore(value: unknown): value is TokenStore {
  if (value === null || typeof value !== "object") return false;
  const store = value as Record<string, unknown>;
  return typeof store.get === "function" && typeof store.set === "function" && typeof store.delete === "function";
}

function requiredString(name: string, value: unknown): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new InvalidOptionError(
      `"${name}" must be a non-empty string`,
      typeof value === "string" ? "ERR_INVALID_ARG_VALUE" : "ERR_INVALID_ARG_TYPE",
    );
  }
  return value;
}

function optionalString(name: string, value: unknown): string | undefined {
  return value === undefined ? undefined : requiredString(name, value);
}

function optionalBoolean(name: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw new InvalidOptionError(`"${name}" must be a boolean`, "ERR_INVALID_ARG_TYPE");
}

function optionalFunction(name: string, value: unknown): unknown {
  if (value === undefined || typeof value === "function") return value;
  throw new InvalidOptionError(`"${name}" must be a function`, "ERR_INVALID_ARG_TYPE");
}

const MAX_TIMER_MS = 2 ** 31 - 1; // Node runs a longer timer delay after 1 ms instead

/** Validates a duration option (ms, within what a timer can wait); `fallback` when it is not given. */
export function duration(name: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > MAX_TIMER_MS) {
    throw new InvalidOptionError(`"${name}" must be a number of milliseconds from ${min} to ${MAX_TIMER_MS}`);
  }
  return value;
}

function integer(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`"${name}" must be an integer from ${min} to ${max}`);
  }
  return value;
}

function ratio(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new InvalidOptionError(`"${name}" must be a number from 0 to 1`);
  }
  return value;
}
