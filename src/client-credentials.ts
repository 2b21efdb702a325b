/**
 * One client-credentials token request (RFC 6749 §4.4) and the strict reading of its answer
 * (§5.1, §5.2). Nothing here caches or retries; nothing here lets the secret out: every
 * status is handled without an AxiosError, and network errors are copied, not attached.
 */
import type { TokenEndpoint } from "./discovery.js";
import { DEFAULTS, type Settings, type TokenHttpClient, type TokenHttpRequest } from "./options.js";
import qs from "qs";
import { base64 } from "./encoding.js";
import { DiscoveryError, InvalidTokenResponseError, TokenRequestError, sanitizeServerText, type TokenRefreshErrorCode } from "./errors.js";
import { parseRetryAfter } from "./retry.js";

/** The RFC 6749 §5.1 members we use, as validated; unknown members are ignored. */
export interface TokenEndpointResponse {
  /** The HTTP status it came with (2xx). */
  readonly status: number;
  readonly access_token: string;
  /** `DPoP` only for a DPoP-bound token, with DPoP on. */
  readonly token_type: "Bearer" | "DPoP";
  readonly expires_in?: unknown;
  readonly refresh_in?: unknown;
  /** The granted scope, when the server said (it must when it differs from the requested one). */
  readonly scope?: string | undefined;
}

/** What a token request resolves to: the status, the body (text) and the headers, of whichever axios copy sent it. */
type TokenHttpResponse = Awaited<ReturnType<TokenHttpClient["request"]>>;

/** What one request needs from the caller: the remaining budget and a way to stop it. */
export interface AttemptLimits {
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

const MAX_RESPONSE_BYTES = 1024 * 1024; // golang/oauth2 reads at most 1 MiB
const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SCOPE = /^[\x20-\x7e]{1,4096}$/; // scope-tokens are visible ASCII (RFC 6749 §3.3); a cap for a hostile server
const HEADER_SAFE_TOKEN = /^[\x21-\x7e]+$/; // visible ASCII only: a space, CR, LF or NUL would let the token split or smuggle headers

/**
 * Sends one token request and returns the validated response.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4.2
 */
export async function requestToken(
  client: TokenHttpClient,
  settings: Settings,
  endpoint: TokenEndpoint,
  limits: AttemptLimits,
): Promise<TokenEndpointResponse> {
  const { body, authorization } = await buildRequest(settings, endpoint);
  const { dpop } = settings;
  // With DPoP a server may ask for its nonce first (RFC 9449 §8): one more send with it, never a loop.
  for (let send = 1; ; send += 1) {
    const headers: Record<string, string | false> = {
      "Content-Type": "application/x-www-form-urlencoded",
      Accept: "application/json",
      // Exactly one client authentication method (RFC 6749 §2.3): an Authorization inherited from
      // axios.defaults or the httpClient's defaults must not ride along with a body secret.
      Authorization: authorization ?? false,
    };
    if (dpop !== undefined) headers.DPoP = await dpop.proof({ method: "POST", url: endpoint.tokenUrl });
    let response: TokenHttpResponse;
    try {
      response = await client.request({ method: "POST", url: endpoint.tokenUrl, data: body, headers, ...boundedRequest(limits) });
    } catch (error) {
      throw networkError(error, limits.signal, TOKEN_ENDPOINT);
    }
    const newNonce = dpop?.rememberNonce(endpoint.tokenUrl, headerValue(response, "dpop-nonce")) ?? false;
    if (send === 1 && newNonce && response.status === 400 && parseJsonObject(response.data)?.error === "use_dpop_nonce") continue;
    return readResponse(response, {
      fromIssuer: endpoint.discovered,
      dpop: dpop === undefined ? undefined : { allowBearer: dpop.allowBearer },
    });
  }
}

/**
 * The bounds every request of ours has: no redirects, the budget's time, the caller's signal, a size
 * cap, the body as text, and every status resolved.
 */
export function boundedRequest(limits: AttemptLimits): Omit<TokenHttpRequest, "method" | "url" | "data" | "headers"> {
  return {
    // A 307/308 would re-send the body, secret included, to wherever it points. maxRedirects stops
    // the http adapter; the fetch adapter of axios before 1.20 ignores it, so fetch is told as well.
    maxRedirects: 0,
    fetchOptions: { redirect: "error" },
    timeout: Math.max(1, Math.ceil(limits.timeoutMs)),
    signal: limits.signal,
    maxContentLength: MAX_RESPONSE_BYTES,
    maxBodyLength: MAX_RESPONSE_BYTES,
    responseType: "text",
    transformResponse: [(data: unknown) => data],
    // Every status is read here, so axios never builds an error around this request's config.
    validateStatus: () => true,
  };
}

async function buildRequest(settings: Settings, endpoint: TokenEndpoint): Promise<{ body: string; authorization: string | undefined }> {
  const params: Record<string, string> = { grant_type: "client_credentials" };
  if (settings.scope !== undefined) params.scope = settings.scope;
  Object.assign(params, settings.extraParams);
  const { credential } = settings;
  const method = authMethodFor(credential, endpoint);
  let authorization: string | undefined;
  if (credential.kind !== "secret") {
    // Assertions are short-lived: a fresh one for every request, retries included.
    const assertion =
      credential.kind === "certificate" ? await credential.signer.sign(settings.clientId, endpoint.tokenUrl) : await credential.assertion();
    if (typeof assertion !== "string" || assertion === "") {
      throw new TypeError('"clientAssertion" must return a non-empty string');
    }
    params.client_id = settings.clientId;
    params.client_assertion_type = ASSERTION_TYPE;
    params.client_assertion = assertion;
  } else if (method === "client_secret_basic") {
    // Form-encode each part before base64 (RFC 6749 §2.3.1, Appendix B); axios's `auth` does not, and a secret with `:` or `+` would arrive changed.
    authorization = `Basic ${base64(`${formEncode(settings.clientId)}:${formEncode(credential.secret)}`)}`;
  } else {
    params.client_id = settings.clientId;
    params.client_secret = credential.secret;
  }
  return { body: qs.stringify(params, { format: "RFC1738" }), authorization };
}

/**
 * The client authentication method of one token request: a secret's configured method; else with
 * metadata, post if listed and basic otherwise (also when nothing is listed: RFC 8414's default);
 * else post. A credential that the server's list does not allow is an error before anything is sent.
 */
function authMethodFor(credential: Settings["credential"], endpoint: TokenEndpoint): string {
  const listed = endpoint.authMethods;
  let method: string;
  let acceptable: readonly string[];
  if (credential.kind === "secret") {
    const fallback = endpoint.discovered ? "client_secret_basic" : DEFAULTS.clientAuthMethod; // RFC 8414 §2: unlisted means basic
    method =
      credential.method ??
      (listed === undefined ? fallback : listed.includes("client_secret_post") ? "client_secret_post" : "client_secret_basic");
    acceptable = [method];
  } else {
    method = "private_key_jwt";
    // A caller's own assertion may be an HMAC one (client_secret_jwt); ours is always signed with a private key.
    acceptable = credential.kind === "assertion" ? ["private_key_jwt", "client_secret_jwt"] : ["private_key_jwt"];
  }
  if (listed !== undefined && !acceptable.some((candidate) => listed.includes(candidate))) {
    const what =
      credential.kind === "secret"
        ? method
        : credential.kind === "certificate"
          ? '"clientCertificate" (private_key_jwt)'
          : '"clientAssertion"';
    throw new DiscoveryError(
      `the authorization server does not accept ${what} at its token endpoint; it lists ${listed.length === 0 ? "nothing" : listed.join(", ")} in token_endpoint_auth_methods_supported`,
      "ERR_AUTH_METHOD_UNSUPPORTED",
      { supportedMethods: [...listed] },
    );
  }
  return method;
}

function formEncode(value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, "+");
}

/** What reading a token response depends on: where the endpoint came from, and whether DPoP is on. */
export interface ResponseContext {
  readonly fromIssuer: boolean;
  readonly dpop?: { readonly allowBearer: boolean } | undefined;
}

/** Validates a token endpoint's answer (RFC 6749 §5.1, §5.2): the token, or a coded error. */
export function readResponse(response: TokenHttpResponse, context: ResponseContext = { fromIssuer: false }): TokenEndpointResponse {
  const { status } = response;
  const body = parseJsonObject(response.data);
  const retryAfterMs = parseRetryAfter(headerValue(response, "retry-after"));
  if (status < 200 || status > 299 || (body !== undefined && body.error !== undefined)) {
    // An `error` member is a failure even in a 200 (golang/oauth2 treats it so too).
    const error = sanitizeServerText(body?.error);
    const errorDescription = sanitizeServerText(body?.error_description);
    const what = [error, errorDescription].filter(Boolean).join(": ");
    let code: TokenRefreshErrorCode =
      status === 429 || (status === 503 && retryAfterMs !== undefined) ? "ERR_TOKEN_THROTTLED" : "ERR_TOKEN_REQUEST";
    let hint = "";
    if (context.dpop === undefined && asksForDpop(status, error, errorDescription)) {
      code = "ERR_DPOP_REQUIRED";
      hint =
        error === "invalid_grant"
          ? ' (the answer of a server that requires DPoP-bound tokens from this client, such as oidc-provider: if it is registered for DPoP, set "dpop: true")'
          : ' (this client must prove possession of a key: set "dpop: true")';
    } else if (status >= 300 && status <= 399)
      hint = ' (redirects are not followed, since the secret would go along: set "tokenUrl" to the final URL)';
    // An identity provider's 404 page: the issuer (or its login page) pasted as the token endpoint.
    else if (status === 404 && body === undefined && !context.fromIssuer && looksLikeHtml(response))
      hint = ' (is "tokenUrl" the issuer? pass it as "issuer", and the token endpoint is read from its metadata)';
    throw new TokenRequestError(`token endpoint responded ${status}${what === "" ? "" : ` ${what}`}${hint}`, code, {
      status,
      error,
      errorDescription,
      errorUri: sanitizeServerText(body?.error_uri),
      retryAfterMs,
    });
  }
  if (body === undefined) {
    throw new InvalidTokenResponseError("body", "must be a JSON object");
  }
  const accessToken = body.access_token;
  if (typeof accessToken !== "string" || accessToken === "") {
    throw new InvalidTokenResponseError("access_token", "must be a non-empty string");
  }
  if (!HEADER_SAFE_TOKEN.test(accessToken)) {
    throw new InvalidTokenResponseError("access_token", "must not contain whitespace, control or non-ASCII characters");
  }
  // Missing token_type is taken as Bearer, as golang does. DPoP only with a key to prove; MAC and others never.
  const tokenType = readTokenType(body.token_type ?? "Bearer", context.dpop);
  // The granted scope (RFC 6749 §3.3, §5.1): space-separated scope tokens; anything else is read as absent.
  const scope = typeof body.scope === "string" && SCOPE.test(body.scope) ? body.scope.trim().split(/ +/).join(" ") : undefined;
  return { status, access_token: accessToken, token_type: tokenType, expires_in: body.expires_in, refresh_in: body.refresh_in, scope };
}

function readTokenType(value: unknown, dpop: ResponseContext["dpop"]): "Bearer" | "DPoP" {
  const type = typeof value === "string" ? value.toLowerCase() : undefined;
  const got = JSON.stringify(sanitizeServerText(String(value)));
  if (dpop !== undefined) {
    if (type === "dpop") return "DPoP";
    if (type === "bearer" && dpop.allowBearer) return "Bearer";
    const why = type === "bearer" ? ': the server did not bind the token to the key (set "dpop.allowBearer" to accept that)' : "";
    throw new InvalidTokenResponseError("token_type", `must be "DPoP" (got ${got})${why}`);
  }
  if (type === "bearer") return "Bearer";
  const why = type === "dpop" ? ': the server binds this client\'s tokens to a key (set "dpop: true")' : "";
  throw new InvalidTokenResponseError("token_type", `must be "Bearer" (got ${got})${why}`);
}

/**
 * A refusal that says, or as good as says, that the client must send DPoP proofs: `invalid_dpop_proof`
 * or `use_dpop_nonce` (RFC 9449 §5, §8), a description naming DPoP, or `invalid_grant` to a
 * client-credentials request, which has no grant to be invalid: oidc-provider answers a DPoP-bound
 * client without a proof so, keeping the reason off the wire.
 */
function asksForDpop(status: number, error: string | undefined, description: string | undefined): boolean {
  if (status !== 400 && status !== 401) return false;
  return error === "invalid_dpop_proof" || error === "use_dpop_nonce" || error === "invalid_grant" || /\bdpop\b/i.test(description ?? "");
}

function looksLikeHtml(response: TokenHttpResponse): boolean {
  const contentType = headerValue(response, "content-type") ?? "";
  return /html/i.test(contentType) || (typeof response.data === "string" && /^\s*</.test(response.data));
}

function parseJsonObject(data: unknown): Record<string, unknown> | undefined {
  if (typeof data !== "string") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return undefined;
  }
  return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}

function headerValue(response: TokenHttpResponse, name: string): string | undefined {
  const headers = response.headers as Record<string, unknown> | { get?: (name: string) => unknown } | undefined;
  const value = typeof headers?.get === "function" ? headers.get(name) : (headers as Record<string, unknown> | undefined)?.[name];
  return typeof value === "string" ? value : undefined;
}

/** fetch's `redirect: "error"` rejects with a TypeError whose cause says "unexpected redirect". */
function isRefusedRedirect(error: unknown): boolean {
  for (let current = error, depth = 0; current !== null && typeof current === "object" && depth < 4; depth += 1) {
    const message = (current as { message?: unknown }).message;
    if (typeof message === "string" && /redirect/i.test(message)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** What a transport failure is reported of: the token endpoint, or the metadata URL. */
export interface RequestSubject {
  /** "token endpoint", or "authorization server metadata at <url>". */
  readonly name: string;
  /** What to do about a redirect. */
  readonly onRedirect: string;
}

const TOKEN_ENDPOINT: RequestSubject = {
  name: "token endpoint",
  onRedirect: 'which is not followed since the secret would go along: set "tokenUrl" to the final URL',
};

/** Copies what is useful from a transport failure; the axios error itself carries the secret. */
export function networkError(error: unknown, signal: AbortSignal, subject: RequestSubject): TokenRequestError {
  const networkCode = typeof (error as { code?: unknown })?.code === "string" ? (error as { code: string }).code : undefined;
  if (signal.aborted || networkCode === "ERR_CANCELED") {
    return new TokenRequestError(`the request to the ${subject.name} was cancelled`, "ERR_TOKEN_ABORTED", { networkCode });
  }
  if (networkCode === "ECONNABORTED" || networkCode === "ETIMEDOUT") {
    return new TokenRequestError(`${subject.name} did not answer in time`, "ERR_TOKEN_TIMEOUT", { networkCode });
  }
  if (isRefusedRedirect(error)) {
    return new TokenRequestError(`${subject.name} answered with a redirect, ${subject.onRedirect}`, "ERR_TOKEN_REQUEST", { networkCode });
  }
  if (networkCode === "ERR_FR_MAX_BODY_LENGTH_EXCEEDED" || networkCode === "ERR_BAD_RESPONSE") {
    return new TokenRequestError(`${subject.name} answered with a body larger than 1 MiB`, "ERR_TOKEN_REQUEST", { networkCode });
  }
  return new TokenRequestError(`${subject.name} could not be reached${networkCode ? ` (${networkCode})` : ""}`, "ERR_TOKEN_NETWORK", {
    networkCode,
  });
}
