/**
 * The small parts on their own: the clocks' signal helper, the sleep that backoff waits with, the
 * error guard that works across the ESM and CJS copies of this package, and the in-memory store.
 */
import { describe, expect, it } from "vitest";
import { anySignal } from "../src/clock.js";
import { InMemoryTokenStore, isTokenRefreshError, TokenRequestError } from "../src/index.js";
import { sleep } from "../src/retry.js";

describe("anySignal", () => {
  it("aborts with the reason of the first signal that aborts, and stops listening", () => {
    const a = new AbortController();
    const b = new AbortController();
    const { signal, dispose } = anySignal([a.signal, b.signal]);
    b.abort("b's reason");
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe("b's reason");
    a.abort("later");
    expect(signal.reason).toBe("b's reason");
    dispose();
  });

  it("is aborted at once when a signal already is", () => {
    const done = new AbortController();
    done.abort("already");
    const { signal } = anySignal([new AbortController().signal, done.signal]);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe("already");
  });
});

describe("sleep", () => {
  it("rejects with the signal's reason when it aborts, before or during the wait", async () => {
    const before = new AbortController();
    before.abort(new Error("before"));
    await expect(sleep(10_000, before.signal)).rejects.toThrow("before");
    const during = new AbortController();
    const waiting = sleep(10_000, during.signal);
    during.abort(new Error("during"));
    await expect(waiting).rejects.toThrow("during");
  });
});

describe("isTokenRefreshError", () => {
  it("recognises ours, and an error of the other module copy by name and code; nothing else", () => {
    expect(isTokenRefreshError(new TokenRequestError("x", "ERR_TOKEN_REQUEST"))).toBe(true);
    const otherCopy = Object.assign(new Error("x"), { name: "TokenRequestError", code: "ERR_TOKEN_TIMEOUT" });
    expect(isTokenRefreshError(otherCopy)).toBe(true);
    expect(isTokenRefreshError(Object.assign(new Error("x"), { name: "TokenRequestError", code: "ECONNRESET" }))).toBe(false);
    expect(isTokenRefreshError(Object.assign(new Error("x"), { name: "TypeError", code: "ERR_TOKEN_TIMEOUT" }))).toBe(false);
    expect(isTokenRefreshError({ name: "TokenRequestError", code: "ERR_TOKEN_REQUEST" })).toBe(false);
    expect(isTokenRefreshError(undefined)).toBe(false);
  });
});

describe("InMemoryTokenStore", () => {
  it("refuses a maxEntries that is not a positive integer", () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) expect(() => new InMemoryTokenStore({ maxEntries })).toThrow(RangeError);
  });

  it("clear() removes every entry", () => {
    const store = new InMemoryTokenStore();
    const entry = {
      accessToken: "a",
      expiresAt: Date.now() + 60_000,
      refreshAt: Date.now() + 30_000,
      obtainedAt: Date.now(),
      cacheKey: "k",
    };
    store.set("k", entry);
    store.set("j", { ...entry, cacheKey: "j" });
    store.clear();
    expect(store.size).toBe(0);
    expect(store.get("k")).toBeUndefined();
  });
});
