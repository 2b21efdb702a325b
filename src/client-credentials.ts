/**
 * One client-credentials token request (RFC 6749 §4.4) and the strict reading of its answer
 * (§5.1, §5.2). Nothing here caches or retries; nothing here lets the secret out: every
 * status is handled without an AxiosError, and network errors are copied, not attached.
 */
import type { Settings, TokenHttpClient } from "./options.js";
import qs from "qs";
import { InvalidTokenResponseError, TokenRequestError, sanitizeServerText } from "./errors.js";
import { parseRetryAfter } from "./retry.js";

/** The RFC 6749 §5.1 members we use, as validated; unknown members are ignored. */
export interface TokenEndpointResponse {
  readonly access_token: string;
  readonly token_type: string;
  readonly expires_in?: unknown;
  readonly refresh_in?: unknown;
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
const HEADER_SAFE_TOKEN = /^[\x21-\x7e]+$/; // visible ASCII only: a space, CR, LF or NUL would let the token split or smuggle headers

/**
 * Sends one token request and returns the validated response.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4.2
 */
export async function requestToken(client: TokenHttpClient, settings: Settings, limits: AttemptLimits): Promise<TokenEndpointResponse> {
  const { body, authorization } = await buildRequest(settings);
  let response: TokenHttpResponse;
  try {
    response = await client.request({
      method: "POST",
      url: settings.tokenUrl,
      data: body,
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        Accept: "application/json",
        // Exactly one client authentication method (RFC 6749 §2.3): an Authorization inherited from
        // axios.defaults or the httpClient's defaults must not ride along with a body secret.
        Authorization: authorization ?? false,
      },
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
    });
  } catch (error) {
    throw networkError(error, limits.signal);
  }
  return readResponse(response);
}

async function buildRequest(settings: Settings): Promise<{ body: string; authorization: string | undefined }> {
  const params: Record<string, string> = { grant_type: "client_credentials" };
  if (settings.scope !== undefined) params.scope = settings.scope;
  Object.assign(params, settings.extraParams);
  const { credential } = settings;
  let authorization: string | undefined;
  if (credential.kind === "assertion") {
    // Assertions are short-lived: a fresh one for every request, retries included.
    const assertion = await credential.assertion();
    if (typeof assertion !== "string" || assertion === "") {
      throw new TypeError('"clientAssertion" must return a non-empty string');
    }
    params.client_id = settings.clientId;
    params.client_assertion_type = ASSERTION_TYPE;
    params.client_assertion = assertion;
  } else if (credential.method === "client_secret_basic") {
    // Form-encode each part before base64 (RFC 6749 §2.3.1, Appendix B); axios's `auth` does not, and a secret with `:` or `+` would arrive changed.
    authorization = `Basic ${base64(`${formEncode(settings.clientId)}:${formEncode(credential.secret)}`)}`;
  } else {
    params.client_id = settings.clientId;
    params.client_secret = credential.secret;
  }
  return { body: qs.stringify(params, { format: "RFC1738" }), authorization };
}

function formEncode(value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, "+");
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Validates a token endpoint's answer (RFC 6749 §5.1, §5.2): the token, or a coded error. */
export function readResponse(response: TokenHttpResponse): TokenEndpointResponse {
  const { status } = response;
  const body = parseJsonObject(response.data);
  const retryAfterMs = parseRetryAfter(headerValue(response, "retry-after"));
  if (status < 200 || status > 299 || (body !== undefined && body.error !== undefined)) {
    // An `error` member is a failure even in a 200 (golang/oauth2 treats it so too).
    const error = sanitizeServerText(body?.error);
    const errorDescription = sanitizeServerText(body?.error_description);
    const what = [error, errorDescription].filter(Boolean).join(": ");
    const code = status === 429 || (status === 503 && retryAfterMs !== undefined) ? "ERR_TOKEN_THROTTLED" : "ERR_TOKEN_REQUEST";
    const hint =
      status >= 300 && status <= 399
        ? ' (redirects are not followed, since the secret would go along: set "tokenUrl" to the final URL)'
        : "";
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
  return { access_token: accessToken, token_type: "Bearer", expires_in: body.expires_in, refresh_in: body.refresh_in };
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

/** Copies what is useful from a transport failure; the axios error itself carries the secret. */
function networkError(error: unknown, signal: AbortSignal): TokenRequestError {
  const networkCode = typeof (error as { code?: unknown })?.code === "string" ? (error as { code: string }).code : undefined;
  if (signal.aborted || networkCode === "ERR_CANCELED") {
    return new TokenRequestError("token request was cancelled", "ERR_TOKEN_ABORTED", { networkCode });
  }
  if (networkCode === "ECONNABORTED" || networkCode === "ETIMEDOUT") {
    return new TokenRequestError("token endpoint did not answer in time", "ERR_TOKEN_TIMEOUT", { networkCode });
  }
  if (isRefusedRedirect(error)) {
    return new TokenRequestError(
      'token endpoint answered with a redirect, which is not followed since the secret would go along: set "tokenUrl" to the final URL',
      "ERR_TOKEN_REQUEST",
      { networkCode },
    );
  }
  if (networkCode === "ERR_FR_MAX_BODY_LENGTH_EXCEEDED" || networkCode === "ERR_BAD_RESPONSE") {
    return new TokenRequestError("token endpoint response is larger than 1 MiB", "ERR_TOKEN_REQUEST", { networkCode });
  }
  return new TokenRequestError(`token endpoint could not be reached${networkCode ? ` (${networkCode})` : ""}`, "ERR_TOKEN_NETWORK", {
    networkCode,
  });
}
