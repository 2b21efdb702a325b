/**
 * The small parts on their own: the clocks' signal helper, the sleep that backoff waits with, the
 * error guard that works across the ESM and CJS copies of this package, the in-memory store, and the
 * origin policy's memory of the last request target.
 */
import { describe, expect, it } from "vitest";
import { anySignal } from "../src/clock.js";
import { InMemoryTokenStore, isTokenRefreshError, TokenRequestError } from "../src/index.js";
import { OriginPolicy } from "../src/origin.js";
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

describe("OriginPolicy.forRequest, the last target remembered", () => {
  const base = "https://api.example.com";

  it("answers each target as allowedFor does, whatever target came before", () => {
    const policy = new OriginPolicy(undefined, false);
    const origins = (allowed: { origins: ReadonlySet<string> } | undefined) => (allowed === undefined ? undefined : [...allowed.origins]);
    const alone = (target: (typeof targets)[number]) => origins(new OriginPolicy(undefined, false).forRequest(target));
    const targets = [
      { baseURL: base, url: "/x" },
      { baseURL: base, url: "/y" },
      { baseURL: base, url: "https://evil.example/x" },
      { baseURL: base, url: "//evil.example/x" },
      { baseURL: base, url: "https://api.example.com/x", allowAbsoluteUrls: false },
      { baseURL: "https://other.example.com", url: "https://api.example.com/x", allowAbsoluteUrls: false },
      { baseURL: "https://other.example.com", url: "https://api.example.com/x", allowAbsoluteUrls: true },
      { baseURL: base, url: "https://alice:pw@api.example.com/x" },
      { baseURL: "https://alice@api.example.com", url: "/x" },
      { baseURL: base, url: undefined },
      { baseURL: base, url: "x" },
      { baseURL: base, url: "/x" },
    ];
    // Every order of neighbours: each target after each other one.
    for (const before of targets) {
      for (const target of targets) {
        policy.forRequest(before);
        expect(origins(policy.forRequest(target)), `${JSON.stringify(target)} after ${JSON.stringify(before)}`).toEqual(alone(target));
      }
    }
  });

  it("gives no token to a URL with userinfo, and none to another origin, even right after an allowed request", () => {
    const policy = new OriginPolicy(undefined, false);
    expect(policy.forRequest({ baseURL: base, url: "/x" })?.origins.has(base)).toBe(true);
    expect(policy.forRequest({ baseURL: base, url: "https://bob:secret@api.example.com/x" })).toBeUndefined();
    expect(policy.forRequest({ baseURL: "https://bob@api.example.com", url: "/x" })).toBeUndefined();
    expect(policy.forRequest({ baseURL: base, url: "https://api.example.com.evil.test/x" })).toBeUndefined();
    expect(policy.forRequest({ baseURL: base, url: "/x" })?.origins.has(base)).toBe(true);
  });

  it("throws each time nothing allows an origin: a refusal is not remembered as an answer", () => {
    const policy = new OriginPolicy(undefined, false);
    for (let i = 0; i < 2; i += 1) {
      expect(() => policy.forRequest({ baseURL: "http://insecure.example.com", url: "/x" })).toThrow(/https/);
      expect(() => policy.forRequest({ url: "/x" })).toThrow(/baseURL/);
    }
  });
});

describe("base64 and base64url (encoding.ts)", () => {
  it("agrees with Buffer for bytes, ASCII and UTF-8 text, and refuses what is not base64", async () => {
    const { base64, base64ToBytes, base64url, base64urlToBytes } = await import("../src/encoding.js");
    for (const text of ["", "a", "ab", "abc", "client:sécret ✓", "x".repeat(70_000)]) {
      expect(base64(text)).toBe(Buffer.from(text).toString("base64"));
      expect(base64url(text)).toBe(Buffer.from(text).toString("base64url"));
      expect(Buffer.from(base64urlToBytes(base64url(text)) ?? []).toString()).toBe(text);
    }
    const bytes = new Uint8Array([0, 251, 255, 62, 63]);
    expect(base64url(bytes)).toBe(Buffer.from(bytes).toString("base64url"));
    expect(base64ToBytes(" AQID\n")).toEqual(new Uint8Array([1, 2, 3]));
    for (const junk of ["", "abcde", "ab$c", "===="]) expect(base64ToBytes(junk)).toBeUndefined();
    expect(base64urlToBytes("a+b")).toBeUndefined();
  });
});
