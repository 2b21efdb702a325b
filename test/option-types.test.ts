/**
 * The "exactly one of" rules are in the option types, so a wrong combination fails to compile.
 * `tsc --noEmit` (npm run typecheck, CI) checks the `@ts-expect-error` lines below: if one of
 * them compiled, the directive itself would be the error. The test only keeps vitest aware of it.
 */
import { describe, expect, it } from "vitest";
import type { TokenRefreshOptions } from "../src/index.js";

const endpoint = { tokenUrl: "https://idp.example.com/token" } as const;

const accepted: TokenRefreshOptions[] = [
  { ...endpoint, clientId: "c", clientSecret: "s" },
  { ...endpoint, clientId: "c", clientSecret: "s", clientAuthMethod: "client_secret_basic" },
  { ...endpoint, clientId: "c", clientAssertion: () => "jwt" },
  { tenantId: "contoso", authorityHost: "https://login.microsoftonline.us", clientId: "c", clientSecret: "s" },
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
  // @ts-expect-error: a misspelt option name
  { ...endpoint, clientId: "c", clientSecret: "s", scopes: ["a"] },
];

describe("option types", () => {
  it("are checked by tsc (see the @ts-expect-error lines)", () => {
    expect(accepted).toHaveLength(4);
    expect(refused).toHaveLength(7);
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
