/**
 * panva's oidc-provider, an OpenID-certified authorization server, on 127.0.0.1 for end-to-end
 * tests, and a loopback resource server that checks the tokens it issues.
 *
 * What oidc-provider does, read from its source (9.13.x), that shapes this file:
 * - It enforces each client's registered token_endpoint_auth_method: a basic client that sends its
 *   secret in the body, or the reverse, gets invalid_client. A token therefore proves the method.
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
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JWK } from "jose";
import Provider, { errors, type ClientMetadata, type ResourceServer } from "oidc-provider";
import { onTestFinished } from "vitest";

export const JWT_RESOURCE = "https://api.test/jwt";
export const OPAQUE_RESOURCE = "https://api.test/opaque";
export const RESOURCE_SCOPE = "api:read";

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

/** The discovery members the tests use. */
export interface Discovery {
  readonly issuer: string;
  readonly token_endpoint: string;
  readonly introspection_endpoint: string;
  readonly revocation_endpoint: string;
  readonly jwks_uri: string;
}

/** What `revoke()` did: the provider's answer, and whether the token went on the resource server's denylist (JWTs). */
export interface Revocation {
  readonly status: number;
  readonly error: string | undefined;
  readonly denylisted: boolean;
}

export interface OidcTestBed {
  readonly issuer: string;
  readonly discovery: Discovery;
  readonly clients: {
    readonly basic: SecretClient;
    readonly post: SecretClient;
    readonly privateKeyJwt: KeyClient;
    /** Allowed to call the introspection endpoint for any client's token; has no grant of its own. */
    readonly resourceServer: SecretClient;
  };
  /** POST requests that reached the token endpoint, whatever the provider answered. */
  readonly count: number;
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
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end();
  };
  const server = createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 500;
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;

  const signing = await generateKeyPair("RS256", { extractable: true });
  const providerKey: JWK = { ...(await exportJWK(signing.privateKey)), kid: "provider-rs256", alg: "RS256", use: "sig" };
  const assertionKeys = await generateKeyPair("ES256", { extractable: true });
  const assertionKid = "client-es256";
  const assertionPublic: JWK = { ...(await exportJWK(assertionKeys.publicKey)), kid: assertionKid, alg: "ES256", use: "sig" };

  // Secrets may hold only %x20-7E (RFC 6749 Appendix A; the provider refuses others); these need form-encoding in Basic.
  const clients = {
    basic: { clientId: "basic-client", clientSecret: `basic ${randomUUID()} +/=%&:~` },
    post: { clientId: "post-client", clientSecret: `post ${randomUUID()} +/=%&:~` },
    privateKeyJwt: { clientId: "jwt-client", privateKey: assertionKeys.privateKey, alg: "ES256", kid: assertionKid },
    resourceServer: { clientId: "resource-server", clientSecret: `rs-${randomUUID()}` },
  } as const satisfies OidcTestBed["clients"];
  const machine = { grant_types: ["client_credentials"], response_types: [], redirect_uris: [] } satisfies Partial<ClientMetadata>;
  const registered: ClientMetadata[] = [
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
    {
      client_id: clients.resourceServer.clientId,
      client_secret: clients.resourceServer.clientSecret,
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ];

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

  // Policies and TTL are set explicitly even where they match the defaults: the defaults warn on every call.
  const provider = new Provider(issuer, {
    clients: registered,
    jwks: { keys: [providerKey] },
    features: {
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

  let count = 0;
  const tokenPath = new URL(provider.urlFor("token")).pathname;
  provider.use(async (ctx, next) => {
    if (ctx.method === "POST" && ctx.path === tokenPath) count += 1;
    await next();
  });
  handler = provider.callback();

  const discovery = (await (
    await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5_000) })
  ).json()) as Discovery;
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
  const denylist = new Set<string>();
  const resourceServers = new Set<OidcResourceServer>();

  const secretClients: readonly SecretClient[] = [clients.basic, clients.post, clients.resourceServer];
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
    } else if (clientId === clients.post.clientId) {
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
