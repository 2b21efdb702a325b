/**
 * The two clocks. Token expiry is a wall-clock fact that processes compare with each other, so it
 * uses `Date.now()`. Everything this process waits for by itself (budgets, back-off windows,
 * throttling, cool-downs, lock waits) uses the monotonic clock, so a stepped system clock can
 * neither stretch nor skip a wait.
 */

/** Wall-clock epoch milliseconds: for token expiry only. */
export const wallNow = (): number => Date.now();

/** Monotonic milliseconds since an arbitrary origin: for every internal deadline. */
export const monotonicNow = (): number => performance.now();

/**
 * An AbortSignal that aborts when any of `signals` does, with that signal's reason; `dispose`
 * removes the listeners. (The static `any()` of AbortSignal would do, but it needs Node 20.3, and the
 * package supports Node 20.0.)
 */
export function anySignal(signals: readonly AbortSignal[]): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const aborted = signals.find((signal) => signal.aborted);
  if (aborted !== undefined) {
    controller.abort(aborted.reason);
    return { signal: controller.signal, dispose: () => {} };
  }
  const listeners = signals.map((signal) => {
    const onAbort = (): void => {
      controller.abort(signal.reason);
      dispose();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    return { signal, onAbort };
  });
  const dispose = (): void => {
    for (const { signal, onAbort } of listeners) signal.removeEventListener("abort", onAbort);
  };
  return { signal: controller.signal, dispose };
}
