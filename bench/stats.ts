/** Statistics over rounds, and the formatting of figures for the bench table. */

/** Rounds per figure, unless a benchmark says otherwise. */
export const ROUNDS = 5;

/**
 * The order of `names` in turn `turn`: every rotation, forwards, then every rotation backwards, so
 * each subject takes every place, and follows every other, equally often (for two: A B, B A, B A, A B).
 */
export function turnOrder<K>(names: readonly K[], turn: number): K[] {
  const n = names.length;
  const shift = turn % n;
  const order = [...names.slice(shift), ...names.slice(0, shift)];
  return Math.floor(turn / n) % 2 === 0 ? order : order.reverse();
}

/**
 * `turns` turns in which every subject runs `measure` once, in {@link turnOrder}, so that drift of
 * the machine hits every subject alike. Returns each subject's values, turn by turn.
 */
export async function interleaved<K extends string>(
  names: readonly K[],
  turns: number,
  measure: (name: K) => Promise<number>,
): Promise<Record<K, number[]>> {
  const results = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  for (let turn = 0; turn < turns; turn += 1) {
    for (const name of turnOrder(names, turn)) results[name].push(await measure(name));
  }
  return results;
}

/**
 * Rounds of interleaved turns: a warm-up round of a quarter as many turns (sockets, JIT), then
 * `rounds` rounds of `turns` turns each, a round's figure per subject being `figure` of its turns
 * (a median, say). Returns the figures round by round.
 */
export async function roundsOfTurns<K extends string>(spec: {
  names: readonly K[];
  rounds: number;
  turns: number;
  turn: (name: K) => Promise<number>;
  figure: (values: number[]) => number;
}): Promise<Record<K, number[]>> {
  const { names, rounds, turns, turn, figure } = spec;
  const results = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  await interleaved(names, Math.ceil(turns / 4), turn);
  for (let round = 0; round < rounds; round += 1) {
    const values = await interleaved(names, turns, turn);
    for (const name of names) results[name].push(figure(values[name]));
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
