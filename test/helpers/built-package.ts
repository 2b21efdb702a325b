/**
 * For tests that run the built package (dist/) in a child `node` process, where only Node's own
 * resolver decides which copy of a dependency each side loads.
 */
import { execFile } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
/** How long a child may run before it is killed. */
export const CHILD_TIMEOUT_MS = 15_000;

/** How a child process ended, and what it printed. */
export interface ChildRun {
  code: number | string | null;
  killed: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `node script arg` from the package root; killed after 15 s. */
export function runNode(script: string, arg: string): Promise<ChildRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, arg], { cwd: root, timeout: CHILD_TIMEOUT_MS, killSignal: "SIGKILL" }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code ?? null), killed: error?.killed === true, stdout, stderr });
    });
  });
}

/** Throws when dist/ is missing or older than src/: such a run would test yesterday's code. `npm test` rebuilds it first. */
export function requireFreshBuild(): void {
  const built = statSync(new URL("../../dist/index.cjs", import.meta.url), { throwIfNoEntry: false });
  const src = new URL("../../src/", import.meta.url);
  const newestSource = Math.max(...readdirSync(src).map((name) => statSync(new URL(name, src)).mtimeMs));
  if (built === undefined || built.mtimeMs < newestSource)
    throw new Error("dist/ is missing or older than src/: run `npm test`, or `npx tsup` first");
}
