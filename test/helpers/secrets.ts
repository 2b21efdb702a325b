import { inspect } from "node:util";
import { expect } from "vitest";

/** Every way an error gets logged: none of them may show any of `secrets`. */
export function renderings(error: unknown): string[] {
  const out: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 10; depth += 1) {
    out.push(String(current));
    out.push(String((current as { stack?: unknown }).stack));
    try {
      out.push(JSON.stringify(current) ?? "");
    } catch (e) {
      out.push(String(e));
    }
    out.push(inspect(current, { depth: Infinity, showHidden: true }));
    current = (current as { cause?: unknown }).cause;
  }
  return out;
}

export function expectNoSecrets(error: unknown, ...secrets: string[]): void {
  const text = renderings(error).join("\n");
  for (const secret of secrets) expect(text).not.toContain(secret);
}
