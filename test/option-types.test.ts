/**
 * The "exactly one of" rules are in the option types, so a wrong combination fails to compile.
 * `tsc --noEmit` (npm run typecheck, CI) checks the `@ts-expect-error` lines below: if one of
 * them compiled, the directive itself would be the error. The test only keeps vitest aware of it.
 */
import { createPrivateKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { TokenRefreshOptions } from "../src/index.js";

const endpoint = { tokenUrl: "https://idp.example.com/token" } as const;
const pem = "-----BEGIN PRIVATE KEY-----\n…\n-----END PRIVATE KEY-----";
// A Node.js KeyObject fits `privateKey` by shape, though the option types do not name Node's types.
const keyObject = (): ReturnType<typeof createPrivateKey> => createPrivateKey(pem);

const accepted: TokenRefreshOptions[] = [
  { ...endpoint, clientId: "c", clientSecret: "s" },
  { ...endpoint, clientId: "c", clientSecret: "s", clientAuthMethod: "client_secret_basic" },
  { ...endpoint, clientId: "c", clientAssertion: () => "jwt" },
  { tenantId: "contoso", authorityHost: "https://login.microsoftonline.us", clientId: "c", clientSecret: "s" },
  { issuer: "https://kc.example.com/realms/main", clientId: "c", clientSecret: "s" },
  {
    issuer: "https://kc.example.com/realms/main",
    clientId: "c",
    clientCertificate: { privateKey: pem, certificate: pem, algorithm: "PS256" },
  },
  {
    tenantId: "contoso",
    clientId: "c",
    clientCertificate: {
      get privateKey() {
        return keyObject();
      },
    },
  },
];

const refused: TokenRefreshOptions[] = [
  // @ts-expect-error: tokenUrl and tenantId together
  { ...endpoint, tenantId: "contoso", clientId: "c", clientSecret: "s" },
  // @ts-expect-error: neither tokenUrl nor tenantId
  { clientId: "c", clientSecret: "s" },
  // @ts-expect-error: authorityHost goes with tenantId only
  { ...endpoint, authorityHost: "https://login.microsoftonline.us", clientId: "c", clientSecret: "s" },
  // @ts-expect-error: clientSecret and clientAssertion together
  { ...endpoint, clientId: "c", clientSecret: "s", clientAssertion: () => "jwt" },
  // @ts-expect-error: no credential
  { ...endpoint, clientId: "c" },
  // @ts-expect-error: clientAuthMethod applies to clientSecret only
  { ...endpoint, clientId: "c", clientAssertion: () => "jwt", clientAuthMethod: "client_secret_basic" },
  // @ts-expect-error: issuer and tokenUrl together
  { ...endpoint, issuer: "https://kc.example.com/realms/main", clientId: "c", clientSecret: "s" },
  // @ts-expect-error: authorityHost goes with tenantId only, not with issuer
  { issuer: "https://kc.example.com/realms/main", authorityHost: "https://login.microsoftonline.us", clientId: "c", clientSecret: "s" },
  // @ts-expect-error: clientCertificate and clientSecret together
  { ...endpoint, clientId: "c", clientSecret: "s", clientCertificate: { privateKey: pem } },
  // @ts-expect-error: clientAuthMethod applies to clientSecret only
  { ...endpoint, clientId: "c", clientCertificate: { privateKey: pem }, clientAuthMethod: "client_secret_post" },
  // @ts-expect-error: an algorithm the library does not sign with
  { ...endpoint, clientId: "c", clientCertificate: { privateKey: pem, algorithm: "HS256" } },
  // @ts-expect-error: a misspelt option name
  { ...endpoint, clientId: "c", clientSecret: "s", scopes: ["a"] },
];

describe("option types", () => {
  it("are checked by tsc (see the @ts-expect-error lines)", () => {
    expect(accepted).toHaveLength(7);
    expect(refused).toHaveLength(12);
  });
});

describe("attach() types", () => {
  it("accepts an instance of another axios copy (a nested second version)", async () => {
    const { default: AxiosNested } = await import("axios-nested");
    const { createTokenRefreshInterceptor } = await import("../src/index.js");
    const auth = createTokenRefreshInterceptor({ tokenUrl: "https://idp.example.com/token", clientId: "c", clientSecret: "s" });
    // This line is the test: it must compile with the other copy's AxiosInstance type.
    const detach = auth.attach(AxiosNested.create({ baseURL: "https://api.example.com" }));
    expect(typeof detach).toBe("function");
    auth.dispose();
  });
});
