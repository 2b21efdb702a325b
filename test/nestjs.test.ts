/**
 * NestJS through @nestjs/axios: the instance is `HttpService.axiosRef`, created by whichever axios
 * copy @nestjs/axios loads. Nest 11 (the line whose dependencies all run on Node 20; Nest 12's
 * file-type needs Node 22) is CommonJS, so @nestjs/axios always gets axios's CJS build; an ES module
 * app (import of our dist/index.js) pairs it with axios's ESM build. Each app runs in
 * its own `node` process so Node resolves the copies, and so that it can show it exits by itself.
 */
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { CHILD_TIMEOUT_MS, requireFreshBuild, runNode } from "./helpers/built-package.js";
import { startResourceServer, startTokenServer, type ResourceServer } from "./helpers/servers.js";

/** What the app saw as the caller (see test/fixtures/nestjs/exercise.cjs). */
interface NestReport {
  identity: { instanceIsLibraryCopy: boolean; instanceIsEsmBuild: boolean };
  burst: { fulfilled: number };
  replay: { status: number | null; authorization: string | null };
  redaction: { status: number | null; configAuthorization: string | null; jsonLeak: string | null; inspectLeak: string | null };
  afterClose: string;
}

beforeAll(requireFreshBuild);

const onPath = (server: ResourceServer, prefix: string) => server.requests.filter((r) => r.url.startsWith(prefix));

const apps = [
  ["CommonJS app, require('@nestjs/axios') + dist/index.cjs (one axios copy)", "app.cjs", true],
  ["ES module app, import '@nestjs/axios' + dist/index.js (two axios copies)", "app.mjs", false],
] as const;

describe("NestJS: HttpModule, attach(httpService.axiosRef) in onModuleInit, dispose() in onApplicationShutdown", () => {
  it.each(apps)(
    "%s",
    async (_name, script, sameCopy) => {
      const tokens = await startTokenServer();
      const api = await startResourceServer();
      const marks = new Map<string, number>();
      api.handler = (request) => {
        const authorization = request.headers.authorization ?? null;
        if (request.url.startsWith("/mark/")) marks.set(request.url.slice(6), tokens.count);
        if (request.url === "/boom") return { status: 500, body: { error: "boom" } };
        if (request.url.startsWith("/replay/") && authorization === "Bearer token-1") {
          return { status: 401, headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' }, body: { error: "invalid_token" } };
        }
        return { body: { authorization } };
      };

      const fixture = fileURLToPath(new URL(`./fixtures/nestjs/${script}`, import.meta.url));
      const run = await runNode(fixture, JSON.stringify({ tokenUrl: tokens.url, baseURL: api.origin }));
      // Exit code 0 without a kill: after app.close() nothing kept the process alive.
      expect(run, `the app did not exit on its own (killed: ${run.killed})\n${run.stderr}`).toMatchObject({ code: 0, killed: false });
      const report = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "null") as NestReport;

      // @nestjs/axios 4 always uses axios's CJS build; whether that is the library's copy depends on our build.
      expect(report.identity).toEqual({ instanceIsEsmBuild: false, instanceIsLibraryCopy: sameCopy });

      expect.soft(report.burst.fulfilled, "burst: responses").toBe(20);
      expect.soft(marks.get("burst"), "burst: token requests").toBe(1);
      expect
        .soft(
          onPath(api, "/burst/").map((r) => r.headers.authorization),
          "burst: Authorization on the wire",
        )
        .toEqual(Array(20).fill("Bearer token-1"));

      expect.soft(report.replay, "replay: what the caller saw").toEqual({ status: 200, authorization: "Bearer token-2" });
      expect
        .soft(
          onPath(api, "/replay/").map((r) => r.headers.authorization),
          "replay: requests on the wire",
        )
        .toEqual(["Bearer token-1", "Bearer token-2"]);
      expect.soft(tokens.count, "replay: token requests in all").toBe(2);

      expect.soft(onPath(api, "/boom")[0]?.headers.authorization, "redaction: the token was sent").toMatch(/^Bearer token-\d$/);
      expect.soft(report.redaction, "redaction: the error the caller got").toEqual({
        status: 500,
        configAuthorization: "Bearer [redacted]",
        jsonLeak: null,
        inspectLeak: null,
      });

      expect.soft(report.afterClose, "app.close() disposed the interceptor").toBe("ERR_DISPOSED");
    },
    CHILD_TIMEOUT_MS + 5_000,
  );
});
