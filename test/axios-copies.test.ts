/**
 * The app's axios instance may come from another copy of axios than the library's: axios's CJS and
 * ESM builds are two copies with two `AxiosHeaders` classes, and a second version nested in
 * node_modules is a third. The 401 replay, the redaction and the single flight must not depend on which.
 * Each cell runs in its own `node` process, because only Node's own resolver decides which copy each
 * side gets; vitest's module runner would resolve (and may dedupe) them its own way.
 */
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { CHILD_TIMEOUT_MS, requireFreshBuild, runNode } from "./helpers/built-package.js";
import { startResourceServer, startTokenServer, type RecordedRequest, type ResourceServer, type TokenServer } from "./helpers/servers.js";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/axios-copies/${name}`, import.meta.url));

/** What the child saw as the caller (see test/fixtures/axios-copies/cell.cjs). */
interface CellReport {
  identity: { appVersion: string; libraryVersion: string; sameAxiosHeaders: boolean };
  burst: { fulfilled: number; failures: string[] };
  replay: { status: number | null; authorization: string | null; error: string | null };
  redaction: { status: number | null; configAuthorization: string | null; jsonLeak: string | null; inspectLeak: string | null };
}

interface Cell {
  name: string;
  axios: "axios" | "axios-nested";
  load: "require" | "import";
  script: "app.cjs" | "app.mjs";
  /** Whether the app's axios is the very module the library's build loads: the two control cells. */
  copies: "same" | "different";
}

const builds = [
  { library: "CJS dist/index.cjs", script: "app.cjs", libraryLoad: "require" },
  { library: "ESM dist/index.js", script: "app.mjs", libraryLoad: "import" },
] as const;
const apps = [
  { axios: "axios", load: "require" },
  { axios: "axios", load: "import" },
  { axios: "axios-nested", load: "require" },
  { axios: "axios-nested", load: "import" },
] as const;
const cells: Cell[] = builds.flatMap((build) =>
  apps.map((app) => ({
    name: `app ${app.load}("${app.axios}") × library ${build.library}`,
    axios: app.axios,
    load: app.load,
    script: build.script,
    copies: app.axios === "axios" && app.load === build.libraryLoad ? "same" : "different",
  })),
);

beforeAll(requireFreshBuild);

const onPath = (server: ResourceServer, prefix: string) => server.requests.filter((r) => r.url.startsWith(prefix));
const userAgents = (requests: RecordedRequest[]) => [...new Set(requests.map((r) => r.headers["user-agent"]))];

describe("an app instance from another axios copy than the library's", () => {
  it.each(cells.map((cell) => [cell.name, cell] as const))(
    "%s",
    async (_name, cell) => {
      const idp: Record<"burst" | "replay" | "redact", TokenServer> = {
        burst: await startTokenServer(),
        replay: await startTokenServer(),
        redact: await startTokenServer(),
      };
      const api = await startResourceServer();
      api.handler = (request) => {
        const authorization = request.headers.authorization ?? null;
        if (request.url === "/boom") return { status: 500, body: { error: "boom" } };
        if (request.url.startsWith("/replay/") && authorization === "Bearer token-1") {
          return { status: 401, headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' }, body: { error: "invalid_token" } };
        }
        return { body: { authorization } };
      };
      const servers = { api: api.origin, idp: { burst: idp.burst.url, replay: idp.replay.url, redact: idp.redact.url } };

      const run = await runNode(fixture(cell.script), JSON.stringify({ axios: cell.axios, load: cell.load, servers }));
      expect(run, `child failed (killed: ${run.killed})\n${run.stderr}`).toMatchObject({ code: 0 });
      const report = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "null") as CellReport;

      // The precondition: the cell really pairs the copies it claims to, and each side's requests go out through its own copy.
      expect(report.identity.sameAxiosHeaders, "app and library share AxiosHeaders").toBe(cell.copies === "same");
      expect(userAgents(idp.burst.requests), "token requests go through the library's axios").toEqual([
        `axios/${report.identity.libraryVersion}`,
      ]);
      expect(userAgents(onPath(api, "/burst/")), "resource requests go through the app's axios").toEqual([
        `axios/${report.identity.appVersion}`,
      ]);

      // (c) a cold burst of 20 shares one token request
      expect.soft(report.burst, "burst: what the caller saw").toEqual({ fulfilled: 20, failures: [] });
      expect.soft(idp.burst.count, "burst: token requests").toBe(1);
      expect
        .soft(
          onPath(api, "/burst/").map((r) => r.headers.authorization),
          "burst: Authorization on the wire",
        )
        .toEqual(Array(20).fill("Bearer token-1"));

      // (a) a 401 for token-1 drops it, fetches token-2, replays once
      expect.soft(report.replay, "replay: what the caller saw").toEqual({ status: 200, authorization: "Bearer token-2", error: null });
      expect
        .soft(
          onPath(api, "/replay/").map((r) => r.headers.authorization),
          "replay: requests on the wire",
        )
        .toEqual(["Bearer token-1", "Bearer token-2"]);
      expect.soft(idp.replay.count, "replay: token requests").toBe(2);

      // (b) a 500 carries no token in its serialized or inspected form
      expect
        .soft(
          onPath(api, "/boom").map((r) => r.headers.authorization),
          "redaction: the token was sent",
        )
        .toEqual(["Bearer token-1"]);
      expect.soft(report.redaction, "redaction: the error the caller got").toEqual({
        status: 500,
        configAuthorization: "Bearer [redacted]",
        jsonLeak: null,
        inspectLeak: null,
      });
    },
    CHILD_TIMEOUT_MS + 5_000,
  );
});
