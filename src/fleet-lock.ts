/**
 * The fleet's refresh protocol, for stores that offer a refresh lock: the process that takes the
 * lock fetches and stores; the others poll the store for what it stored. A holder that dies only
 * delays the others until its lock expires, and nobody waits past its budget: a waiter that sees
 * nothing arrive in time fetches by itself, which costs at most one extra token request.
 */
import { monotonicNow } from "./clock.js";
import type { GuardedStore } from "./guarded-store.js";
import { sleep } from "./retry.js";
import type { StoredToken } from "./store.js";

/** What the protocol needs from the one acquisition it serves. */
export interface FleetRefresh {
  readonly store: GuardedStore;
  /** Monotonic deadline of the acquisition. */
  readonly deadline: number;
  /** The acquisition's whole budget, of which part is kept back for fetching alone. */
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /** A forced refresh fetches even when the store holds a usable token. */
  readonly force: boolean;
  /** Whether a stored entry is the new token we are waiting for (not the one being replaced). */
  readonly isNewToken: (entry: StoredToken) => boolean;
  readonly fetchAndStore: () => Promise<StoredToken>;
}

const POLL_MS = { first: 25, max: 250 } as const;
const MAX_POLLS = 1_000;

/**
 * Fetches while holding the lock, or waits for the holder's token. Returns undefined when the
 * store fails or nothing arrived in time: the caller then fetches by itself rather than hang.
 */
export async function refreshUnderFleetLock(refresh: FleetRefresh): Promise<{ entry: StoredToken; fetched: boolean } | undefined> {
  const { store, deadline, timeoutMs, signal, force, isNewToken, fetchAndStore } = refresh;
  // Keep part of the budget for fetching ourselves if the holder never delivers.
  const waitUntil = deadline - Math.min(timeoutMs / 4, 2_000);
  const arrived = async (): Promise<StoredToken | undefined> => {
    const { entry } = await store.read(deadline);
    return entry !== undefined && isNewToken(entry) ? entry : undefined;
  };
  for (
    let delayMs: number = POLL_MS.first, polls = 0;
    monotonicNow() < waitUntil && polls < MAX_POLLS;
    delayMs = Math.min(delayMs * 2, POLL_MS.max), polls += 1
  ) {
    // A dead holder's lock frees halfway through our wait, so we are still here to take over.
    const lock = await store.acquireLock(Math.max(1, Math.floor((waitUntil - monotonicNow()) / 2)), deadline);
    if (lock.kind === "failed") return undefined;
    if (lock.kind === "acquired") {
      try {
        // Another process may have stored a token between our read and our lock; a forced refresh fetches regardless.
        const entry = force ? undefined : await arrived();
        return entry !== undefined ? { entry, fetched: false } : { entry: await fetchAndStore(), fetched: true };
      } finally {
        store.releaseLock(lock.lockId);
      }
    }
    const entry = await arrived();
    if (entry !== undefined) return { entry, fetched: false };
    // Jittered, so a fleet of waiters does not poll in step.
    await sleep(Math.min(delayMs * (0.5 + Math.random() / 2), Math.max(0, waitUntil - monotonicNow())), signal);
  }
  return undefined;
}
