/** The bench table: what a row holds (also what --json writes for it), and the markdown run.ts prints. */
import { fmtTimes, median, pairedRatio } from "./stats.js";

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

/** A row for two subjects measured in the same rounds: their medians, and the median of the per-round ratios. */
export function pairedRow(spec: {
  id: string;
  benchmark: string;
  unit: string;
  goal: string;
  rounds: { ours: number[]; baseline: number[] };
  show: (value: number) => string;
  showRatio?: (ratio: number) => string;
  met?: ((figures: { ours: number; ratio: number }) => boolean) | undefined;
}): Row {
  const { id, benchmark, unit, goal, rounds, show, showRatio = fmtTimes } = spec;
  const ours = median(rounds.ours);
  const baseline = median(rounds.baseline);
  const ratio = pairedRatio(rounds.ours, rounds.baseline);
  return {
    id,
    benchmark,
    unit,
    ours,
    baseline,
    ratio,
    goal,
    met: spec.met?.({ ours, ratio }),
    rounds,
    display: { ours: show(ours), baseline: show(baseline), ratio: showRatio(ratio) },
  };
}

/** The printed table, one line per row in the order given. */
export function table(rows: readonly Row[]): string {
  return markdownTable(
    ["benchmark", "ours", "baseline", "ratio", "goal", "met"],
    rows.map((row) => [
      row.benchmark,
      row.display.ours,
      row.display.baseline,
      row.display.ratio,
      row.goal,
      row.met === undefined ? "—" : row.met ? "yes" : "**NO**",
    ]),
  );
}

/** Pads every column to its widest cell, so the table also reads as plain text. */
function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.map(line)].join("\n");
}
