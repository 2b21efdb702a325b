// Run by .ci/run on the oldest Node that package.json's "engines" admits, after `npm run build`:
// the built package, under import and require, does its main job against loopback servers.
// Plain Node (no test runner), since test runners need newer Node than the library does.
import assert from "node:assert/strict";
import { generateKeyPairSync, verify } from "node:crypto";
import diagnosticsChannel from "node:diagnostics_channel";
import { createServer } from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

function listen(handler) {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => handler(req, res, body));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, origin: `http://127.0.0.1:${server.address().port}` })),
  );
}

async function exercise(label, library, axios) {
  let issued = 0;
  const idp = await listen((_req, res) => {
    issued += 1;
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ access_token: `token-${issued}`, token_type: "Bearer", expires_in: 3600 }));
  });
  const rejected = new Set();
  const api = await listen((req, res) => {
    const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    res.writeHead(req.url === "/fail" ? 500 : rejected.has(token) ? 401 : 200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ authorization: req.headers.authorization ?? null }));
  });
  const client = axios.create({ baseURL: api.origin });
  const auth = library.createTokenRefreshInterceptor({ tokenUrl: `${idp.origin}/token`, clientId: "c", clientSecret: "s" });
  auth.attach(client);

  const burst = await Promise.all(Array.from({ length: 20 }, () => client.get("/r")));
  assert.ok(
    burst.every((r) => r.data.authorization === "Bearer token-1"),
    `${label}: burst carries token-1`,
  );
  assert.equal(issued, 1, `${label}: one token request for a cold burst of 20`);

  rejected.add("token-1");
  const replayed = await client.get("/r");
  assert.equal(replayed.data.authorization, "Bearer token-2", `${label}: a 401 is replayed once with a new token`);
  assert.equal(issued, 2, `${label}: one more token request for the 401`);

  const failure = await client.get("/fail").catch((error) => error);
  assert.equal(failure.response?.status, 500, `${label}: a resource 500 reaches the caller`);
  assert.doesNotMatch(JSON.stringify(failure), /token-2/, `${label}: the token is redacted from the error`);

  auth.dispose();
  idp.server.close();
  api.server.close();
}

// Issuer discovery, a certificate credential signed with this Node's WebCrypto, and the tracing
// channels (on Node before 20.16 they are loaded by a dynamic import, not process.getBuiltinModule).
async function exerciseIssuerAndCertificate(label, library) {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const published = [];
  const onStart = (message) => published.push(["start", { ...message }]);
  const onEnd = (message) => published.push(["end", { ...message }]);
  diagnosticsChannel.subscribe(library.TOKEN_REQUEST_CHANNELS.start, onStart);
  diagnosticsChannel.subscribe(library.TOKEN_REQUEST_CHANNELS.end, onEnd);
  const seen = [];
  const idp = await listen((req, res, body) => {
    seen.push(req.url);
    res.writeHead(200, { "Content-Type": "application/json" });
    if (req.url === "/realm/.well-known/openid-configuration") {
      res.end(JSON.stringify({ issuer: `${idp.origin}/realm`, token_endpoint: `${idp.origin}/realm/token` }));
      return;
    }
    const [header, claims, signature] = new URLSearchParams(body).get("client_assertion").split(".");
    const valid = verify(
      "sha256",
      Buffer.from(`${header}.${claims}`),
      { key: publicKey, dsaEncoding: "ieee-p1363" },
      Buffer.from(signature, "base64url"),
    );
    res.end(JSON.stringify(valid ? { access_token: "cert-token", token_type: "Bearer", expires_in: 3600 } : { error: "invalid_client" }));
  });
  const source = library.createTokenSource({
    issuer: `${idp.origin}/realm`,
    clientId: "c",
    clientCertificate: { privateKey: privateKey.export({ format: "pem", type: "pkcs8" }) },
  });
  const token = await source.getToken();
  assert.equal(token.accessToken, "cert-token", `${label}: a token for a verified ES256 assertion`);
  assert.deepEqual(seen, ["/realm/.well-known/openid-configuration", "/realm/token"], `${label}: metadata, then the token`);
  assert.deepEqual(
    published.map(([name, message]) => [name, message.tokenUrl, message.status]),
    [
      ["start", `${idp.origin}/realm/token`, undefined],
      ["end", `${idp.origin}/realm/token`, 200],
    ],
    `${label}: the token request on the tracing channels`,
  );
  diagnosticsChannel.unsubscribe(library.TOKEN_REQUEST_CHANNELS.start, onStart);
  diagnosticsChannel.unsubscribe(library.TOKEN_REQUEST_CHANNELS.end, onEnd);
  source.dispose();
  idp.server.close();
}

// DPoP: where Node's synchronous crypto is not reachable (before 20.16) proofs are signed with WebCrypto.
async function exerciseDpop(label, library, axios) {
  const idp = await listen((req, res) => {
    assert.match(req.headers.dpop ?? "", /^ey[\w-]+\.ey[\w-]+\.[\w-]+$/, `${label}: the token request carries a proof`);
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ access_token: "bound-token", token_type: "DPoP", expires_in: 3600 }));
  });
  const seen = [];
  const api = await listen((req, res) => {
    seen.push([req.headers.authorization, JSON.parse(Buffer.from(req.headers.dpop.split(".")[1], "base64url")).htu]);
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end("{}");
  });
  const client = axios.create({ baseURL: api.origin });
  const auth = library.createTokenRefreshInterceptor({ tokenUrl: `${idp.origin}/token`, clientId: "c", clientSecret: "s", dpop: true });
  auth.attach(client);
  await Promise.all([client.get("/a?q=1"), client.get("/b")]);
  assert.deepEqual(
    seen.sort(),
    [
      ["DPoP bound-token", `${api.origin}/a`],
      ["DPoP bound-token", `${api.origin}/b`],
    ],
    `${label}: DPoP scheme and a proof for each URL`,
  );
  auth.dispose();
  idp.server.close();
  api.server.close();
}

await exercise("import", await import("axios-token-refresh"), (await import("axios")).default);
await exercise("require", require("axios-token-refresh"), require("axios"));
await exerciseIssuerAndCertificate("import", await import("axios-token-refresh"));
await exerciseIssuerAndCertificate("require", require("axios-token-refresh"));
await exerciseDpop("import", await import("axios-token-refresh"), (await import("axios")).default);
await exerciseDpop("require", require("axios-token-refresh"), require("axios"));
console.log(
  `floor smoke on node ${process.version}: burst, 401 replay and redaction; issuer discovery, a certificate assertion, the tracing channels and DPoP; under import and require`,
);
