/** Statistics over rounds, and the formatting of figures for the bench table. */

/** Rounds per figure, unless a benchmark says otherwise. */
export const ROUNDS = 5;

/**
 * Runs `measure` once per subject and round, the order flipped every round, so that drift of the
 * machine hits every subject alike. Returns each subject's values, round by round.
 */
export async function interleaved<K extends string>(names: readonly K[], rounds: number, measure: (name: K) => Promise<number>): Promise<Record<K, number[]>> {
  const results = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) results[name].push(await measure(name));
  }
  return results;
}

/** Median over rounds of ours/baseline within the round: each pair ran under the same conditions. */
export function pairedRatio(ours: readonly number[], baseline: readonly number[]): number {
  return median(ours.map((value, i) => value / (baseline[i] ?? Number.NaN)));
}

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

/** A ratio of times, e.g. `1.63×`. */
export function fmtTimes(ratio: number): string {
  return `${fmtNum(ratio, 2)}×`;
}

export function fmtMs(value: number): string {
  return `${fmtNum(value, value < 10 ? 2 : 1)} ms`;
}

export function fmtBytes(bytes: number): string {
  const kib = bytes / 1024;
  return Math.abs(kib) >= 1024 ? `${fmtNum(kib / 1024, 2)} MiB` : `${fmtNum(kib, 1)} KiB`;
}
