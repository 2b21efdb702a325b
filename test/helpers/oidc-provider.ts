/**
 * panva's oidc-provider, an OpenID-certified authorization server, on 127.0.0.1 for end-to-end
 * tests, and a loopback resource server that checks the tokens it issues.
 *
 * What oidc-provider does, read from its source (9.13.x), that shapes this file:
 * - It does not tell the two secret methods apart (lib/shared/client_auth.js): a client registered
 *   for client_secret_basic may send its secret in the body, and a client_secret_post one in a Basic
 *   header, and both get tokens. Only a `clientAuthMethods` without client_secret_post makes a
 *   body secret count for nothing (client_secret is then not a parameter it reads): invalid_client.
 *   A token therefore does not prove how the secret was sent; `tokenRequests` records that.
 * - It keeps every private_key_jwt assertion's jti until the assertion expires and refuses a second
 *   use with invalid_client ("client assertion tokens must only be used once").
 * - With resource indicators, a client-credentials request takes exactly one `resource`; the token's
 *   format, audience and lifetime come from getResourceServerInfo. Without `resource` the token has
 *   no audience, and the resource server here refuses it.
 * - JWT access tokens are not stored: its introspection and revocation endpoints refuse them with
 *   400 unsupported_token_type. So opaque tokens are checked and revoked at the provider, while a
 *   JWT is revoked the way a JWT deployment does it: `revoke()` still asks the provider (and reports
 *   its answer), then puts the token's jti on a denylist that the resource server consults after
 *   the signature, issuer, audience and expiry checks pass.
 * - Its routes are relative to a mount path: `provider.urlFor()` takes that path from the issuer's
 *   pathname, but inside a request `ctx.oidc.urlFor()` (discovery's endpoints, the audiences a client
 *   assertion may name) takes it from the part of `req.originalUrl` before `req.url`. So a path issuer
 *   on a bare node server means stripping the prefix from `req.url` and keeping the full one in
 *   `req.originalUrl` (lib/helpers/oidc_context.js, urlFor).
 * - It serves both well-known documents itself, but relative to the mount path:
 *   `{issuer}/.well-known/openid-configuration` (right for OpenID Connect Discovery) and
 *   `{issuer}/.well-known/oauth-authorization-server`, which for a path issuer is not where RFC 8414
 *   §3.1 puts it (`/.well-known/oauth-authorization-server{issuer path}`). This file serves the
 *   RFC 8414 location by handing the provider its own route under the issuer's mount path, and
 *   answers 404 at the appended one.
 * - `token_endpoint_auth_methods_supported` is its `clientAuthMethods` option as given. A static
 *   client is validated at its first use, not at start-up, so a client whose method is not listed
 *   would fail late; such clients are left unregistered.
 * - A private_key_jwt client's keys are picked by kty, crv and alg (and kid if the header has one);
 *   an `x5c` in the registered JWK is accepted and not checked against anything. The assertion's
 *   `aud` may be the issuer, the token endpoint URL or the URL of the endpoint it is sent to. The
 *   `assertJwtClientAuthClaimsAndHeader` hook runs after the signature check and before the jti
 *   replay check, so it would also see refused replays; the assertions are recorded instead by a
 *   middleware, with the status the provider answered.
 * - Scope in client_credentials narrows silently, never refuses for a scope it does not know
 *   (lib/actions/grants/client_credentials.js, lib/shared/check_resource.js): with a resource
 *   indicator the granted scope is the requested one filtered to the resource server's `scope`;
 *   without one, filtered to the provider's own `scopes` (openid, offline_access). Nothing left
 *   means a 200 with no `scope` member, which RFC 6749 §5.1 lets a client read as "as requested".
 *   A client's registered `scope` refuses (invalid_scope) rather than narrows, and only for the
 *   provider's own scopes. Here JWT_RESOURCE and OPAQUE_RESOURCE grant RESOURCE_SCOPE only.
 *
 * DPoP (RFC 9449), lib/helpers/validate_dpop.js, challenge.js, sender_constraints.js, grant_common.js:
 * - `features.dPoP` is on by default (`enabled: true`, no `nonceSecret`, `requireNonce: () => false`,
 *   `allowReplay: false`), so every bed accepts proofs; the `dpop` option adds a nonce secret.
 *   Discovery lists `dpop_signing_alg_values_supported`: `dPoPSigningAlgValues`, by default ES256,
 *   Ed25519 and EdDSA only. RS256 and PS256 are allowed but must be enabled (`enabledJWA`).
 * - At the token endpoint a proof is checked after client authentication, in the grant handler:
 *   jose's `jwtVerify(proof, EmbeddedJWK, { typ: "dpop+jwt", algorithms })`, then `iat` a number,
 *   `jti` a string, `nonce` a string if present; `htm` = the method; `htu`, with query and fragment
 *   removed, = the endpoint's URL. Without a nonce, `iat` must be within 300 s of now. Any failure
 *   is 400 `invalid_dpop_proof`, with no WWW-Authenticate (only the provider's own resource endpoints,
 *   such as userinfo, turn DPoP errors into 401 with `WWW-Authenticate: DPoP`). A bad client secret
 *   is refused first (401 invalid_client), whatever the proof.
 * - Nonces are not stored: HKDF-SHA256 of `nonceSecret` over a 60 s time step. The one handed out is
 *   the next step's; those of steps now-2 … now+2 are accepted, so a nonce stays good for 3 to 4
 *   minutes. A missing nonce when `requireNonce` says so, or one not accepted, is 400
 *   `{"error":"use_dpop_nonce","error_description":…}` with `DPoP-Nonce: <nonce>`. Every answer to a
 *   valid proof whose nonce is not the current one (none, or an older one) carries `DPoP-Nonce`, the
 *   200s too; a proof with the current nonce gets none. With no `nonceSecret`, a proof carrying a
 *   `nonce` is invalid_dpop_proof ("DPoP nonces are not supported").
 * - The jti is kept per client (replay detection, 300 s) once the proof passed, and a second use is
 *   400 invalid_grant "DPoP proof JWT Replay detected". A nonce refusal happens before, so its jti
 *   is not spent.
 * - A valid proof binds the token whether or not the client asked for it: the token gets the RFC 7638
 *   thumbprint of the proof's `jwk` as `jkt`, `token_type` becomes `DPoP`, a JWT access token carries
 *   `cnf: { jkt }` and introspection of an opaque one answers `cnf: { jkt }` and `token_type: "DPoP"`.
 *   So a client that is not `dpop_bound_access_tokens` and sends a proof gets a DPoP token.
 * - A `dpop_bound_access_tokens: true` client without a proof gets 400
 *   `{"error":"invalid_grant","error_description":"grant request is invalid"}`: InvalidGrant keeps
 *   its reason ("DPoP proof JWT not provided", or "DPoP proof JWT Replay detected") in
 *   `error_detail`, which only its `grant.error` event sees; `tokenRequests[].errorDetail` records
 *   it. Nothing on the wire says DPoP. Without a proof nothing DPoP happens (no nonce asked).
 */
import { createPublicKey, randomBytes, randomUUID, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type JWK,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from "jose";
import Provider, {
  errors,
  type ClientAuthMethod as ProviderClientAuthMethod,
  type ClientMetadata,
  type KoaContextWithOIDC,
  type ResourceServer,
} from "oidc-provider";
import { onTestFinished } from "vitest";

export const JWT_RESOURCE = "https://api.test/jwt";
export const OPAQUE_RESOURCE = "https://api.test/opaque";
/** The only scope the two resource servers grant; any other requested scope is dropped from the token. */
export const RESOURCE_SCOPE = "api:read";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/certs/${name}`, import.meta.url), "utf8");

/** The test-only keys and certificate in test/fixtures/certs (see its README). */
export const CERTS = {
  /** RSA 2048, PKCS#8 (`BEGIN PRIVATE KEY`). */
  rsaKey: fixture("rsa-key.pem"),
  /** The same RSA key, PKCS#1 (`BEGIN RSA PRIVATE KEY`). */
  rsaKeyPkcs1: fixture("rsa-key.pkcs1.pem"),
  /** Self-signed certificate of the RSA key, CN=axios-token-refresh test. */
  rsaCert: fixture("rsa-cert.pem"),
  /** P-256, PKCS#8. */
  ecKey: fixture("ec-key.pem"),
  /** The same P-256 key, SEC1 (`BEGIN EC PRIVATE KEY`). */
  ecKeySec1: fixture("ec-key.sec1.pem"),
} as const;

/** Where a well-known metadata document is served: OpenID Connect Discovery 1.0 §4, or RFC 8414 §3.1. */
export type WellKnownForm = "oidc" | "rfc8414";

/** A client that authenticates with a shared secret. */
export interface SecretClient {
  readonly clientId: string;
  readonly clientSecret: string;
}

/** The private_key_jwt client: its public JWK is registered, the private key stays here for signing assertions. */
export interface KeyClient {
  readonly clientId: string;
  readonly privateKey: CryptoKey;
  readonly alg: "ES256";
  readonly kid: string;
}

/** A private_key_jwt client whose key is a fixture PEM; the library signs its assertions from `privateKey`. */
export interface CertificateClient {
  readonly clientId: string;
  /** The alg registered as its token_endpoint_auth_signing_alg: any other is refused. */
  readonly alg: "ES256" | "RS256" | "PS256";
  /** PKCS#8 PEM. */
  readonly privateKey: string;
  /** The same key as PKCS#1 (RSA) or SEC1 (EC) PEM. */
  readonly traditionalPrivateKey: string;
  /** The certificate whose DER is the registered JWK's `x5c`, when there is one. */
  readonly certificate: string | undefined;
}

/** The discovery members the tests use. */
export interface Discovery {
  readonly issuer: string;
  readonly token_endpoint: string;
  readonly introspection_endpoint: string;
  readonly revocation_endpoint: string;
  readonly jwks_uri: string;
  readonly token_endpoint_auth_methods_supported: readonly string[];
  readonly token_endpoint_auth_signing_alg_values_supported?: readonly string[];
  /** Present whenever features.dPoP is on, which is oidc-provider's default. */
  readonly dpop_signing_alg_values_supported?: readonly string[];
}

/** Runtime switches for the well-known documents; tests set them between requests. */
export interface MetadataSwitches {
  /** The forms served; a request for another gets 404. */
  forms: readonly WellKnownForm[];
  /** While true, every metadata request gets 503. */
  down: boolean;
  /** This many of the next metadata requests get 503 (counted down as they come). */
  failNext: number;
  /** Members merged into the served document, e.g. `{ issuer: "https://elsewhere" }`; an undefined value removes the member. */
  patch: Record<string, unknown>;
}

/** A request for a path with `/.well-known/` in it, as answered. */
export interface MetadataRequest {
  /** `other` is any path that is neither form's location for this issuer. */
  readonly form: WellKnownForm | "other";
  readonly path: string;
  readonly status: number;
}

/** A POST to the token endpoint, as answered. Field names only: no value but the scopes is kept. */
export interface TokenEndpointRequest {
  /** The authenticated client, else the body's client_id. */
  readonly clientId: string | undefined;
  /** The Authorization header's scheme (`Basic`), if there was one. */
  readonly authorization: string | undefined;
  /** Names of the form fields, sorted. */
  readonly fields: readonly string[];
  readonly requestedScope: string | undefined;
  readonly status: number;
  /** The response's `error`, for a refusal. */
  readonly error: string | undefined;
  /** The response's `scope`, for a token. */
  readonly grantedScope: string | undefined;
  /** The response's `token_type`, for a token: `Bearer`, or `DPoP` when a proof bound it. */
  readonly tokenType: string | undefined;
  /**
   * The reason the provider logged but did not send, for a refusal that has one: an invalid_grant
   * answers only "grant request is invalid", and this says e.g. "DPoP proof JWT not provided".
   */
  readonly errorDetail: string | undefined;
}

/** A DPoP proof (RFC 9449) that reached the token endpoint, decoded (not verified: the provider did that). */
export interface CapturedDpopProof {
  readonly clientId: string | undefined;
  readonly header: ProtectedHeaderParameters;
  readonly claims: JWTPayload;
  /** What the provider answered the request carrying it. */
  readonly status: number;
  readonly error: string | undefined;
  /** The `DPoP-Nonce` header of that answer, if it had one. */
  readonly answeredNonce: string | undefined;
  /** The `token_type` of that answer, for a token. */
  readonly tokenType: string | undefined;
  /** As {@link TokenEndpointRequest.errorDetail}. */
  readonly errorDetail: string | undefined;
}

/** A signing alg oidc-provider can take for DPoP proofs. */
export type DpopSigningAlg = "ES256" | "ES384" | "ES512" | "Ed25519" | "EdDSA" | "RS256" | "PS256";

/** features.dPoP as the `dpop` option sets it. */
export interface DpopTestOptions {
  /** Every proof at the token endpoint must carry a nonce the provider handed out. @default false */
  requireNonce?: boolean;
  /** `enabledJWA.dPoPSigningAlgValues`. @default oidc-provider's: ES256, Ed25519, EdDSA */
  signingAlgValues?: readonly DpopSigningAlg[];
}

/** Mutable DPoP switches; tests set them between requests. */
export interface DpopSwitches {
  /** Starts as the `dpop.requireNonce` option. */
  requireNonce: boolean;
}

/** A client_assertion that reached the token endpoint, decoded (not verified: the provider did that). */
export interface CapturedAssertion {
  readonly clientId: string | undefined;
  readonly header: ProtectedHeaderParameters;
  readonly claims: JWTPayload;
  /** What the provider answered the request carrying it. */
  readonly status: number;
  readonly error: string | undefined;
}

/** What `revoke()` did: the provider's answer, and whether the token went on the resource server's denylist (JWTs). */
export interface Revocation {
  readonly status: number;
  readonly error: string | undefined;
  readonly denylisted: boolean;
}

export interface OidcTestBed {
  readonly issuer: string;
  /** The OpenID Connect discovery document as served at start-up (no switches applied). */
  readonly discovery: Discovery;
  readonly clients: {
    readonly basic: SecretClient;
    readonly post: SecretClient;
    readonly privateKeyJwt: KeyClient;
    /** private_key_jwt, ES256, the P-256 fixture key, no certificate. */
    readonly certEs256: CertificateClient;
    /** private_key_jwt, RS256, the RSA fixture key; its JWK carries the certificate as `x5c`. */
    readonly certRs256: CertificateClient;
    /** As certRs256, registered for PS256. */
    readonly certPs256: CertificateClient;
    /** Allowed to call the introspection endpoint for any client's token; has no grant of its own. */
    readonly resourceServer: SecretClient;
    /** client_secret_post and `dpop_bound_access_tokens: true`: a token request without a DPoP proof is refused. */
    readonly dpopClient: SecretClient;
  };
  /** POST requests that reached the token endpoint, whatever the provider answered. */
  readonly count: number;
  /** The same requests with what was sent and answered, in order. */
  readonly tokenRequests: readonly TokenEndpointRequest[];
  /** Every client_assertion sent to the token endpoint, in order. */
  readonly assertions: readonly CapturedAssertion[];
  /** Every DPoP proof sent to the token endpoint that decodes as a JWT, in order. */
  readonly dpopProofs: readonly CapturedDpopProof[];
  /** Runtime DPoP switches (only with the `dpop` option: without a nonce secret there are no nonces). */
  readonly dpop: DpopSwitches;
  /** Requests for well-known documents after start-up, in order. */
  readonly metadataRequests: readonly MetadataRequest[];
  /** Where each form is served for this issuer. */
  readonly metadataUrls: Readonly<Record<WellKnownForm, string>>;
  /** Mutable: which documents are served, outages, changed members. */
  readonly metadata: MetadataSwitches;
  /** Asks the provider to revoke `token` as the client it was issued to (RFC 7009); see the file comment for JWTs. */
  revoke(token: string): Promise<Revocation>;
  /** RFC 7662 introspection as the resource-server client. */
  introspect(token: string): Promise<Record<string, unknown>>;
  /** A resource server that accepts this provider's tokens; closed when the test finishes. */
  startResourceServer(): Promise<OidcResourceServer>;
  close(): Promise<void>;
}

export interface OidcTestBedOptions {
  /** Lifetime of access tokens, in seconds (oidc-provider wants a positive integer). */
  accessTokenTtlSeconds?: number;
  /** Path of the issuer, e.g. `/realms/main`, with no trailing slash; the provider is mounted under it. Default: the bare origin. */
  issuerPath?: string;
  /** The well-known forms served at first; `metadata.forms` changes it later. @default ["oidc", "rfc8414"] */
  wellKnown?: readonly WellKnownForm[];
  /**
   * oidc-provider's `clientAuthMethods`, which discovery lists as token_endpoint_auth_methods_supported;
   * clients registered with a method not in it are not registered.
   * @default oidc-provider's own: client_secret_basic, client_secret_jwt, client_secret_post, private_key_jwt, none
   */
  clientAuthMethods?: readonly ProviderClientAuthMethod[];
  /**
   * Server-provided DPoP nonces: features.dPoP with a random 32-byte `nonceSecret`, and `requireNonce`
   * as given. Without it DPoP is still on (oidc-provider's default) but no nonce is ever asked or given.
   * `false` turns features.dPoP off: the provider ignores `DPoP` headers and issues Bearer tokens (and
   * the DPoP-bound client is not registered, its metadata being unknown then).
   */
  dpop?: DpopTestOptions | false;
}

/** One request as the resource server judged it. */
export interface ResourceRequest {
  readonly authorization: string | undefined;
  readonly status: 200 | 401;
  readonly format: "jwt" | "opaque" | undefined;
}

export interface OidcResourceServer {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  readonly origin: string;
  /** In the order they were answered. */
  readonly requests: readonly ResourceRequest[];
  /** Authorization headers seen, in the same order (undefined for none). */
  readonly authorizations: readonly (string | undefined)[];
  /** How many 401s it answered. */
  readonly unauthorized: number;
  close(): Promise<void>;
}

/** Starts oidc-provider on 127.0.0.1 with an OS-picked port; the caller closes it. */
export async function startOidcProvider(options: OidcTestBedOptions = {}): Promise<OidcTestBed> {
  const ttl = options.accessTokenTtlSeconds ?? 60;
  const issuerPath = options.issuerPath ?? "";
  if (issuerPath !== "" && !/^(\/[\w.~-]+)+$/.test(issuerPath))
    throw new Error(`issuerPath ${issuerPath}: /segment/segment, no trailing slash`);
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end();
  };
  const server = createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 500;
  const port = await listen(server);
  const origin = `http://127.0.0.1:${port}`;
  const issuer = `${origin}${issuerPath}`;

  const signing = await generateKeyPair("RS256", { extractable: true });
  const providerKey: JWK = { ...(await exportJWK(signing.privateKey)), kid: "provider-rs256", alg: "RS256", use: "sig" };
  const assertionKeys = await generateKeyPair("ES256", { extractable: true });
  const assertionKid = "client-es256";
  const assertionPublic: JWK = { ...(await exportJWK(assertionKeys.publicKey)), kid: assertionKid, alg: "ES256", use: "sig" };
  const rsaCert = new X509Certificate(CERTS.rsaCert);
  const ecPublic = createPublicKey(CERTS.ecKey).export({ format: "jwk" }) as JWK;
  const rsaPublic = rsaCert.publicKey.export({ format: "jwk" }) as JWK;
  const x5c = [rsaCert.raw.toString("base64")];

  // Secrets may hold only %x20-7E (RFC 6749 Appendix A; the provider refuses others); these need form-encoding in Basic.
  const clients = {
    basic: { clientId: "basic-client", clientSecret: `basic ${randomUUID()} +/=%&:~` },
    post: { clientId: "post-client", clientSecret: `post ${randomUUID()} +/=%&:~` },
    privateKeyJwt: { clientId: "jwt-client", privateKey: assertionKeys.privateKey, alg: "ES256", kid: assertionKid },
    certEs256: {
      clientId: "cert-es256-client",
      alg: "ES256",
      privateKey: CERTS.ecKey,
      traditionalPrivateKey: CERTS.ecKeySec1,
      certificate: undefined,
    },
    certRs256: {
      clientId: "cert-rs256-client",
      alg: "RS256",
      privateKey: CERTS.rsaKey,
      traditionalPrivateKey: CERTS.rsaKeyPkcs1,
      certificate: CERTS.rsaCert,
    },
    certPs256: {
      clientId: "cert-ps256-client",
      alg: "PS256",
      privateKey: CERTS.rsaKey,
      traditionalPrivateKey: CERTS.rsaKeyPkcs1,
      certificate: CERTS.rsaCert,
    },
    resourceServer: { clientId: "resource-server", clientSecret: `rs-${randomUUID()}` },
    dpopClient: { clientId: "dpop-client", clientSecret: `dpop-${randomUUID()}` },
  } as const satisfies OidcTestBed["clients"];
  const machine = { grant_types: ["client_credentials"], response_types: [], redirect_uris: [] } satisfies Partial<ClientMetadata>;
  // No kid on these keys: the library's assertions carry none, and the provider then picks by kty, crv and alg.
  const certificateClient = (client: CertificateClient, key: JWK): ClientMetadata => ({
    ...machine,
    client_id: client.clientId,
    token_endpoint_auth_method: "private_key_jwt",
    token_endpoint_auth_signing_alg: client.alg,
    jwks: { keys: [{ ...key, alg: client.alg, use: "sig" }] },
  });
  const allClients: ClientMetadata[] = [
    {
      ...machine,
      client_id: clients.basic.clientId,
      client_secret: clients.basic.clientSecret,
      token_endpoint_auth_method: "client_secret_basic",
    },
    {
      ...machine,
      client_id: clients.post.clientId,
      client_secret: clients.post.clientSecret,
      token_endpoint_auth_method: "client_secret_post",
    },
    {
      ...machine,
      client_id: clients.privateKeyJwt.clientId,
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "ES256",
      jwks: { keys: [assertionPublic] },
    },
    certificateClient(clients.certEs256, ecPublic),
    certificateClient(clients.certRs256, { ...rsaPublic, x5c }),
    certificateClient(clients.certPs256, { ...rsaPublic, x5c }),
    {
      client_id: clients.resourceServer.clientId,
      client_secret: clients.resourceServer.clientSecret,
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
    {
      ...machine,
      client_id: clients.dpopClient.clientId,
      client_secret: clients.dpopClient.clientSecret,
      token_endpoint_auth_method: "client_secret_post",
      dpop_bound_access_tokens: true,
    },
  ];
  const methods = options.clientAuthMethods === undefined ? undefined : new Set<string>(options.clientAuthMethods);
  const registered = allClients.filter(
    (client) =>
      (methods === undefined || methods.has(String(client.token_endpoint_auth_method ?? "client_secret_basic"))) &&
      (options.dpop !== false || client.dpop_bound_access_tokens !== true),
  );

  const resources: Record<string, ResourceServer> = {
    [JWT_RESOURCE]: {
      scope: RESOURCE_SCOPE,
      audience: JWT_RESOURCE,
      accessTokenTTL: ttl,
      accessTokenFormat: "jwt",
      jwt: { sign: { alg: "RS256" } },
    },
    [OPAQUE_RESOURCE]: { scope: RESOURCE_SCOPE, audience: OPAQUE_RESOURCE, accessTokenTTL: ttl, accessTokenFormat: "opaque" },
  };

  const dpopOptions = options.dpop === false ? undefined : options.dpop;
  const dpop: DpopSwitches = { requireNonce: dpopOptions?.requireNonce ?? false };
  const dpopAlgs = dpopOptions?.signingAlgValues;

  // Policies and TTL are set explicitly even where they match the defaults: the defaults warn on every call.
  const provider = new Provider(issuer, {
    clients: registered,
    jwks: { keys: [providerKey] },
    ...(options.clientAuthMethods === undefined ? {} : { clientAuthMethods: options.clientAuthMethods }),
    ...(dpopAlgs === undefined ? {} : { enabledJWA: { dPoPSigningAlgValues: [...dpopAlgs] } }),
    features: {
      ...(options.dpop === false ? { dPoP: { enabled: false } } : {}),
      ...(dpopOptions === undefined
        ? {}
        : { dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => dpop.requireNonce, allowReplay: false } }),
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => client.clientId === clients.resourceServer.clientId || client.clientId === token.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => client.clientId === token.clientId,
      },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: (_ctx, indicator) => {
          const info = resources[indicator];
          if (info === undefined) throw new errors.InvalidTarget();
          return info;
        },
      },
    },
    ttl: { ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl },
  });

  const metadata: MetadataSwitches = { forms: options.wellKnown ?? ["oidc", "rfc8414"], down: false, failNext: 0, patch: {} };
  const metadataRequests: MetadataRequest[] = [];
  const tokenRequests: TokenEndpointRequest[] = [];
  const assertions: CapturedAssertion[] = [];
  const dpopProofs: CapturedDpopProof[] = [];
  /** `error_detail` of token endpoint refusals, which the provider hands only to its `grant.error` listeners. */
  const errorDetails = new WeakMap<object, string>();
  provider.on("grant.error", (ctx: object, error: { error_detail?: unknown }) => {
    if (typeof error.error_detail === "string") errorDetails.set(ctx, error.error_detail);
  });
  /** Metadata requests handed to the provider, for its middleware to fill in the status. */
  const forwarded = new WeakMap<IncomingMessage, { form: WellKnownForm; path: string }>();

  // Inside the provider, routes have no mount path (ctx.path is "/token"); see the file comment.
  const tokenRoute = provider.pathFor("token", { mountPath: "" });
  let count = 0;
  provider.use(async (koa, next) => {
    const ctx = koa as KoaContextWithOIDC;
    const isToken = ctx.method === "POST" && ctx.path === tokenRoute;
    if (isToken) count += 1;
    await next();
    const route = forwarded.get(ctx.req);
    if (route !== undefined) {
      if (ctx.status === 200 && isObject(ctx.body)) ctx.body = { ...ctx.body, ...metadata.patch };
      metadataRequests.push({ ...route, status: ctx.status });
    }
    if (!isToken) return;
    // ctx.oidc exists once a route of the provider ran (its getter is defined by the route's first middleware).
    const oidc = "oidc" in ctx ? ctx.oidc : undefined;
    const form = oidc?.body ?? {};
    const answer = isObject(ctx.body) ? ctx.body : {};
    const clientId = oidc?.client?.clientId ?? stringOrUndefined(form.client_id);
    const error = stringOrUndefined(answer.error);
    const tokenType = stringOrUndefined(answer.token_type);
    const errorDetail = errorDetails.get(ctx);
    tokenRequests.push({
      clientId,
      authorization: ctx.headers.authorization?.split(" ")[0],
      fields: Object.keys(form).sort(),
      requestedScope: stringOrUndefined(form.scope),
      status: ctx.status,
      error,
      grantedScope: stringOrUndefined(answer.scope),
      tokenType,
      errorDetail,
    });
    const proof = ctx.get("DPoP");
    if (proof !== "") {
      try {
        const header = decodeProtectedHeader(proof);
        const claims = decodeJwt(proof);
        const answeredNonce = stringOrUndefined(ctx.response.get("DPoP-Nonce")) || undefined;
        dpopProofs.push({ clientId, header, claims, status: ctx.status, error, answeredNonce, tokenType, errorDetail });
      } catch {
        // Not a JWT: the provider refused it (invalid_dpop_proof), and there is nothing to decode.
      }
    }
    if (typeof form.client_assertion === "string") {
      try {
        const header = decodeProtectedHeader(form.client_assertion);
        const claims = decodeJwt(form.client_assertion);
        assertions.push({ clientId, header, claims, status: ctx.status, error });
      } catch {
        // Not a JWT: the provider refused it, and there is nothing to decode.
      }
    }
  });
  const callback = provider.callback();

  const metadataUrls: Record<WellKnownForm, string> = {
    oidc: `${issuer}/.well-known/openid-configuration`,
    rfc8414: `${origin}/.well-known/oauth-authorization-server${issuerPath}`,
  };
  const locations = new Map<string, WellKnownForm>([
    [new URL(metadataUrls.oidc).pathname, "oidc"],
    [new URL(metadataUrls.rfc8414).pathname, "rfc8414"],
  ]);
  /** The provider's own route for each form, relative to its mount path. */
  const providerRoutes: Record<WellKnownForm, string> = {
    oidc: "/.well-known/openid-configuration",
    rfc8414: "/.well-known/oauth-authorization-server",
  };
  let booting = true;

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" }).end(JSON.stringify(body));
  };
  /** Hands the request to the provider as `inner` (a path relative to the mount path, with query). */
  const forward = (req: IncomingMessage, res: ServerResponse, inner: string) => {
    if (issuerPath !== "") Object.assign(req, { originalUrl: `${issuerPath}${inner}` });
    req.url = inner;
    callback(req, res);
  };
  handler = (req, res) => {
    const raw = req.url ?? "/";
    const queryAt = raw.indexOf("?");
    const path = queryAt === -1 ? raw : raw.slice(0, queryAt);
    const query = queryAt === -1 ? "" : raw.slice(queryAt);
    if (path.includes("/.well-known/")) {
      const form = locations.get(path);
      if (booting && form !== undefined) {
        forward(req, res, `${providerRoutes[form]}${query}`);
        return;
      }
      const answer = (status: number) => {
        metadataRequests.push({ form: form ?? "other", path, status });
        send(res, status, status === 404 ? { error: "not_found" } : { error: "temporarily_unavailable" });
      };
      if (form === undefined) return answer(404);
      if (metadata.down) return answer(503);
      if (metadata.failNext > 0) {
        metadata.failNext -= 1;
        return answer(503);
      }
      if (!metadata.forms.includes(form)) return answer(404);
      forwarded.set(req, { form, path });
      forward(req, res, `${providerRoutes[form]}${query}`);
      return;
    }
    if (issuerPath === "") {
      callback(req, res);
    } else if (path === issuerPath || path.startsWith(`${issuerPath}/`)) {
      forward(req, res, raw.slice(issuerPath.length) || "/");
    } else {
      send(res, 404, { error: "not_found" });
    }
  };

  const discovery = (await (await fetch(metadataUrls.oidc, { signal: AbortSignal.timeout(5_000) })).json()) as Discovery;
  booting = false;
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
  const denylist = new Set<string>();
  const resourceServers = new Set<OidcResourceServer>();

  const secretClients: readonly SecretClient[] = [clients.basic, clients.post, clients.resourceServer, clients.dpopClient];
  const postForm = async (
    url: string,
    clientId: string,
    fields: Record<string, string>,
  ): Promise<{ status: number; body: Record<string, unknown> }> => {
    const headers: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" };
    const form = new URLSearchParams(fields);
    const secret = secretClients.find((client) => client.clientId === clientId);
    if (clientId === clients.privateKeyJwt.clientId) {
      form.set("client_id", clientId);
      form.set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
      form.set("client_assertion", await signAssertion(clients.privateKeyJwt, issuer));
    } else if (secret === undefined) {
      throw new Error(`no credentials for client ${clientId}`);
    } else if (clientId === clients.post.clientId || clientId === clients.dpopClient.clientId) {
      form.set("client_id", clientId);
      form.set("client_secret", secret.clientSecret);
    } else {
      headers.Authorization = `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(secret.clientSecret)}`).toString("base64")}`;
    }
    const response = await fetch(url, { method: "POST", headers, body: form, signal: AbortSignal.timeout(5_000) });
    const text = await response.text();
    return { status: response.status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
  };

  const introspect = async (token: string): Promise<Record<string, unknown>> => {
    const { status, body } = await postForm(discovery.introspection_endpoint, clients.resourceServer.clientId, {
      token,
      token_type_hint: "access_token",
    });
    if (status !== 200) throw new Error(`introspection answered ${status} ${String(body.error)}`);
    return body;
  };

  const revoke = async (token: string): Promise<Revocation> => {
    const jwt = isJwt(token);
    const owner = jwt ? decodeJwt(token).client_id : (await introspect(token)).client_id;
    if (typeof owner !== "string") throw new Error("revoke(): the token is not active, so its owner is unknown");
    const { status, body } = await postForm(discovery.revocation_endpoint, owner, { token, token_type_hint: "access_token" });
    const error = typeof body.error === "string" ? body.error : undefined;
    if (jwt) {
      const { jti } = decodeJwt(token);
      if (typeof jti !== "string") throw new Error("revoke(): the JWT has no jti");
      denylist.add(jti);
      return { status, error, denylisted: true };
    }
    if (status !== 200) throw new Error(`revocation answered ${status} ${String(error)}`);
    return { status, error, denylisted: false };
  };

  /** 200 for a token of ours: a JWT verified locally against the JWKS, an opaque one through introspection. */
  const judge = async (token: string | undefined): Promise<"jwt" | "opaque" | undefined> => {
    if (token === undefined) return undefined;
    if (isJwt(token)) {
      try {
        const { payload } = await jwtVerify(token, jwks, { issuer, audience: JWT_RESOURCE, typ: "at+jwt", algorithms: ["RS256"] });
        return typeof payload.jti === "string" && !denylist.has(payload.jti) ? "jwt" : undefined;
      } catch {
        return undefined;
      }
    }
    const answer = await introspect(token);
    return answer.active === true && audienceIncludes(answer.aud, OPAQUE_RESOURCE) ? "opaque" : undefined;
  };

  const startResourceServer = async (): Promise<OidcResourceServer> => {
    const requests: ResourceRequest[] = [];
    const rs = createServer((req, res) => {
      req.resume();
      const authorization = req.headers.authorization;
      const token = /^Bearer ([\x21-\x7e]+)$/.exec(authorization ?? "")?.[1];
      judge(token).then(
        (format) => {
          requests.push({ authorization, status: format === undefined ? 401 : 200, format });
          if (format === undefined) {
            res.writeHead(401, { "WWW-Authenticate": 'Bearer error="invalid_token"', "Content-Type": "application/json" });
            res.end(JSON.stringify({ error: "invalid_token" }));
          } else {
            res.writeHead(200, { "Content-Type": "application/json" });
            res.end(JSON.stringify({ ok: true, format, path: req.url }));
          }
        },
        (error: unknown) => {
          res.writeHead(500, { "Content-Type": "text/plain" });
          res.end(String(error));
        },
      );
    });
    rs.keepAliveTimeout = 500;
    const origin = `http://127.0.0.1:${await listen(rs)}`;
    const state: OidcResourceServer = {
      origin,
      requests,
      get authorizations() {
        return requests.map((request) => request.authorization);
      },
      get unauthorized() {
        return requests.filter((request) => request.status === 401).length;
      },
      close: () => {
        resourceServers.delete(state);
        return closeServer(rs);
      },
    };
    resourceServers.add(state);
    onTestFinished(() => state.close());
    return state;
  };

  return {
    issuer,
    discovery,
    clients,
    get count() {
      return count;
    },
    tokenRequests,
    assertions,
    dpopProofs,
    dpop,
    metadataRequests,
    metadataUrls,
    metadata,
    revoke,
    introspect,
    startResourceServer,
    close: async () => {
      await Promise.all([...resourceServers].map((rs) => rs.close()));
      await closeServer(server);
    },
  };
}

/** A client assertion (RFC 7523 §3) with a jti of its own, as oidc-provider requires. */
function signAssertion(client: KeyClient, audience: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: client.alg, kid: client.kid })
    .setIssuer(client.clientId)
    .setSubject(client.clientId)
    .setAudience(audience)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime("60s")
    .sign(client.privateKey);
}

function isJwt(token: string): boolean {
  try {
    decodeProtectedHeader(token);
    return true;
  } catch {
    return false;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function audienceIncludes(aud: unknown, expected: string): boolean {
  return aud === expected || (Array.isArray(aud) && aud.includes(expected));
}

/** RFC 6749 §2.3.1: each part form-encoded before base64. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.unref();
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
