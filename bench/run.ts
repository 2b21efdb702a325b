/**
 * `npm run bench`: the interceptor against baselines measured in the same run, on loopback servers
 * in this process (the resource server on the main thread, the token endpoint in a worker thread, as
 * an identity provider is not on its client's event loop). Every figure is the median of several
 * rounds; the compared subjects take turns within each round, so a machine that slows down mid-run
 * slows both down, and a ratio is the median of the per-round ratios (ours/baseline within one
 * round). Prints one markdown table.
 *
 *   npm run bench                 # print the table
 *   npm run bench -- --json       # also write bench/results.json
 *   npm run bench -- --only=1,4   # some rows only, while working on them
 *
 * Heap figures need `global.gc`: without `--expose-gc` the script re-runs itself with it.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import axios from "axios";
import { coldBurst, settings as coldBurstSettings } from "./cold-burst.js";
import { credentials, settings as credentialSettings } from "./credentials.js";
import { dpop, settings as dpopSettings } from "./dpop.js";
import { fleet } from "./fleet.js";
import { hotPath, settings as hotPathSettings } from "./hot-path.js";
import { manyInterceptors, settings as manySettings } from "./many-interceptors.js";
import { memory, settings as memorySettings } from "./memory.js";
import { refreshBoundary, settings as refreshSettings } from "./refresh-boundary.js";
import { requestPath, settings as requestPathSettings } from "./request-path.js";
import { startSetup, TOKEN_DELAY_MS, type Setup } from "./servers.js";
import { fmtNum, ROUNDS, spread } from "./stats.js";
import { table, type Row } from "./table.js";
import { throughput, settings as throughputSettings } from "./throughput.js";

/** In the order they run; `--only=` picks by the row numbers in `ids` (5 is in two of them). */
const BENCHMARKS: { name: string; ids: string[]; run: (setup: Setup) => Promise<Row[]> }[] = [
  { name: "hot path", ids: ["1", "5"], run: hotPath },
  { name: "hot path inside requests", ids: ["1"], run: requestPath },
  { name: "throughput", ids: ["2"], run: throughput },
  { name: "cold burst", ids: ["3", "5"], run: coldBurst },
  { name: "refresh boundary", ids: ["4"], run: refreshBoundary },
  { name: "memory", ids: ["6"], run: memory },
  { name: "fleet", ids: ["7"], run: fleet },
  { name: "100 interceptors", ids: ["8"], run: manyInterceptors },
  { name: "certificate and issuer", ids: ["9"], run: credentials },
  { name: "DPoP", ids: ["10"], run: dpop },
];
const SETTINGS = {
  ROUNDS,
  ...hotPathSettings,
  ...requestPathSettings,
  ...throughputSettings,
  ...coldBurstSettings,
  TOKEN_DELAY_MS,
  ...refreshSettings,
  ...memorySettings,
  ...manySettings,
  ...credentialSettings,
  ...dpopSettings,
};

async function main(): Promise<void> {
  const writeJson = process.argv.includes("--json");
  const only = process.argv
    .find((arg) => arg.startsWith("--only="))
    ?.slice("--only=".length)
    .split(",");
  const started = performance.now();
  const machine = {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    axios: axios.VERSION,
  };
  console.log(`axios-token-refresh benchmark — ${new Date().toISOString()}`);
  const loadAtStart = os.loadavg()[0] ?? Number.NaN;
  console.log(
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.platform}, load average ${fmtNum(loadAtStart, 2)}; node ${machine.node}; axios ${machine.axios}`,
  );
  console.log(
    `${ROUNDS} rounds per figure (median; ratio = median of per-round ratios); loopback servers in this process; token endpoint answers after ${TOKEN_DELAY_MS} ms\n`,
  );

  const setup = await startSetup();
  const rows: Row[] = [];
  try {
    for (const benchmark of BENCHMARKS) {
      if (only !== undefined && !benchmark.ids.some((id) => only.includes(id))) continue;
      console.error(`  … ${benchmark.name} (${fmtNum((performance.now() - started) / 1000, 1)} s)`);
      rows.push(...(await benchmark.run(setup)));
    }
  } finally {
    await setup.close();
  }

  rows.sort((a, b) => a.id.localeCompare(b.id));
  const elapsedS = (performance.now() - started) / 1000;
  const loadAtEnd = os.loadavg()[0] ?? Number.NaN;
  console.log(table(rows));
  console.log(`\n(${fmtNum(elapsedS, 1)} s, load average at the end ${fmtNum(loadAtEnd, 2)}; \`npm run bench\`)`);

  if (writeJson) {
    const path = fileURLToPath(new URL("./results.json", import.meta.url));
    const figures = rows.map(({ display: _display, ...row }) => ({
      ...row,
      // How far apart the rounds were (max/min − 1).
      spread:
        row.rounds === undefined
          ? undefined
          : { ours: spread(row.rounds.ours), baseline: row.rounds.baseline && spread(row.rounds.baseline) },
    }));
    const run = { date: new Date().toISOString(), elapsedS, loadAverage: { start: loadAtStart, end: loadAtEnd } };
    await writeFile(path, `${JSON.stringify({ ...run, machine, settings: SETTINGS, rows: figures }, null, 2)}\n`);
    console.log(`figures written to ${path}`);
  }
  const unmet = rows.filter((row) => row.met === false);
  if (unmet.length > 0) console.log(`\ngoals not met: ${unmet.map((row) => row.id).join(", ")}`);
}

if ((globalThis as { gc?: unknown }).gc === undefined) {
  if (process.env.BENCH_GC_REEXEC === "1") throw new Error("global.gc is still missing after re-running with --expose-gc");
  // Same loader flags (tsx), plus --expose-gc; the child inherits stdio and its exit code is ours.
  const child = spawn(process.execPath, ["--expose-gc", ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, BENCH_GC_REEXEC: "1" },
  });
  child.on("exit", (code, signal) => {
    process.exitCode = code ?? (signal === null ? 0 : 1);
  });
} else {
  await main();
}
