/**
 * The options, typed where they are declared: each with its default and, for the defaults, why.
 * Validation lives in validate-options.ts; this file has no code that runs.
 */
import type { AssertionSigner } from "./client-assertion.js";
import type { DpopKey } from "./dpop.js";
import type { TokenEvent } from "./events.js";
import type { TokenStore } from "./store.js";

/**
 * What token requests are sent with: an axios instance of any copy or version in the peer range.
 * Only `request` is used, and it is typed here rather than as axios's `AxiosInstance`, so that an
 * instance of a nested second axios fits as well.
 */
export interface TokenHttpClient {
  /** axios's `instance.request(config)`. */
  request(config: TokenHttpRequest): Promise<{ readonly status: number; readonly data: unknown; readonly headers: unknown }>;
}

/**
 * The config of a request {@link TokenHttpClient.request} receives: a token request (`POST` to the
 * token endpoint), or with `issuer`, the `GET` of the authorization server's metadata.
 */
export interface TokenHttpRequest {
  /** `POST` for a token, `GET` for metadata. */
  method: "POST" | "GET";
  /** The token endpoint, or the metadata URL. */
  url: string;
  /** The form body of a token request; none for metadata. */
  data: string | undefined;
  /** Content-Type, Accept, and Authorization (`false`: none, not even one from the defaults). */
  headers: Record<string, string | false>;
  /** Always 0: the token request never follows a redirect. */
  maxRedirects: number;
  /** For axios's fetch adapter: redirects are an error. */
  fetchOptions: { redirect: "error" };
  /** ms left of the budget. */
  timeout: number;
  /** Ends the request on timeout or dispose. */
  signal: AbortSignal;
  /** Response size cap. */
  maxContentLength: number;
  /** Request size cap. */
  maxBodyLength: number;
  /** The body is read as text and parsed by the library. */
  responseType: "text";
  /** No parsing by axios. */
  transformResponse: ((data: unknown) => unknown)[];
  /** Every status resolves, so axios builds no error around the config (which carries the secret). */
  validateStatus: (status: number) => boolean;
}

/** How the client sends its secret to the token endpoint (RFC 6749 §2.3.1). */
export type ClientAuthMethod = "client_secret_post" | "client_secret_basic";

/** The JWS algorithms a {@link ClientCertificate}'s assertion can be signed with. */
export type ClientAssertionAlgorithm = "RS256" | "PS256" | "ES256";

/**
 * A private key with which the library signs a fresh client assertion for every token request
 * (RFC 7523 `private_key_jwt`): Microsoft Entra's certificate credential, or any server that has the
 * client's public key. The key never appears in an error, an event or the interceptor's rendering.
 */
export interface ClientCertificate {
  /**
   * The private key: PEM (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`, not
   * encrypted), or a Node.js `KeyObject`. RSA (2048 bits or more) or EC P-256.
   */
  privateKey: string | PrivateKeyObject;
  /**
   * The certificate of the key, PEM. With it the assertion's header carries the certificate's
   * thumbprints, `x5t#S256` and `x5t`, which is how Entra finds the key.
   */
  certificate?: string;
  /**
   * The signing algorithm.
   * @default "RS256" for an RSA key (what every Entra tenant accepts; PS256 is what Microsoft now recommends), "ES256" for P-256
   */
  algorithm?: ClientAssertionAlgorithm;
}

/** The JWS algorithms DPoP proofs can be signed with. */
export type DpopAlgorithm = "ES256" | "EdDSA" | "RS256" | "PS256";

/**
 * DPoP (RFC 9449) with a key of the caller's, or options for the key the library generates. A
 * `KeyObject` key's thumbprint keys the store, so replicas with the same key share a token; a
 * `CryptoKey` pair, like a generated key, keeps its tokens to this source.
 */
export interface DpopOptions {
  /** The private key (a `CryptoKey` with `sign`, or a Node.js `KeyObject`); without it a non-extractable pair is generated. */
  privateKey?: CryptoKey | PrivateKeyObject;
  /** The public key, required with a `CryptoKey` private key: proofs carry it. */
  publicKey?: CryptoKey;
  /**
   * The algorithm of the generated key, or of the given one.
   * @default "ES256", or what the given key is
   */
  algorithm?: DpopAlgorithm;
  /**
   * Accept a `Bearer` token from a server that does not bind tokens (it ignored the proof) and send
   * it as Bearer; by default that is an error, since the token would not be sender-constrained.
   * @default false
   */
  allowBearer?: boolean;
}

/** The part of a Node.js `KeyObject` the library uses (typed by shape, so the core entry needs no Node types). */
export interface PrivateKeyObject {
  /** `"private"` for a private key. */
  readonly type: string;
  /** `KeyObject.export`; called once, with `{ format: "der", type: "pkcs8" }`. */
  export(options: { format: "der"; type: "pkcs8" }): Uint8Array;
}

/** Bounds for retrying transient token-endpoint failures (429, 5xx, network errors). */
export interface RetryOptions {
  /**
   * Attempts in total, the first included; `1` disables retries.
   * @default 3
   */
  attempts?: number;
  /**
   * First backoff ceiling; each retry doubles it, and the wait is drawn at random below it (full jitter).
   * @default 500
   */
  baseDelayMs?: number;
  /**
   * Largest backoff ceiling.
   * @default 10_000
   */
  maxDelayMs?: number;
  /**
   * Largest `Retry-After` honoured; longer demands are cut to this.
   * @default 60_000
   */
  maxRetryAfterMs?: number;
}

/**
 * Where tokens come from: a token endpoint URL, a Microsoft Entra tenant, or an issuer whose metadata
 * names the token endpoint. Exactly one of the three.
 */
export type TokenEndpointOptions =
  | {
      /** Token endpoint URL (RFC 6749 §3.2). */
      tokenUrl: string;
      /** Give one of `tokenUrl`, `tenantId` and `issuer`. */
      tenantId?: never;
      /** Goes with `tenantId` only. */
      authorityHost?: never;
      /** Give one of `tokenUrl`, `tenantId` and `issuer`. */
      issuer?: never;
    }
  | {
      /** Give one of `tokenUrl`, `tenantId` and `issuer`. */
      tokenUrl?: never;
      /** Microsoft Entra tenant (id or domain); the token URL becomes `{authorityHost}/{tenantId}/oauth2/v2.0/token`. */
      tenantId: string;
      /**
       * Microsoft Entra authority host, for national clouds.
       * @default "https://login.microsoftonline.com"
       */
      authorityHost?: string;
      /** Give one of `tokenUrl`, `tenantId` and `issuer`. */
      issuer?: never;
    }
  | {
      /** Give one of `tokenUrl`, `tenantId` and `issuer`. */
      tokenUrl?: never;
      /** Give one of `tokenUrl`, `tenantId` and `issuer`. */
      tenantId?: never;
      /** Goes with `tenantId` only. */
      authorityHost?: never;
      /**
       * The authorization server's issuer identifier, exactly as its metadata states it (Auth0's ends in
       * `/`). The token endpoint and the client authentication methods are read once from its metadata
       * (OpenID Connect Discovery, else RFC 8414), before the first token request.
       */
      issuer: string;
    };

/** How the client proves who it is: a client secret, a client assertion, or a private key. Exactly one of the three. */
export type ClientCredentialOptions =
  | {
      /** OAuth 2.0 client secret. */
      clientSecret: string;
      /** Give one of `clientSecret`, `clientAssertion` and `clientCertificate`. */
      clientAssertion?: never;
      /** Give one of `clientSecret`, `clientAssertion` and `clientCertificate`. */
      clientCertificate?: never;
      /**
       * How the client secret is sent. `client_secret_basic` form-encodes id and secret before base64 (RFC 6749 §2.3.1).
       * @default "client_secret_post"; with `issuer`, post if the server lists it, else basic
       */
      clientAuthMethod?: ClientAuthMethod;
    }
  | {
      /** Give one of `clientSecret`, `clientAssertion` and `clientCertificate`. */
      clientSecret?: never;
      /**
       * A function that returns a fresh signed client assertion (RFC 7523), called for every token request;
       * for workload identity federation or a key in an HSM. A fixed string works only with servers
       * that accept an assertion twice: most refuse a replayed `jti`.
       */
      clientAssertion: (() => string | Promise<string>) | string;
      /** Give one of `clientSecret`, `clientAssertion` and `clientCertificate`. */
      clientCertificate?: never;
      /** Applies to `clientSecret` only. */
      clientAuthMethod?: never;
    }
  | {
      /** Give one of `clientSecret`, `clientAssertion` and `clientCertificate`. */
      clientSecret?: never;
      /** Give one of `clientSecret`, `clientAssertion` and `clientCertificate`. */
      clientAssertion?: never;
      /** The private key (and certificate) the library signs a fresh client assertion with for every token request. */
      clientCertificate: ClientCertificate;
      /** Applies to `clientSecret` only. */
      clientAuthMethod?: never;
    };

/**
 * Options of {@link createTokenSource}: the common ones, where tokens come from, and the client's
 * credential. Validated when the source is created; an unknown name is an error.
 */
export type TokenSourceOptions = CommonTokenSourceOptions & TokenEndpointOptions & ClientCredentialOptions;

/**
 * Options of {@link createTokenRefreshInterceptor}: those of a token source, and where the token
 * may go. Validated when the interceptor is created; an unknown name is an error.
 */
export type TokenRefreshOptions = CommonTokenRefreshOptions & TokenEndpointOptions & ClientCredentialOptions;

/** The options every token source has, whatever its endpoint and credential. */
export interface CommonTokenSourceOptions {
  /** OAuth 2.0 client id. */
  clientId: string;
  /** Scope(s) to request; an array is joined with spaces, an empty value is left out. */
  scope?: string | readonly string[];
  /** Extra form parameters for the token request, e.g. `{ audience }` for Auth0 or `{ resource }`. */
  extraParams?: Readonly<Record<string, string>>;
  /**
   * Where tokens are kept.
   * @default new InMemoryTokenStore()
   */
  store?: TokenStore;
  /**
   * Key of this client's token in the store; by default derived from token URL, client id, scope, extra
   * params and a short fingerprint of the secret (never the secret), so replicas with an old and a new
   * secret during a rotation keep apart.
   */
  cacheKey?: string;
  /**
   * From this long before expiry a request still gets the cached token at once and one background refresh starts.
   * Clamped to half the token's lifetime.
   * @default 300_000
   */
  refreshMarginMs?: number;
  /**
   * From this long before expiry requests wait for a new token. Clamped to a tenth of the token's lifetime.
   * @default 30_000
   */
  expiryBufferMs?: number;
  /**
   * Random share of the margin added to it per token, so that processes whose tokens were issued together do not refresh together.
   * @default 0.1
   */
  refreshJitter?: number;
  /**
   * Axios instance for token requests (proxies, TLS settings). Must not be an instance the interceptor is installed on.
   * @default axios.create(), made at the first token request
   */
  httpClient?: TokenHttpClient;
  /**
   * Time budget for getting a token, every attempt, backoff and `Retry-After` wait included.
   * @default 10_000
   */
  timeoutMs?: number;
  /** Retries of transient token-endpoint failures. */
  retry?: RetryOptions;
  /**
   * Allow `http:` token URLs and origins that are not loopback. For tests behind a TLS-terminating proxy only.
   * @default false
   */
  allowInsecureHttp?: boolean;
  /** Receives typed events (token cached, refresh failed, replays, throttling); never a token or secret. */
  onEvent?: (event: TokenEvent) => void;
  /**
   * Sender-constrained tokens (DPoP, RFC 9449): every token request and every API request carries a
   * fresh proof signed with a key that never leaves the process, so a stolen token is useless.
   * `true` generates a non-extractable ES256 key pair for this source.
   */
  dpop?: true | DpopOptions;
}

/** The options every interceptor has: those of a token source, and where the token may go. */
export interface CommonTokenRefreshOptions extends CommonTokenSourceOptions {
  /**
   * Origins (scheme, host, port) that may receive the token.
   * @default the origin of each request's `baseURL`
   */
  allowedOrigins?: readonly string[];
  /**
   * Resource statuses that make `attach()` drop the rejected token and replay the request once with a new one.
   * 403 is not among them by default: it means insufficient scope, which a new token from the same grant has too.
   * @default [401]
   */
  replayStatuses?: readonly number[];
}

/** Where the token endpoint is: given, or read from the issuer's metadata. Internal. */
export type EndpointSetting = { readonly kind: "url"; readonly tokenUrl: string } | { readonly kind: "issuer"; readonly issuer: string };

/** Validated, fully defaulted options; internal. */
export interface Settings {
  readonly endpoint: EndpointSetting;
  readonly clientId: string;
  readonly credential: /** `method` undefined: the default, or with an issuer, what its metadata lists. */
    | { readonly kind: "secret"; readonly secret: string; readonly method: ClientAuthMethod | undefined }
    | { readonly kind: "assertion"; readonly assertion: () => string | Promise<string>; readonly fixed: boolean }
    | { readonly kind: "certificate"; readonly signer: AssertionSigner };
  readonly scope: string | undefined;
  readonly extraParams: Readonly<Record<string, string>>;
  readonly store: TokenStore;
  readonly cacheKey: string;
  readonly refreshMarginMs: number;
  readonly expiryBufferMs: number;
  readonly refreshJitter: number;
  readonly httpClient: TokenHttpClient | undefined;
  readonly timeoutMs: number;
  readonly retry: Required<RetryOptions>;
  readonly allowedOrigins: ReadonlySet<string> | undefined;
  readonly allowInsecureHttp: boolean;
  readonly replayStatuses: ReadonlySet<number>;
  readonly onEvent: ((event: TokenEvent) => void) | undefined;
  readonly dpop: DpopKey | undefined;
}

/** Defaults, with the reason for each. */
export const DEFAULTS = {
  authorityHost: "https://login.microsoftonline.com",
  clientAuthMethod: "client_secret_post", // what Entra and most snippets use; basic is opt-in
  refreshMarginMs: 5 * 60_000, // MSAL's 300 s renewal offset, google's 5 min eager threshold
  expiryBufferMs: 30_000, // httpx-auth's early expiry; covers clock skew and request latency
  refreshJitter: 0.1, // spreads a fleet's refreshes (azure-sdk-for-python adds 0–60 s)
  timeoutMs: 10_000, // axios's own default is no timeout at all
  retry: { attempts: 3, baseDelayMs: 500, maxDelayMs: 10_000, maxRetryAfterMs: 60_000 },
  replayStatuses: [401], // 403 means insufficient_scope: a new token from the same grant has the same scope
} as const;
