/**
 * A loopback resource server for DPoP-bound (RFC 9449) JWT access tokens from the oidc-provider test
 * bed (test/helpers/oidc-provider.ts, resource JWT_RESOURCE). It does what §7.1 asks of a resource
 * server and records each request with the reason of any refusal:
 * - the token: `Authorization: DPoP <token>` (a Bearer-scheme DPoP token is refused, §7.2), verified
 *   against the provider's JWKS (issuer, audience JWT_RESOURCE, `typ: at+jwt`), not on the denylist,
 *   and bound (`cnf.jkt`);
 * - the proof: one `DPoP` header, verified with jose's `EmbeddedJWK` (the key in the header, which
 *   must be public) and `typ: dpop+jwt`; `jti` never seen before; `htm` the method; `htu` this
 *   server's origin and the request's path, with no query or fragment; `iat` within 60 s; `ath` the
 *   base64url SHA-256 of the token; the thumbprint (RFC 7638) of the header's `jwk` = `cnf.jkt`;
 * - with a nonce mode, `nonce` = the current nonce, else 401 `use_dpop_nonce` with `DPoP-Nonce`
 *   (§9). It gives out the current nonce, the same for every caller, so concurrent requests all
 *   succeed on their replay; `rotateNonce()` changes it.
 * Refusals are 401 with `WWW-Authenticate: DPoP algs="…", error="…"`: invalid_token for the token,
 * invalid_dpop_proof for the proof, use_dpop_nonce for the nonce. Unlike oidc-provider's
 * own checks, the jti of a proof refused for its nonce counts as spent (a replay must sign a new one).
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  EmbeddedJWK,
  jwtVerify,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from "jose";
import { onTestFinished } from "vitest";
import { JWT_RESOURCE, type OidcTestBed } from "./oidc-provider.js";

/** The proof algs this server takes: those the library can sign with, and Ed25519 (the new name of EdDSA). */
export const DPOP_RESOURCE_ALGS = ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"] as const;
/** How far a proof's `iat` may be from now, in seconds. */
export const IAT_WINDOW_SECONDS = 60;

/**
 * Nonces: `off`, none asked; `required`, every proof must carry the current one; `refuse-all`, every
 * proof is refused with a new nonce (to prove a client replays once, not in a loop).
 */
export type NonceMode = "off" | "required" | "refuse-all";

/** Why a request was refused; `undefined` for one served. */
export type Refusal =
  | "no-authorization"
  | "not-dpop-scheme"
  | "invalid-token"
  | "denylisted"
  | "not-bound"
  | "no-proof"
  | "invalid-proof"
  | "jti-replay"
  | "htm"
  | "htu"
  | "iat"
  | "ath"
  | "jkt"
  | "use-nonce";

/** One request as the server judged it. */
export interface DpopResourceRequest {
  readonly method: string;
  /** Path and query as sent. */
  readonly url: string;
  /** The Authorization header's scheme as sent (`DPoP`, `Bearer`), if there was one. */
  readonly scheme: string | undefined;
  /** The access token from the Authorization header. */
  readonly token: string | undefined;
  /** The `DPoP` header as sent (for checking that errors never show it). */
  readonly dpop: string | undefined;
  /** The proof's protected header, decoded, when the `DPoP` header held a JWT. */
  readonly proofHeader: ProtectedHeaderParameters | undefined;
  /** The proof's claims, decoded (verified only when `refused` is not `invalid-proof`). */
  readonly proof: JWTPayload | undefined;
  readonly status: 200 | 302 | 401;
  readonly refused: Refusal | undefined;
  /** The `DPoP-Nonce` header answered, if any. */
  readonly answeredNonce: string | undefined;
}

export interface DpopResourceOptions {
  /** @default "off" */
  nonce?: NonceMode;
}

export interface DpopResourceServer {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  readonly origin: string;
  /** In the order they were answered. */
  readonly requests: readonly DpopResourceRequest[];
  /** How many 401s it answered. */
  readonly unauthorized: number;
  /** Mutable: the nonce mode. */
  nonceMode: NonceMode;
  /** Mutable: send the current nonce as `DPoP-Nonce` on every 200 too (§8.2 lets a server hand out the next nonce so). */
  announceNonce: boolean;
  /** The nonce a proof must carry now (there always is one; only the nonce mode decides whether it is asked). */
  readonly nonce: string;
  /** Replaces the current nonce and returns the new one; proofs with the old one are refused from now on. */
  rotateNonce(): string;
  /** Access tokens refused as invalid_token even though they verify (a revoked token). */
  readonly denylist: Set<string>;
  /** Request path (no query) → `Location`: requests that pass every check are answered 302 there. */
  readonly redirects: Map<string, string>;
  close(): Promise<void>;
}

/** Starts the resource server on 127.0.0.1 with an OS-picked port; it closes when the test finishes. */
export async function startDpopResourceServer(
  bed: Pick<OidcTestBed, "issuer" | "discovery">,
  options: DpopResourceOptions = {},
): Promise<DpopResourceServer> {
  const jwks = createRemoteJWKSet(new URL(bed.discovery.jwks_uri));
  const requests: DpopResourceRequest[] = [];
  const seenJti = new Set<string>();
  const denylist = new Set<string>();
  const redirects = new Map<string, string>();
  let nonce = newNonce();
  let origin = "";

  const judge = async (req: IncomingMessage): Promise<Omit<DpopResourceRequest, "answeredNonce"> & { location?: string }> => {
    const method = req.method ?? "GET";
    const url = req.url ?? "/";
    const path = url.split(/[?#]/, 1)[0] ?? "/";
    const authorization = req.headers.authorization;
    const match = /^(\S+) ([\x21-\x7e]+)$/.exec(authorization ?? "");
    const scheme = match?.[1] ?? authorization?.split(" ")[0];
    const token = match?.[2];
    const sent = req.headers.dpop;
    const rawProof = Array.isArray(sent) ? sent.join(", ") : sent;
    let proofHeader: ProtectedHeaderParameters | undefined;
    let proof: JWTPayload | undefined;
    if (typeof rawProof === "string") {
      try {
        proofHeader = decodeProtectedHeader(rawProof);
        proof = decodeJwt(rawProof);
      } catch {
        // Not a JWT: refused below as invalid-proof.
      }
    }
    const base = { method, url, scheme, token, dpop: rawProof, proofHeader, proof };
    const refuse = (refused: Refusal) => ({ ...base, status: 401 as const, refused });

    if (authorization === undefined) return refuse("no-authorization");
    if (scheme?.toLowerCase() !== "dpop" || token === undefined) return refuse("not-dpop-scheme");
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, jwks, {
        issuer: bed.issuer,
        audience: JWT_RESOURCE,
        typ: "at+jwt",
        algorithms: ["RS256"],
      }));
    } catch {
      return refuse("invalid-token");
    }
    if (denylist.has(token)) return refuse("denylisted");
    const jkt = (claims.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (typeof jkt !== "string") return refuse("not-bound");

    // Two DPoP headers come joined with ", ", which no compact JWT contains: they fail as one invalid proof.
    if (rawProof === undefined) return refuse("no-proof");
    let verified: { payload: JWTPayload; protectedHeader: ProtectedHeaderParameters };
    try {
      verified = await jwtVerify(rawProof, EmbeddedJWK, { typ: "dpop+jwt", algorithms: [...DPOP_RESOURCE_ALGS] });
    } catch {
      return refuse("invalid-proof");
    }
    const { payload, protectedHeader } = verified;
    if (typeof payload.jti !== "string" || payload.jti === "" || seenJti.has(payload.jti)) return refuse("jti-replay");
    seenJti.add(payload.jti);
    if (payload.htm !== method) return refuse("htm");
    if (!htuMatches(payload.htu, `${origin}${path}`)) return refuse("htu");
    if (typeof payload.iat !== "number" || Math.abs(Date.now() / 1000 - payload.iat) > IAT_WINDOW_SECONDS) return refuse("iat");
    if (payload.ath !== sha256(token)) return refuse("ath");
    if (protectedHeader.jwk === undefined || (await calculateJwkThumbprint(protectedHeader.jwk)) !== jkt) return refuse("jkt");
    if (state.nonceMode === "refuse-all") {
      nonce = newNonce();
      return refuse("use-nonce");
    }
    if (state.nonceMode === "required" && payload.nonce !== nonce) return refuse("use-nonce");

    const location = redirects.get(path);
    return location === undefined ? { ...base, status: 200, refused: undefined } : { ...base, status: 302, refused: undefined, location };
  };

  const answer = (res: ServerResponse, verdict: Awaited<ReturnType<typeof judge>>) => {
    const { location, ...request } = verdict;
    const headers: Record<string, string> = { "Content-Type": "application/json", "Cache-Control": "no-store" };
    let answeredNonce: string | undefined;
    if (request.refused === "use-nonce" || (request.status === 200 && state.announceNonce)) {
      answeredNonce = nonce;
      headers["DPoP-Nonce"] = nonce;
    }
    if (request.refused !== undefined) headers["WWW-Authenticate"] = challenge(request.refused);
    if (location !== undefined) headers.Location = location;
    requests.push({ ...request, answeredNonce });
    const body =
      request.refused === undefined ? { ok: true, method: request.method, path: request.url } : { error: errorCode(request.refused) };
    res.writeHead(request.status, headers).end(JSON.stringify(body));
  };

  const server = createServer((req, res) => {
    req.resume();
    judge(req).then(
      (verdict) => answer(res, verdict),
      (error: unknown) => {
        res.writeHead(500, { "Content-Type": "text/plain" }).end(String(error));
      },
    );
  });
  server.keepAliveTimeout = 500;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.unref();
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const state: DpopResourceServer = {
    origin,
    requests,
    get unauthorized() {
      return requests.filter((request) => request.status === 401).length;
    },
    nonceMode: options.nonce ?? "off",
    announceNonce: false,
    get nonce() {
      return nonce;
    },
    rotateNonce() {
      nonce = newNonce();
      return nonce;
    },
    denylist,
    redirects,
    close: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  onTestFinished(() => state.close());
  return state;
}

/** base64url(SHA-256(value)): a proof's `ath` for the token `value`. */
export function sha256(value: string): string {
  return createHash("sha256").update(value, "ascii").digest("base64url");
}

/** `htu` names `expected` (origin and path) and has no query or fragment; compared after URL normalization. */
function htuMatches(htu: unknown, expected: string): boolean {
  if (typeof htu !== "string" || htu.includes("?") || htu.includes("#")) return false;
  try {
    return new URL(htu).href === new URL(expected).href;
  } catch {
    return false;
  }
}

function newNonce(): string {
  return randomBytes(16).toString("base64url");
}

function errorCode(refused: Refusal): "invalid_token" | "invalid_dpop_proof" | "use_dpop_nonce" | undefined {
  switch (refused) {
    case "no-authorization":
      return undefined;
    case "not-dpop-scheme":
    case "invalid-token":
    case "denylisted":
    case "not-bound":
      return "invalid_token";
    case "use-nonce":
      return "use_dpop_nonce";
    default:
      return "invalid_dpop_proof";
  }
}

/** The WWW-Authenticate challenge of a refusal (RFC 9449 §7.1; no error for a request without credentials, RFC 6750 §3.1). */
function challenge(refused: Refusal): string {
  const algs = `DPoP algs="${DPOP_RESOURCE_ALGS.join(" ")}"`;
  const error = errorCode(refused);
  return error === undefined ? algs : `${algs}, error="${error}"`;
}
