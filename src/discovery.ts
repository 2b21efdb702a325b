/**
 * Where token requests go. With `tokenUrl` (or an Entra tenant) that is fixed; with `issuer` it is
 * read from the authorization server's metadata, once, at the first token request: OpenID Connect
 * Discovery 1.0 §4 first (`{issuer}/.well-known/openid-configuration`, what Keycloak, Okta, Auth0
 * and Entra all serve), then RFC 8414 §3.1 (the well-known segment inserted before the issuer's
 * path). The document must name exactly the configured issuer (RFC 8414 §3.3: otherwise a server
 * could pass off another's endpoint), and a token endpoint that is https.
 *
 * A failure is not kept: the next token request asks again. A document is kept for the source's
 * life; token endpoints move far less often than processes restart. It is not shared through the
 * token store, since a process would then send its secret to whatever endpoint the store names.
 */
import { boundedRequest, networkError, type AttemptLimits } from "./client-credentials.js";
import { DiscoveryError, type InvalidOptionError, sanitizeServerText } from "./errors.js";
import type { Settings, TokenHttpClient } from "./options.js";
import { parseSecureUrl } from "./origin.js";

/** Where one token request goes, and the authentication methods the server lists there. */
export interface TokenEndpoint {
  readonly tokenUrl: string;
  /** `token_endpoint_auth_methods_supported`, when read from metadata that lists it. */
  readonly authMethods: readonly string[] | undefined;
  /** Whether the URL came from the issuer's metadata. */
  readonly discovered: boolean;
}

/** Resolves the token endpoint for each attempt; with an issuer, reads its metadata when none is held. */
export type EndpointResolver = (client: TokenHttpClient, limits: AttemptLimits) => Promise<TokenEndpoint>;

/** A token endpoint named directly, or one read from the issuer's metadata (once, shared by concurrent callers). */
export function endpointResolver(settings: Settings): EndpointResolver {
  const { endpoint } = settings;
  if (endpoint.kind === "url") {
    const fixed: TokenEndpoint = { tokenUrl: endpoint.tokenUrl, authMethods: undefined, discovered: false };
    return () => Promise.resolve(fixed);
  }
  let known: TokenEndpoint | undefined;
  let pending: Promise<TokenEndpoint> | undefined;
  return (client, limits) => {
    if (known !== undefined) return Promise.resolve(known);
    pending ??= readMetadata(client, endpoint.issuer, settings.allowInsecureHttp, limits).then(
      (found) => {
        known = found;
        pending = undefined;
        return found;
      },
      (error: unknown) => {
        pending = undefined;
        throw error;
      },
    );
    return pending;
  };
}

/** The two metadata URLs of an issuer, in the order asked. */
export function metadataUrls(issuer: string): readonly string[] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, "");
  return [`${url.origin}${path}/.well-known/openid-configuration`, `${url.origin}/.well-known/oauth-authorization-server${path}`];
}

async function readMetadata(
  client: TokenHttpClient,
  issuer: string,
  allowInsecureHttp: boolean,
  limits: AttemptLimits,
): Promise<TokenEndpoint> {
  const answers: string[] = [];
  let last: { url: string; status: number } | undefined;
  for (const url of metadataUrls(issuer)) {
    const subject = {
      name: `authorization server metadata at ${url}`,
      onRedirect: 'which is not followed: "issuer" must be the identifier the server states, exactly',
    };
    let response: Awaited<ReturnType<TokenHttpClient["request"]>>;
    try {
      response = await client.request({
        method: "GET",
        url,
        data: undefined,
        // No Authorization from axios.defaults or the httpClient's defaults: metadata is public.
        headers: { Accept: "application/json", Authorization: false },
        ...boundedRequest(limits),
      });
    } catch (error) {
      throw networkError(error, limits.signal, subject);
    }
    const { status } = response;
    if (status >= 200 && status <= 299) return readDocument(response.data, url, status, issuer, allowInsecureHttp);
    last = { url, status };
    answers.push(`${url} answered ${status}`);
    // 5xx, 408 and 429 are the server's trouble, not a missing document: fail, and the retry asks again.
    const missing = status >= 300 && status <= 499 && status !== 408 && status !== 429;
    if (!missing) {
      throw new DiscoveryError(`${subject.name} answered ${status}`, "ERR_DISCOVERY", { metadataUrl: url, status });
    }
  }
  throw new DiscoveryError(
    `no authorization server metadata for "issuer" ${JSON.stringify(issuer)}: ${answers.join(", ")}; check the issuer, or pass "tokenUrl" instead`,
    "ERR_DISCOVERY",
    { metadataUrl: last?.url, status: last?.status },
  );
}

function readDocument(data: unknown, url: string, status: number, issuer: string, allowInsecureHttp: boolean): TokenEndpoint {
  const unusable = (problem: string): DiscoveryError =>
    new DiscoveryError(`authorization server metadata at ${url} is unusable: ${problem}`, "ERR_DISCOVERY", { metadataUrl: url, status });
  let document: unknown;
  try {
    document = typeof data === "string" ? JSON.parse(data) : undefined;
  } catch {
    document = undefined;
  }
  if (document === null || typeof document !== "object" || Array.isArray(document)) throw unusable("not a JSON object");
  const fields = document as Record<string, unknown>;
  if (fields.issuer !== issuer) {
    const received = typeof fields.issuer === "string" ? sanitizeServerText(fields.issuer) : undefined;
    throw new DiscoveryError(
      `the metadata at ${url} is of issuer ${JSON.stringify(received ?? null)}, not of the configured "issuer" ${JSON.stringify(issuer)}; ` +
        "no token was requested (the two must be identical, trailing slash included)",
      "ERR_ISSUER_MISMATCH",
      { metadataUrl: url, status, expectedIssuer: issuer, receivedIssuer: received },
    );
  }
  if (typeof fields.token_endpoint !== "string") throw unusable('"token_endpoint" is missing');
  let tokenUrl: string;
  try {
    tokenUrl = parseSecureUrl("token_endpoint", fields.token_endpoint, allowInsecureHttp).href;
  } catch (error) {
    throw unusable((error as InvalidOptionError).message); // parseSecureUrl throws only InvalidOptionError
  }
  const methods = fields.token_endpoint_auth_methods_supported;
  // A malformed list is read as none. None listed restricts nothing: RFC 8414 §2's default (basic) picks the secret's method only.
  const authMethods = Array.isArray(methods) && methods.every((method) => typeof method === "string") ? (methods as string[]) : undefined;
  return { tokenUrl, authMethods, discovered: true };
}
