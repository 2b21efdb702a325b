/** Small statistics and formatting helpers for the benchmark table. */

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0..100) of `values`; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** max/min − 1 of `values`, as a share: how far apart the rounds were. */
export function spread(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  return Math.max(...values) / Math.min(...values) - 1;
}

export function fmtInt(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

export function fmtNum(value: number, digits: number): string {
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtMs(value: number): string {
  return `${fmtNum(value, value < 10 ? 2 : 1)} ms`;
}

export function fmtBytes(bytes: number): string {
  const kib = bytes / 1024;
  return Math.abs(kib) >= 1024 ? `${fmtNum(kib / 1024, 2)} MiB` : `${fmtNum(kib, 1)} KiB`;
}

/** Renders a markdown table with padded columns. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.map(line)].join("\n");
}

/** One line of the bench table, and what --json writes for it. */
export interface Row {
  id: string;
  benchmark: string;
  unit: string;
  ours: number;
  baseline: number | undefined;
  ratio: number | undefined;
  goal: string;
  met: boolean | undefined;
  /** Per-round values, for tracking how stable a figure is. */
  rounds?: { ours: number[]; baseline?: number[] };
  /** Further figures of the row, for --json only. */
  extra?: Record<string, unknown>;
  display: { ours: string; baseline: string; ratio: string };
}
