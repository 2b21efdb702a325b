/**
 * One acquisition, as the cache's single shared refresh runs it, within the time budget: a newer
 * token from the store (another process may have stored one), the fleet's `Retry-After`, the
 * fleet's refresh lock, and otherwise a token fetched and written, fenced against a newer one.
 */
import { throttledError } from "./acquire-token.js";
import { anySignal, monotonicNow, wallNow } from "./clock.js";
import { TokenRequestError } from "./errors.js";
import { emit } from "./events.js";
import { refreshUnderFleetLock } from "./fleet-lock.js";
import type { GuardedStore } from "./guarded-store.js";
import type { Settings } from "./options.js";
import { unrefTimer } from "./retry.js";
import type { StoredToken } from "./store.js";
import type { TokenFetcher } from "./token-cache.js";

/** What an acquisition needs from the cache that runs it. */
export interface Acquisition {
  readonly settings: Settings;
  readonly store: GuardedStore;
  readonly fetchToken: TokenFetcher;
  /** Aborts on dispose(): the request on the wire ends too, so a process can exit right after it. */
  readonly lifetime: AbortSignal;
  /** Whether invalidate() or dispose() ran since the acquisition started: its token is then not stored. */
  readonly superseded: () => boolean;
  /** Whether invalidate() ran: a token stored meanwhile is taken back out (dispose() leaves the fleet's token alone). */
  readonly invalidated: () => boolean;
  /** Whether a stored entry may be served (not rejected by a resource, not near expiry). */
  readonly usable: (entry: StoredToken) => boolean;
  readonly onRetryAfter: (retryAfterMs: number) => void;
  /** Another process was told to wait until then (monotonic ms). */
  readonly onSharedThrottle: (untilMonotonic: number) => void;
}

/** Gets a token: `fetched` is false when it came from the store. */
export async function obtainToken(
  acquisition: Acquisition,
  how: { readonly force: boolean; readonly replacing: string | undefined },
): Promise<{ entry: StoredToken; fetched: boolean }> {
  const { settings, store, usable } = acquisition;
  const { timeoutMs } = settings;
  const deadline = monotonicNow() + timeoutMs;
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(timeoutError(timeoutMs)), timeoutMs);
  unrefTimer(timer);
  const limits = anySignal([budget.signal, acquisition.lifetime]);
  const isNewToken = (entry: StoredToken): boolean => entry.accessToken !== how.replacing && usable(entry);
  const fetchAndStore = async (): Promise<StoredToken> => {
    const entry = await acquisition.fetchToken({ deadline, signal: limits.signal, onRetryAfter: acquisition.onRetryAfter });
    return write(acquisition, entry, deadline);
  };
  try {
    if (!how.force) {
      const { entry: stored, failed } = await store.read(deadline);
      if (stored !== undefined && isNewToken(stored)) return { entry: stored, fetched: false };
      // A store that failed or hung once is not asked again in this acquisition: we fetch by ourselves.
      if (failed) return { entry: await fetchAndStore(), fetched: true };
    }
    const sharedUntil = await store.throttledUntil(deadline);
    if (sharedUntil !== undefined && sharedUntil > wallNow()) {
      acquisition.onSharedThrottle(monotonicNow() + (sharedUntil - wallNow()));
      throw throttledError(sharedUntil - wallNow());
    }
    if (store.locks) {
      const shared = await refreshUnderFleetLock({
        store,
        deadline,
        timeoutMs,
        signal: limits.signal,
        force: how.force,
        isNewToken,
        fetchAndStore,
      });
      if (shared !== undefined) return shared;
    }
    return { entry: await fetchAndStore(), fetched: true };
  } finally {
    clearTimeout(timer);
    limits.dispose();
  }
}

/**
 * Writes a fetched token and returns the token to serve: ours, or the newer one a shared store kept
 * instead (we were paused mid-fetch while another process stored a later token). If invalidate()
 * ran meanwhile, ours is taken back out of the store.
 */
async function write(acquisition: Acquisition, entry: StoredToken, deadline: number): Promise<StoredToken> {
  const { store, settings } = acquisition;
  if (acquisition.superseded()) return entry;
  const outcome = await store.write(entry, deadline);
  if (acquisition.invalidated()) {
    await store.removeIfCurrent(entry.accessToken, monotonicNow() + settings.timeoutMs);
    return entry;
  }
  if (outcome === "kept-newer") {
    const { entry: newer } = await store.read(deadline);
    if (newer !== undefined && newer.obtainedAt > entry.obtainedAt && acquisition.usable(newer)) return newer;
  }
  if (outcome === "written") emit(settings.onEvent, { type: "token_cached", expiresAt: entry.expiresAt, refreshAt: entry.refreshAt });
  return entry;
}

function timeoutError(timeoutMs: number): TokenRequestError {
  return new TokenRequestError(`no token within the ${timeoutMs} ms budget ("timeoutMs")`, "ERR_TOKEN_TIMEOUT");
}
