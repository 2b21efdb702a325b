// Packaging check, run after `npm run build`: the built package loads with both `import` and
// `require` through its own exports map, and both expose the same names.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const esm = await import("axios-token-refresh");
const cjs = require("axios-token-refresh");

const names = (module) =>
  Object.keys(module)
    .filter((name) => name !== "default" && name !== "module.exports")
    .sort();
const expected = [
  "DEFAULTS",
  "DiscoveryError",
  "InMemoryTokenStore",
  "InvalidOptionError",
  "InvalidTokenResponseError",
  "TOKEN_REQUEST_CHANNELS",
  "TokenRefreshError",
  "TokenRequestError",
  "createTokenRefreshInterceptor",
  "createTokenSource",
  "isTokenRefreshError",
];
assert.deepEqual(names(esm), expected, "ESM exports");
assert.deepEqual(names(cjs), expected, "CJS exports");
assert.equal("default" in esm, false, "no default export");

for (const file of ["dist/index.d.ts", "dist/index.d.cts"])
  assert.ok(existsSync(new URL(`../../${file}`, import.meta.url)), `${file} exists`);

// Errors from one copy are recognised by the other (dual-package hazard).
const error = new cjs.TokenRequestError("x", "ERR_TOKEN_REQUEST");
assert.equal(esm.isTokenRefreshError(error), true, "isTokenRefreshError across copies");

for (const [label, module] of [
  ["import", esm],
  ["require", cjs],
]) {
  const auth = module.createTokenRefreshInterceptor({ tokenUrl: "https://idp.example.com/token", clientId: "c", clientSecret: "s" });
  assert.equal(typeof auth, "function", `${label}: interceptor is a function`);
  for (const method of ["getAccessToken", "invalidate", "attach", "dispose"])
    assert.equal(typeof auth[method], "function", `${label}: ${method}`);
  auth.dispose();
}
// The Redis store is its own subpath; it must load without ioredis or redis being imported.
const esmRedis = await import("axios-token-refresh/redis");
const cjsRedis = require("axios-token-refresh/redis");
const expectedRedis = ["REDIS_STORE_DEFAULTS", "createRedisTokenStore"];
assert.deepEqual(names(esmRedis), expectedRedis, "ESM exports of ./redis");
assert.deepEqual(names(cjsRedis), expectedRedis, "CJS exports of ./redis");
assert.equal("default" in esmRedis, false, "no default export in ./redis");
for (const file of ["dist/redis.d.ts", "dist/redis.d.cts"])
  assert.ok(existsSync(new URL(`../../${file}`, import.meta.url)), `${file} exists`);
for (const file of ["dist/redis.js", "dist/redis.cjs"]) {
  const code = readFileSync(new URL(`../../${file}`, import.meta.url), "utf8");
  assert.doesNotMatch(
    code,
    /(?:from\s*|require\(\s*|import\(\s*)["'](?:ioredis|redis|@redis\/[^"']*)["']/,
    `${file} does not load ioredis or redis`,
  );
}
const fakeClient = { get() {}, set() {}, del() {}, eval() {}, defineCommand() {} };
for (const [label, module] of [
  ["import", esmRedis],
  ["require", cjsRedis],
]) {
  const store = module.createRedisTokenStore({ client: fakeClient, encryptionKey: "0123456789abcdef0123456789abcdef" });
  for (const method of ["get", "set", "delete", "acquireRefreshLock", "releaseRefreshLock"])
    assert.equal(typeof store[method], "function", `${label}: redis store ${method}`);
}

// Both entries share one copy of the error classes (tsup splitting), so instanceof works across them.
for (const [label, main, redis] of [
  ["import", esm, esmRedis],
  ["require", cjs, cjsRedis],
]) {
  assert.throws(
    () => redis.createRedisTokenStore({}),
    (e) => e instanceof main.InvalidOptionError,
    `${label}: one InvalidOptionError class`,
  );
}

console.log(`package: ${expected.length} exports (and ${expectedRedis.length} from ./redis) identical under import and require`);
