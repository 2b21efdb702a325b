// Packaging check, run after `npm run build`: the built package loads with both `import` and
// `require` through its own exports map, and both expose the same names.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const esm = await import("axios-token-refresh");
const cjs = require("axios-token-refresh");

const names = (module) => Object.keys(module).filter((name) => name !== "default" && name !== "module.exports").sort();
const expected = [
  "DEFAULTS",
  "InMemoryTokenStore",
  "InvalidOptionError",
  "InvalidTokenResponseError",
  "TokenRefreshError",
  "TokenRequestError",
  "createTokenRefreshInterceptor",
  "isTokenRefreshError",
];
assert.deepEqual(names(esm), expected, "ESM exports");
assert.deepEqual(names(cjs), expected, "CJS exports");
assert.equal("default" in esm, false, "no default export");

for (const file of ["dist/index.d.ts", "dist/index.d.cts"]) assert.ok(existsSync(new URL(`../../${file}`, import.meta.url)), `${file} exists`);

// Errors from one copy are recognised by the other (dual-package hazard).
const error = new cjs.TokenRequestError("x", "ERR_TOKEN_REQUEST");
assert.equal(esm.isTokenRefreshError(error), true, "isTokenRefreshError across copies");

for (const [label, module] of [["import", esm], ["require", cjs]]) {
  const auth = module.createTokenRefreshInterceptor({ tokenUrl: "https://idp.example.com/token", clientId: "c", clientSecret: "s" });
  assert.equal(typeof auth, "function", `${label}: interceptor is a function`);
  for (const method of ["getAccessToken", "invalidate", "attach", "dispose"]) assert.equal(typeof auth[method], "function", `${label}: ${method}`);
  auth.dispose();
}
console.log(`package: ${expected.length} exports identical under import and require`);

