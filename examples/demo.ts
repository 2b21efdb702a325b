/**
 * A self-contained run on loopback: a token server and a resource server on 127.0.0.1,
 * an axios instance with the interceptor attached, and what happened, counted at the servers.
 * Run: npm run demo
 */
import type { ServerResponse } from "node:http";
import axios from "axios";
import { createTokenRefreshInterceptor } from "../src/index.js";
import { listen } from "./loopback.js";

const TOKEN_LIFETIME_S = 2;
const issued = new Map<string, number>(); // token → expiry (epoch ms)
const revoked = new Set<string>();
let tokenRequests = 0;
let tokenEndpointDown = false;
let served = 0;

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  res.end(JSON.stringify(body));
};

const idp = await listen((req, res) => {
  req.resume();
  req.on("end", () => {
    tokenRequests += 1;
    if (tokenEndpointDown) return json(res, 503, { error: "temporarily_unavailable" });
    const token = `demo-token-${tokenRequests}`;
    issued.set(token, Date.now() + TOKEN_LIFETIME_S * 1000);
    setTimeout(() => json(res, 200, { access_token: token, token_type: "Bearer", expires_in: TOKEN_LIFETIME_S }), 30);
  });
});

const api = await listen((req, res) => {
  const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
  const expiry = issued.get(token);
  if (expiry === undefined || expiry <= Date.now() || revoked.has(token)) {
    res.writeHead(401, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
    return res.end();
  }
  served += 1;
  json(res, 200, { ok: true });
});

const client = axios.create({ baseURL: `${api.origin}/v1` });
const auth = createTokenRefreshInterceptor({
  tokenUrl: `${idp.origin}/oauth2/token`,
  clientId: "demo-client",
  clientSecret: "demo-secret",
  scope: "api://demo/.default",
  retry: { attempts: 1 },
});
const detach = auth.attach(client);

const burst = async (n: number) => {
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => client.get(`/items/${i}`)));
  return results.filter((r) => r.status === "fulfilled").length;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const line = (label: string, text: string) => console.log(`${label.padEnd(30)} ${text}`);

console.log(`axios-token-refresh demo: token server ${idp.origin}, API ${api.origin} (tokens live ${TOKEN_LIFETIME_S} s)\n`);

let before = tokenRequests;
let ok = await burst(200);
line("1. cold start, 200 at once:", `${ok}/200 served, ${tokenRequests - before} token request`);

await sleep(TOKEN_LIFETIME_S * 1000 + 200);
before = tokenRequests;
ok = await burst(200);
line("2. after the token expired:", `${ok}/200 served, ${tokenRequests - before} token request (a new token)`);

await sleep(300); // the token has been in use a while (a token seconds old is not dropped on a 401)
const current = await auth.getAccessToken();
revoked.add(current);
before = tokenRequests;
ok = await burst(50);
line("3. token revoked, 50 get 401:", `${ok}/50 served after one replay each, ${tokenRequests - before} token request`);

await auth.getAccessToken({ forceRefresh: true });
tokenEndpointDown = true;
await sleep(TOKEN_LIFETIME_S * 500 + 100); // into the refresh window
before = tokenRequests;
ok = await burst(100);
await sleep(100);
line("4. token endpoint down:", `${ok}/100 served from the cached token; ${tokenRequests - before} background refresh tried and failed`);
tokenEndpointDown = false;

console.log(`\nIn all: ${tokenRequests} token requests for ${served} requests served.`);
detach();
auth.dispose();
idp.close();
api.close();
