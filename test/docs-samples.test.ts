/**
 * The documentation's TypeScript samples compile, and its links resolve.
 *
 * Every ```ts block of README.md and docs/*.md is written as its own ES module into a temporary
 * directory and type-checked, all in one TypeScript program with strict options, against the
 * library's own sources (`axios-token-refresh` → src/index.ts, `axios-token-refresh/redis` →
 * src/redis.ts). A shared prelude declares, as globals, the free names samples lean on (`tenantId`,
 * `api`, `logger`, …); a sample that imports or declares a name itself shadows the prelude's.
 * Each diagnostic is reported as the Markdown file and line it comes from.
 *
 * The link check: every relative link between these pages points at a file that exists, and every
 * `#anchor` at a heading of the target page (GitHub's slugs).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Pages whose ```ts samples must compile. */
const samplePages = (): string[] => [
  join(repo, "README.md"),
  ...readdirSync(join(repo, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => join(repo, "docs", name)),
];

/** Pages whose links are checked: the sample pages and the other Markdown files of the documentation. */
const linkedPages = (): string[] =>
  [...samplePages(), join(repo, "bench", "README.md"), join(repo, "CONTRIBUTING.md"), join(repo, "SECURITY.md")].filter((page) =>
    existsSync(page),
  );

/**
 * Free names the samples may use without declaring them, as globals. A sample's own import or
 * declaration of a name shadows the prelude's (a module's scope is its own).
 */
const PRELUDE = `
import type { AxiosInstance, AxiosStatic } from "axios";
import type { createTokenRefreshInterceptor as Create, TokenRefreshInterceptor } from "axios-token-refresh";

declare global {
  const axios: AxiosStatic;
  const createTokenRefreshInterceptor: typeof Create;
  const tenantId: string;
  const tokenUrl: string;
  const clientId: string;
  const clientSecret: string;
  const scope: string;
  const api: AxiosInstance;
  const graph: AxiosInstance;
  const orders: AxiosInstance;
  const auth: TokenRefreshInterceptor;
  const logger: { warn(...args: unknown[]): void; info(...args: unknown[]): void };
}
`;

interface Sample {
  /** The page, relative to the repository. */
  readonly page: string;
  /** Line of the page the sample's first line is on (1-based). */
  readonly line: number;
  readonly code: string;
}

interface Fence {
  readonly info: string;
  /** Line of the opening fence (1-based). */
  readonly line: number;
  readonly body: string[];
}

/** The fenced code blocks of a Markdown text, with their info string; an indented fence (in a list) is unindented. */
function fences(markdown: string): Fence[] {
  const lines = markdown.split("\n");
  const found: Fence[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i] ?? "");
    if (open === null) continue;
    const indent = open[1]?.length ?? 0;
    const marker = open[2] ?? "```";
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j += 1) {
      const text = lines[j] ?? "";
      const close = /^\s*(`{3,}|~{3,})\s*$/.exec(text)?.[1];
      if (close !== undefined && close[0] === marker[0] && close.length >= marker.length) break;
      body.push(text.slice(Math.min(indent, text.length - text.trimStart().length)));
    }
    found.push({ info: open[3] ?? "", line: i + 1, body });
    i = j;
  }
  return found;
}

function samplesOf(page: string): Sample[] {
  return fences(readFileSync(page, "utf8"))
    .filter((fence) => fence.info === "ts" || fence.info === "typescript")
    .map((fence) => ({ page: relative(repo, page), line: fence.line + 1, code: fence.body.join("\n") }));
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noImplicitOverride: true,
  noEmit: true,
  skipLibCheck: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ["lib.es2022.d.ts"], // no DOM: the samples are Node code, and fetch comes from @types/node
  types: ["node"],
  typeRoots: [join(repo, "node_modules", "@types")],
  esModuleInterop: true,
  experimentalDecorators: true, // the NestJS sample
  // The package's own names, resolved to its sources, as the exports map resolves them to dist/.
  paths: {
    "axios-token-refresh": [join(repo, "src", "index.ts")],
    "axios-token-refresh/redis": [join(repo, "src", "redis.ts")],
  },
};

/** Where a diagnostic is, as `page:line` of the Markdown sample, or the file it is in. */
function locate(diagnostic: ts.Diagnostic, byFile: ReadonlyMap<string, Sample>): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
  const file = diagnostic.file;
  if (file === undefined || diagnostic.start === undefined) return `TS${diagnostic.code}: ${message}`;
  const { line, character } = file.getLineAndCharacterOfPosition(diagnostic.start);
  const sample = byFile.get(resolve(file.fileName));
  const where =
    sample === undefined ? `${file.fileName}:${line + 1}:${character + 1}` : `${sample.page}:${sample.line + line}:${character + 1}`;
  return `${where} TS${diagnostic.code}: ${message}`;
}

describe("documentation samples", () => {
  it("every ```ts block of README.md and docs/*.md compiles under strict", { timeout: 60_000 }, () => {
    const samples = samplePages().flatMap(samplesOf);
    expect(samples.filter((sample) => sample.page === "README.md").length, "README.md has a ts sample").toBeGreaterThan(0);

    const dir = mkdtempSync(join(tmpdir(), "docs-samples-"));
    try {
      // The samples resolve "axios", "ioredis", "@nestjs/axios", … from the repository's own node_modules.
      symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"), "junction");
      const prelude = join(dir, "prelude.d.mts");
      writeFileSync(prelude, PRELUDE);
      const byFile = new Map<string, Sample>();
      samples.forEach((sample, index) => {
        const file = join(dir, `sample-${String(index + 1).padStart(2, "0")}.mts`);
        // Appended, not prepended, so the sample's lines keep their numbers; it makes every sample a module of its own.
        writeFileSync(file, `${sample.code}\nexport {};\n`);
        byFile.set(resolve(file), sample);
      });

      const program = ts.createProgram({ rootNames: [prelude, ...byFile.keys()], options: COMPILER_OPTIONS });
      const checked = [prelude, ...byFile.keys()].map((name) => program.getSourceFile(name));
      const diagnostics = [
        ...program.getOptionsDiagnostics(),
        ...program.getGlobalDiagnostics(),
        ...checked.flatMap((file) =>
          file === undefined ? [] : [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)],
        ),
      ];
      expect(
        checked.every((file) => file !== undefined),
        "every sample is in the program",
      ).toBe(true);
      expect(diagnostics.map((diagnostic) => locate(diagnostic, byFile))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens; repeats get -1, -2, … */
function anchorsOf(markdown: string): Set<string> {
  const inCode = new Set<number>();
  for (const fence of fences(markdown)) {
    for (let line = fence.line; line <= fence.line + fence.body.length + 1; line += 1) inCode.add(line);
  }
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  markdown.split("\n").forEach((text, index) => {
    if (inCode.has(index + 1)) return;
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (heading === null) return;
    const slug = (heading[1] ?? "")
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
      .replace(/ /g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  });
  return anchors;
}

/** Link targets of a Markdown text outside code: `[text](target)`, without titles. */
function linksOf(markdown: string): { target: string; line: number }[] {
  const inCode = new Set<number>();
  for (const fence of fences(markdown)) {
    for (let line = fence.line; line <= fence.line + fence.body.length + 1; line += 1) inCode.add(line);
  }
  const links: { target: string; line: number }[] = [];
  markdown.split("\n").forEach((text, index) => {
    if (inCode.has(index + 1)) return;
    const prose = text.replace(/`[^`]*`/g, "");
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ target: match[1] ?? "", line: index + 1 });
    }
  });
  return links;
}

describe("documentation links", () => {
  it("every relative link between the pages resolves, anchors included", () => {
    const broken: string[] = [];
    const pages = linkedPages();
    expect(pages.length).toBeGreaterThan(1);
    for (const page of pages) {
      for (const { target, line } of linksOf(readFileSync(page, "utf8"))) {
        if (/^[a-z][a-z\d+.-]*:/i.test(target)) continue; // https:, mailto: — not ours to check offline
        const [path = "", anchor] = target.split("#", 2);
        const file = path === "" ? page : resolve(dirname(page), decodeURIComponent(path));
        const where = `${relative(repo, page)}:${line} → ${target}`;
        if (!existsSync(file)) {
          broken.push(`${where}: no such file`);
          continue;
        }
        if (anchor !== undefined && anchor !== "") {
          if (!file.endsWith(".md")) {
            broken.push(`${where}: anchor into a file that is not Markdown`);
          } else if (!anchorsOf(readFileSync(file, "utf8")).has(decodeURIComponent(anchor))) {
            broken.push(`${where}: no heading with that anchor`);
          }
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
