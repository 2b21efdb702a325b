/**
 * Suite-wide guard: no test may leave an unhandled promise rejection behind.
 * Node reports one a turn after it happens, so each test waits one macrotask before checking.
 */
import { afterEach, expect } from "vitest";

const unhandled: unknown[] = [];
process.on("unhandledRejection", (reason) => unhandled.push(reason));

afterEach(async () => {
  await new Promise((resolve) => setImmediate(resolve));
  const seen = unhandled.splice(0);
  expect(seen, "unhandled promise rejections").toEqual([]);
});
