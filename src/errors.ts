/**
 * Error classes. None of them ever holds the client secret, the client assertion, a Basic
 * credential, the form body or an access token: they copy the few facts a caller needs
 * (status, RFC 6749 §5.2 fields, a low-level error code) instead of attaching the axios
 * error of the token request, whose `config` carries the secret.
 */

/** Stable codes carried by every {@link TokenRefreshError}; branch on these, not on messages. */
export type TokenRefreshErrorCode =
  | "ERR_TOKEN_REQUEST"
  | "ERR_TOKEN_NETWORK"
  | "ERR_TOKEN_TIMEOUT"
  | "ERR_TOKEN_THROTTLED"
  | "ERR_INVALID_TOKEN_RESPONSE"
  | "ERR_TOKEN_ABORTED"
  | "ERR_DISPOSED"
  | "ERR_ORIGIN_NOT_CONFIGURED"
  | "ERR_CLIENT_CREDENTIAL"
  | "ERR_DPOP_REQUIRED"
  | DiscoveryErrorCode;

/** Codes of a {@link DiscoveryError}: unusable metadata, an issuer that is not the one configured, a credential the server does not take. */
export type DiscoveryErrorCode = "ERR_DISCOVERY" | "ERR_ISSUER_MISMATCH" | "ERR_AUTH_METHOD_UNSUPPORTED";

/** Codes of the `TypeError`s thrown for bad options. */
export type InvalidOptionCode = "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE";

const MAX_SERVER_TEXT = 300;

/** Strips control characters from text the server chose and caps its length (RFC 6749 §5.2): the server's text ends up in logs. */
export function sanitizeServerText(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
  if (clean === "") return undefined;
  return clean.length > MAX_SERVER_TEXT ? `${clean.slice(0, MAX_SERVER_TEXT)}…` : clean;
}

/** Base class of every error this library raises at runtime; `code` is stable across releases. */
export class TokenRefreshError extends Error {
  /** Stable, machine-readable error code. */
  readonly code: TokenRefreshErrorCode;

  constructor(message: string, code: TokenRefreshErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    Error.captureStackTrace?.(this, new.target);
  }
}

/** Details copied from a failed token request; never the request itself. */
export interface TokenRequestErrorDetails {
  /** HTTP status of the token endpoint's answer, when there was one. */
  status?: number | undefined;
  /** RFC 6749 §5.2 `error`, e.g. `invalid_client`. */
  error?: string | undefined;
  /** RFC 6749 §5.2 `error_description`, control characters stripped and length capped. */
  errorDescription?: string | undefined;
  /** RFC 6749 §5.2 `error_uri`. */
  errorUri?: string | undefined;
  /** How long the endpoint asked us to wait (`Retry-After`), in ms. */
  retryAfterMs?: number | undefined;
  /** Low-level network error code such as `ECONNREFUSED`, when the request never got an answer. */
  networkCode?: string | undefined;
}

/** The token endpoint refused, failed, throttled or could not be reached. */
export class TokenRequestError extends TokenRefreshError {
  /** HTTP status, when the endpoint answered. */
  readonly status: number | undefined;
  /** RFC 6749 §5.2 `error` code from the body, when present. */
  readonly error: string | undefined;
  /** RFC 6749 §5.2 `error_description`, sanitized. */
  readonly errorDescription: string | undefined;
  /** RFC 6749 §5.2 `error_uri`, sanitized. */
  readonly errorUri: string | undefined;
  /** Milliseconds the endpoint asked to wait before trying again (throttling). */
  readonly retryAfterMs: number | undefined;
  /** Low-level network error code (`ECONNREFUSED`, `ECONNRESET`, …), when there was no answer. */
  readonly networkCode: string | undefined;

  constructor(message: string, code: TokenRefreshErrorCode, details: TokenRequestErrorDetails = {}) {
    super(message, code);
    this.status = details.status;
    this.error = details.error;
    this.errorDescription = details.errorDescription;
    this.errorUri = details.errorUri;
    this.retryAfterMs = details.retryAfterMs;
    this.networkCode = details.networkCode;
  }
}

/** Details of a {@link DiscoveryError}. */
export interface DiscoveryErrorDetails {
  /** The metadata URL asked last. */
  metadataUrl?: string | undefined;
  /** HTTP status of the metadata answer, when there was one. */
  status?: number | undefined;
  /** The configured `issuer`. */
  expectedIssuer?: string | undefined;
  /** The `issuer` the metadata document states, sanitized. */
  receivedIssuer?: string | undefined;
  /** `token_endpoint_auth_methods_supported` of the metadata. */
  supportedMethods?: readonly string[] | undefined;
}

/**
 * Reading the issuer's metadata failed (RFC 8414, OpenID Connect Discovery): the document is missing
 * or unusable, names another issuer, or lists no client authentication method the credential can use.
 * No token request was sent. Transport failures of the metadata request are {@link TokenRequestError}s
 * with the network codes.
 */
export class DiscoveryError extends TokenRequestError {
  /** The metadata URL asked last. */
  readonly metadataUrl: string | undefined;
  /** The configured `issuer` (with `ERR_ISSUER_MISMATCH`). */
  readonly expectedIssuer: string | undefined;
  /** The `issuer` the document states (with `ERR_ISSUER_MISMATCH`). */
  readonly receivedIssuer: string | undefined;
  /** What the server lists in `token_endpoint_auth_methods_supported` (with `ERR_AUTH_METHOD_UNSUPPORTED`). */
  readonly supportedMethods: readonly string[] | undefined;

  constructor(message: string, code: DiscoveryErrorCode, details: DiscoveryErrorDetails = {}) {
    super(message, code, { status: details.status });
    this.metadataUrl = details.metadataUrl;
    this.expectedIssuer = details.expectedIssuer;
    this.receivedIssuer = details.receivedIssuer;
    this.supportedMethods = details.supportedMethods;
  }
}

/** The token endpoint answered 2xx with a body that cannot be used; the message names the field. */
export class InvalidTokenResponseError extends TokenRefreshError {
  /** The response member at fault, e.g. `access_token`. */
  readonly field: string;

  constructor(field: string, problem: string) {
    super(`token endpoint response is unusable: "${field}" ${problem}`, "ERR_INVALID_TOKEN_RESPONSE");
    this.field = field;
  }
}

/** A bad option given to `createTokenRefreshInterceptor`; thrown at construction. */
export class InvalidOptionError extends TypeError {
  /** `ERR_INVALID_ARG_TYPE` for a wrong type, `ERR_INVALID_ARG_VALUE` for a wrong value. */
  readonly code: InvalidOptionCode;

  constructor(message: string, code: InvalidOptionCode = "ERR_INVALID_ARG_VALUE") {
    super(message);
    this.name = "InvalidOptionError";
    this.code = code;
  }
}

const CODES: ReadonlySet<string> = new Set<TokenRefreshErrorCode>([
  "ERR_TOKEN_REQUEST",
  "ERR_TOKEN_NETWORK",
  "ERR_TOKEN_TIMEOUT",
  "ERR_TOKEN_THROTTLED",
  "ERR_INVALID_TOKEN_RESPONSE",
  "ERR_TOKEN_ABORTED",
  "ERR_DISPOSED",
  "ERR_ORIGIN_NOT_CONFIGURED",
  "ERR_CLIENT_CREDENTIAL",
  "ERR_DPOP_REQUIRED",
  "ERR_DISCOVERY",
  "ERR_ISSUER_MISMATCH",
  "ERR_AUTH_METHOD_UNSUPPORTED",
]);

/**
 * Returns true for any error raised by this library, also across the ESM/CJS dual-package
 * boundary where `instanceof` fails (both copies loaded).
 */
export function isTokenRefreshError(error: unknown): error is TokenRefreshError {
  if (error instanceof TokenRefreshError) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return (
    typeof code === "string" && CODES.has(code) && /^(TokenRefresh|TokenRequest|InvalidTokenResponse|Discovery)Error$/.test(error.name)
  );
}
