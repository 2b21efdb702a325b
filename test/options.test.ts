import { describe, expect, it } from "vitest";
import { createTokenRefreshInterceptor, InvalidOptionError, type TokenRefreshOptions } from "../src/index.js";
import { startTokenServer } from "./helpers/servers.js";

const base = { tokenUrl: "https://idp.example.com/oauth2/token", clientId: "c", clientSecret: "s" };
const create = (options: Record<string, unknown>) => () => createTokenRefreshInterceptor(options as unknown as TokenRefreshOptions);

describe("options are validated at construction", () => {
  it.each([
    [{ ...base, clientId: "" }, '"clientId" must be a non-empty string', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, clientId: 42 }, '"clientId" must be a non-empty string', "ERR_INVALID_ARG_TYPE"],
    [
      { ...base, clientSecret: undefined },
      'exactly one of "clientSecret", "clientAssertion" and "clientCertificate" must be given',
      "ERR_INVALID_ARG_VALUE",
    ],
    [
      { ...base, clientAssertion: "a" },
      'exactly one of "clientSecret", "clientAssertion" and "clientCertificate" must be given',
      "ERR_INVALID_ARG_VALUE",
    ],
    [{ ...base, tenantId: "t" }, 'exactly one of "tokenUrl", "tenantId" and "issuer" must be given', "ERR_INVALID_ARG_VALUE"],
    [{ clientId: "c", clientSecret: "s" }, 'exactly one of "tokenUrl", "tenantId" and "issuer" must be given', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, tokenUrl: "not a url" }, '"tokenUrl" must be an absolute URL', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, tokenUrl: "http://idp.example.com/token" }, '"tokenUrl" must use https: outside loopback hosts', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, tokenUrl: "https://idp.example.com/token#frag" }, '"tokenUrl" must not contain a fragment', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, tokenUrl: "https://u:p@idp.example.com/token" }, '"tokenUrl" must not contain credentials', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, tokenUrl: "file:///etc/passwd" }, '"tokenUrl" must use https:', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, tokenUrl: "data:text/plain,x" }, '"tokenUrl" must use https:', "ERR_INVALID_ARG_VALUE"],
    [
      { ...base, clientAuthMethod: "private_key_jwt" },
      '"clientAuthMethod" must be "client_secret_post" or "client_secret_basic"',
      "ERR_INVALID_ARG_VALUE",
    ],
    [{ ...base, scope: 7 }, '"scope" must be a string or an array of strings', "ERR_INVALID_ARG_TYPE"],
    [{ ...base, extraParams: { audience: 1 } }, '"extraParams.audience" must be a string', "ERR_INVALID_ARG_TYPE"],
    [{ ...base, extraParams: { client_secret: "x" } }, '"extraParams.client_secret" is set by the library', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, refreshMarginMs: -1 }, '"refreshMarginMs" must be a number of milliseconds', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, timeoutMs: 0 }, '"timeoutMs" must be a number of milliseconds from 1', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, timeoutMs: 2 ** 31 }, '"timeoutMs" must be a number of milliseconds', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, retry: { attempts: 0 } }, '"retry.attempts" must be an integer from 1 to 10', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, store: {} }, '"store" must have get, set and delete methods', "ERR_INVALID_ARG_TYPE"],
    [{ ...base, allowedOrigins: ["https://api.example.com/v1"] }, '"allowedOrigins[0]" must be an origin', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, allowedOrigins: ["http://api.example.com"] }, '"allowedOrigins[0]" must use https:', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, replayStatuses: [500] }, '"replayStatuses" must be an array of 4xx status codes', "ERR_INVALID_ARG_VALUE"],
    [
      { ...base, tenantId: undefined, tokenUrl: undefined, authorityHost: "x" },
      'exactly one of "tokenUrl", "tenantId" and "issuer"',
      "ERR_INVALID_ARG_VALUE",
    ],
    [{ ...base, scopes: ["a"] }, 'unknown option "scopes"; did you mean "scope"?', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, clientsecret: "s" }, 'unknown option "clientsecret"; did you mean "clientSecret"?', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, tokenURL: "https://x" }, 'unknown option "tokenURL"; did you mean "tokenUrl"?', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, retry: { attempt: 2 } }, 'unknown option "retry.attempt"; did you mean "retry.attempts"?', "ERR_INVALID_ARG_VALUE"],
    [{ ...base, frobnicate: true }, 'unknown option "frobnicate"; the options are "tokenUrl", "tenantId"', "ERR_INVALID_ARG_VALUE"],
  ])("%j → TypeError %s", (options, message, code) => {
    const error = (() => {
      try {
        create(options)();
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(TypeError);
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).message).toContain(message);
    expect((error as InvalidOptionError).code).toBe(code);
  });

  it("builds the Entra token URL from tenantId and authorityHost", async () => {
    const server = await startTokenServer();
    const auth = createTokenRefreshInterceptor({
      tenantId: "contoso.onmicrosoft.com",
      authorityHost: server.origin,
      clientId: "c",
      clientSecret: "s",
    });
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    expect(server.requests[0]?.url).toBe("/contoso.onmicrosoft.com/oauth2/v2.0/token");
  });

  it("defaults the Entra authority to login.microsoftonline.com", () => {
    expect(JSON.stringify(createTokenRefreshInterceptor({ tenantId: "t1", clientId: "c", clientSecret: "s" }))).toContain(
      "https://login.microsoftonline.com/t1/oauth2/v2.0/token",
    );
  });

  it("keeps the secret out of the default cache key", () => {
    expect(JSON.stringify(createTokenRefreshInterceptor({ ...base, clientSecret: "super-secret-value" }))).not.toContain(
      "super-secret-value",
    );
  });

  it("gives an old and a new secret different default cache keys, so a rotating fleet does not share one entry", () => {
    const keyOf = (clientSecret: string) =>
      (JSON.parse(JSON.stringify(createTokenRefreshInterceptor({ ...base, clientSecret }))) as { cacheKey: string }).cacheKey;
    expect(keyOf("old-secret")).not.toBe(keyOf("new-secret"));
    expect(keyOf("old-secret")).toBe(keyOf("old-secret"));
  });

  it("reads own properties only: a polluted Object.prototype is not an option", () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.tenantId = "evil";
    proto.allowInsecureHttp = true;
    try {
      expect(() => createTokenRefreshInterceptor(base)).not.toThrow();
      expect(create({ ...base, tokenUrl: "http://idp.example.com/t" })).toThrow(/https/);
    } finally {
      delete proto.tenantId;
      delete proto.allowInsecureHttp;
    }
  });
});
