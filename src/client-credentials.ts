/**
 * One client-credentials token request (RFC 6749 §4.4) and the strict reading of its answer
 * (§5.1, §5.2). Nothing here caches or retries; nothing here lets the secret out: every
 * status is handled without an AxiosError, and network errors are copied, not attached.
 */
import type { TokenEndpoint } from "./discovery.js";
import { DEFAULTS, type Settings, type TokenHttpClient, type TokenHttpRequest } from "./options.js";
import qs from "qs";
import { base64 } from "./encoding.js";
import { DiscoveryError, InvalidTokenResponseError, TokenRequestError, sanitizeServerText } from "./errors.js";
import { parseRetryAfter } from "./retry.js";

/** The RFC 6749 §5.1 members we use, as validated; unknown members are ignored. */
export interface TokenEndpointResponse {
  /** The HTTP status it came with (2xx). */
  readonly status: number;
  readonly access_token: string;
  readonly token_type: string;
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
  let response: TokenHttpResponse;
  try {
    response = await client.request({
      method: "POST",
      url: endpoint.tokenUrl,
      data: body,
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        Accept: "application/json",
        // Exactly one client authentication method (RFC 6749 §2.3): an Authorization inherited from
        // axios.defaults or the httpClient's defaults must not ride along with a body secret.
        Authorization: authorization ?? false,
      },
      ...boundedRequest(limits),
    });
  } catch (error) {
    throw networkError(error, limits.signal, TOKEN_ENDPOINT);
  }
  return readResponse(response, { fromIssuer: endpoint.discovered });
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

/** Validates a token endpoint's answer (RFC 6749 §5.1, §5.2): the token, or a coded error. */
export function readResponse(
  response: TokenHttpResponse,
  context: { readonly fromIssuer: boolean } = { fromIssuer: false },
): TokenEndpointResponse {
  const { status } = response;
  const body = parseJsonObject(response.data);
  const retryAfterMs = parseRetryAfter(headerValue(response, "retry-after"));
  if (status < 200 || status > 299 || (body !== undefined && body.error !== undefined)) {
    // An `error` member is a failure even in a 200 (golang/oauth2 treats it so too).
    const error = sanitizeServerText(body?.error);
    const errorDescription = sanitizeServerText(body?.error_description);
    const what = [error, errorDescription].filter(Boolean).join(": ");
    const code = status === 429 || (status === 503 && retryAfterMs !== undefined) ? "ERR_TOKEN_THROTTLED" : "ERR_TOKEN_REQUEST";
    let hint = "";
    if (status >= 300 && status <= 399)
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
  // Missing token_type is taken as Bearer, as golang does; anything else (DPoP, MAC) is refused, since we can only send Bearer.
  const tokenType = body.token_type ?? "Bearer";
  if (typeof tokenType !== "string" || tokenType.toLowerCase() !== "bearer") {
    throw new InvalidTokenResponseError("token_type", `must be "Bearer" (got ${JSON.stringify(sanitizeServerText(String(tokenType)))})`);
  }
  // The granted scope (RFC 6749 §3.3, §5.1): space-separated scope tokens; anything else is read as absent.
  const scope = typeof body.scope === "string" && SCOPE.test(body.scope) ? body.scope.trim().split(/ +/).join(" ") : undefined;
  return { status, access_token: accessToken, token_type: "Bearer", expires_in: body.expires_in, refresh_in: body.refresh_in, scope };
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
