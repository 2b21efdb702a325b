import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { TokenRequestError, type TokenRefreshOptions } from "../src/index.js";
import { backoffDelay, isTransient, parseRetryAfter } from "../src/retry.js";
import { issueTokens, startTokenServer, type Handler } from "./helpers/servers.js";
import { interceptorFor, type Overrides } from "./helpers/interceptor.js";

const setup = async (handler?: Handler, overrides: Overrides = {}) => {
  const { tokens, auth, events } = await interceptorFor(handler, { retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 }, ...overrides });
  return { server: tokens, auth, events };
};

/** Polls on setImmediate, which fake timers leave alone; bounded. */
async function until(condition: () => boolean) {
  for (let i = 0; i < 20_000 && !condition(); i += 1) await new Promise((resolve) => setImmediate(resolve));
  expect(condition()).toBe(true);
}

afterEach(() => {
  vi.useRealTimers();
});

describe("retries of the token endpoint", () => {
  it.each([408, 429, 500, 502, 503, 504])("retries %i, then succeeds", async (status) => {
    const { server, auth } = await setup((r, n) => (n === 1 ? { status, body: {} } : issueTokens(r, n)));
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });

  it("retries a reset connection (network error)", async () => {
    const { server, auth, events } = await setup((r, n) => (n === 1 ? { reset: true } : issueTokens(r, n)));
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
    expect(events).toContainEqual(expect.objectContaining({ type: "request_retried", attempt: 1, code: "ERR_TOKEN_NETWORK" }));
  });

  it("retries a refused connection, then reports ERR_TOKEN_NETWORK", async () => {
    const { server, auth, events } = await setup();
    await server.close();
    await expect(auth.getAccessToken()).rejects.toMatchObject({ code: "ERR_TOKEN_NETWORK", networkCode: "ECONNREFUSED" });
    expect(events.filter((e) => e.type === "request_retried")).toHaveLength(2);
  });

  it("gives up after the configured attempts, with the last error", async () => {
    const { server, auth, events } = await setup(() => ({ status: 503, body: { error: "temporarily_unavailable" } }));
    await expect(auth.getAccessToken()).rejects.toMatchObject({ code: "ERR_TOKEN_REQUEST", status: 503 });
    expect(server.count).toBe(3);
    expect(events.filter((e) => e.type === "request_retried").map((e) => (e as { attempt: number }).attempt)).toEqual([1, 2]);
  });

  it.each([
    ["400 invalid_request", 400, "invalid_request"],
    ["401 invalid_client", 401, "invalid_client"],
    ["400 invalid_scope", 400, "invalid_scope"],
    ["400 unauthorized_client", 400, "unauthorized_client"],
    ["400 unsupported_grant_type", 400, "unsupported_grant_type"],
    ["501", 501, undefined],
    ["505", 505, undefined],
    ["a 503 that says invalid_client", 503, "invalid_client"],
  ])("never retries %s", async (_name, status, error) => {
    const { server, auth } = await setup(() => ({ status, body: error === undefined ? {} : { error } }));
    await expect(auth.getAccessToken()).rejects.toBeInstanceOf(TokenRequestError);
    expect(server.count).toBe(1);
  });

  it("backs off exponentially with full jitter, capped", () => {
    expect(backoffDelay(1, 500, 10_000, () => 0.999)).toBe(499);
    expect(backoffDelay(3, 500, 10_000, () => 0.999)).toBe(1998);
    expect(backoffDelay(10, 500, 10_000, () => 0.999)).toBe(9990);
    expect(backoffDelay(2, 500, 10_000, () => 0)).toBe(0);
    expect(isTransient(new Error("x"))).toBe(false);
  });
});

describe("Retry-After and throttling", () => {
  const at = Date.UTC(2026, 10, 27, 12);
  it.each([
    ["120", 120_000],
    ["0", 0],
    [new Date(at + 30_000).toUTCString(), 30_000],
    [new Date(at - 30_000).toUTCString(), 0],
    ["soon", undefined],
    ["-5", undefined],
    ["1.5", undefined],
    ["", undefined],
  ])("Retry-After %j → %j ms", (value, ms) => {
    expect(parseRetryAfter(value, at)).toBe(ms);
  });

  it("waits exactly Retry-After before the next attempt", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const { server, auth } = await setup((r, n) =>
      n === 1 ? { status: 429, headers: { "Retry-After": "2" }, body: {} } : issueTokens(r, n),
    );
    const token = auth.getAccessToken();
    await until(() => server.count === 1);
    await vi.advanceTimersByTimeAsync(1_990);
    expect(server.count).toBe(1);
    await vi.advanceTimersByTimeAsync(20);
    await expect(token).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });

  it("a Retry-After longer than the budget ends the acquisition at once, then calls fail fast without contacting the endpoint", async () => {
    const { server, auth, events } = await setup(() => ({ status: 429, headers: { "Retry-After": "60" }, body: { error: "slow_down" } }));
    const started = Date.now();
    const error = await auth.getAccessToken().catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(error).toMatchObject({ code: "ERR_TOKEN_THROTTLED", status: 429 });
    expect((error as TokenRequestError).retryAfterMs).toBe(60_000);
    const again = await auth.getAccessToken().catch((e: unknown) => e);
    expect(again).toMatchObject({ code: "ERR_TOKEN_THROTTLED" });
    expect((again as TokenRequestError).retryAfterMs).toBeGreaterThan(58_000);
    expect(server.count).toBe(1);
    expect(events).toContainEqual({ type: "throttled", retryAfterMs: 60_000 });
  });

  it("caps Retry-After at retry.maxRetryAfterMs", async () => {
    const { auth } = await setup(() => ({ status: 503, headers: { "Retry-After": "86400" }, body: {} }), {
      retry: { maxRetryAfterMs: 30_000 },
    });
    const error = await auth.getAccessToken().catch((e: unknown) => e);
    expect((error as TokenRequestError).retryAfterMs).toBe(30_000);
  });

  it("while throttled, a cached token that is still valid keeps serving", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t0 = Date.now();
    const { server, auth } = await setup((r, n) =>
      n === 1 ? issueTokens(r, n) : { status: 429, headers: { "Retry-After": "600" }, body: {} },
    );
    await auth.getAccessToken();
    vi.setSystemTime(t0 + 3_575_000); // past the hard buffer, before expiry
    await expect(auth.getAccessToken()).rejects.toMatchObject({ code: "ERR_TOKEN_THROTTLED" });
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    expect(server.count).toBe(2);
  });
});

describe("a refusal that asking again will not change (a wrong secret)", () => {
  const invalidClient: Handler = () => ({ status: 401, body: { error: "invalid_client", error_description: "bad secret" } });

  it("100 sequential calls with a wrong secret make 1 token request; each caller gets the typed error at once", async () => {
    const { server, auth } = await setup(invalidClient);
    const errors: unknown[] = [];
    for (let i = 0; i < 100; i += 1) errors.push(await auth.getAccessToken().catch((e: unknown) => e));
    expect(server.count).toBe(1);
    expect(errors.every((e) => e instanceof TokenRequestError && e.code === "ERR_TOKEN_REQUEST" && e.error === "invalid_client")).toBe(
      true,
    );
  });

  it("the window starts at 1 s and doubles while the refusals go on, up to 30 s", async () => {
    vi.useFakeTimers({ toFake: ["Date", "performance"] });
    const { server, auth } = await setup(invalidClient);
    const attemptAfter = async (ms: number) => {
      vi.advanceTimersByTime(ms);
      await auth.getAccessToken().catch(() => undefined);
      return server.count;
    };
    expect(await attemptAfter(0)).toBe(1); // window 1 s
    expect(await attemptAfter(999)).toBe(1);
    expect(await attemptAfter(1)).toBe(2); // window 2 s
    expect(await attemptAfter(1_999)).toBe(2);
    expect(await attemptAfter(1)).toBe(3); // 4 s
    expect(await attemptAfter(3_999)).toBe(3);
    expect(await attemptAfter(1)).toBe(4); // 8 s
    expect(await attemptAfter(8_000)).toBe(5); // 16 s
    expect(await attemptAfter(16_000)).toBe(6); // 32 s, capped at 30 s
    expect(await attemptAfter(29_999)).toBe(6);
    expect(await attemptAfter(1)).toBe(7);
    expect(await attemptAfter(30_000)).toBe(8);
  });

  it("a success, invalidate() or forceRefresh ends the window at once", async () => {
    vi.useFakeTimers({ toFake: ["Date", "performance"] });
    let refuse = true;
    const { server, auth } = await setup((r, n) => (refuse ? invalidClient(r, n) : issueTokens(r, n)));
    await auth.getAccessToken().catch(() => undefined);
    await auth.getAccessToken().catch(() => undefined);
    expect(server.count).toBe(1);
    await auth.invalidate();
    await auth.getAccessToken().catch(() => undefined);
    expect(server.count).toBe(2);
    refuse = false;
    await expect(auth.getAccessToken({ forceRefresh: true })).resolves.toBe("token-3");
    expect(server.count).toBe(3);
  });

  it("a transient failure opens no window: the very next call tries again", async () => {
    const { server, auth } = await setup((r, n) => (n === 1 ? { status: 503, body: {} } : issueTokens(r, n)), { retry: { attempts: 1 } });
    await expect(auth.getAccessToken()).rejects.toMatchObject({ status: 503 });
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });

  it("a fixed assertion string the server refuses the second time: the error says to pass a function", async () => {
    const { server, auth } = await setup(
      (r, n) => (n === 1 ? issueTokens(r, n) : { status: 400, body: { error: "invalid_client", error_description: "jti already used" } }),
      {
        clientSecret: undefined,
        clientAssertion: "a.signed.jwt",
      } as unknown as Partial<TokenRefreshOptions>,
    );
    await expect(auth.getAccessToken()).resolves.toBe("token-1");
    const error = await auth.getAccessToken({ forceRefresh: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ERR_TOKEN_REQUEST", status: 400, error: "invalid_client" });
    expect(String(error)).toContain("pass a function that returns a fresh assertion");
    expect(server.count).toBe(2);
  });
});

describe("the time budget (timeoutMs)", () => {
  it("an endpoint that accepts and never answers is given up on within the budget; every waiter is rejected; the next call tries again", async () => {
    const { server, auth } = await setup((r, n) => (n === 1 ? { hang: true } : issueTokens(r, n)), { timeoutMs: 300 });
    const started = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => auth.getAccessToken()));
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1_500);
    expect(results.every((r) => r.status === "rejected" && (r.reason as TokenRequestError).code === "ERR_TOKEN_TIMEOUT")).toBe(true);
    await expect(auth.getAccessToken()).resolves.toBe("token-2");
    expect(server.count).toBe(2);
  });

  it("backoff waits count against the budget", async () => {
    const { server, auth } = await setup(() => ({ status: 503, body: {} }), {
      timeoutMs: 200,
      retry: { attempts: 10, baseDelayMs: 150, maxDelayMs: 150 },
    });
    const started = Date.now();
    await expect(auth.getAccessToken()).rejects.toBeInstanceOf(TokenRequestError);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(server.count).toBeLessThan(10);
  });
});

describe("figures for the closing note", () => {
  it("10 minutes of traffic with 3-minute tokens: 7 token requests, only the first 10 requests wait", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t0 = Date.now();
    const { server, auth } = await setup((_r, n) => ({ body: { access_token: `t${n}`, expires_in: 180 } }));
    let waited = 0;
    for (let second = 0; second < 600; second += 1) {
      vi.setSystemTime(t0 + second * 1000);
      const calls = Array.from({ length: 10 }, () => {
        const state = { done: false };
        const promise = auth.getAccessToken().then(() => {
          state.done = true;
        });
        return { state, promise };
      });
      await new Promise((resolve) => setImmediate(resolve));
      waited += calls.filter((c) => !c.state.done).length;
      await Promise.all(calls.map((c) => c.promise));
      await until(() => server.count >= Math.floor(second / 90) + 1); // let a background refresh land
    }
    expect(server.count).toBe(7);
    expect(waited).toBe(10);
  });
});

/** Runs test/fixtures/<name> in its own process; it must exit by itself within 8 s or it is killed (code null). */
async function runFixture(name: string, env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const fixture = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", fixture], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(null);
    }, 8_000);
    child.on("exit", (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  return { code, output };
}

describe("dispose()", () => {
  it("aborts a token request still on the wire: a process can exit right after dispose()", async () => {
    const hung = await startTokenServer(() => ({ hang: true }));
    const { code, output } = await runFixture("dispose-hung.ts", { TOKEN_URL: hung.url });
    const exitMs = Number(/dispose→exit (\d+) ms/.exec(output)?.[1] ?? Number.NaN);
    expect(output).toContain("waiter: ERR_DISPOSED");
    expect(code).toBe(0);
    // The budget is 30 s; without the abort the process would live until the hung request timed out.
    process.stdout.write(`[dispose figures] dispose() to exit with a hung token request: ${exitMs} ms\n`);
    expect(exitMs).toBeLessThan(1_000);
    expect(hung.count).toBe(1);
  }, 15_000);

  it("leaves no handle behind: a process that used the interceptor exits by itself", async () => {
    const { code, output } = await runFixture("dispose-exit.ts");
    expect(output).toContain("requests: 20 ok");
    expect(output).toContain("after dispose: ERR_DISPOSED");
    expect(code).toBe(0);
  }, 15_000);
});
