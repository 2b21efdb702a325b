/**
 * Token requests published on `node:diagnostics_channel`, as undici and fastify publish theirs, so
 * an APM agent or an OpenTelemetry recipe sees each one without a listener in the options. Channels
 * with no subscriber cost a property read. The module is taken from `process.getBuiltinModule`
 * (Node 20.16+, Deno, Bun), else imported once, asynchronously, with a specifier bundlers leave
 * alone; where neither exists (browsers, workers) nothing is published and nothing breaks.
 */

/** The channel names; subscribe with `diagnostics_channel.subscribe(name, listener)`. */
export const TOKEN_REQUEST_CHANNELS = {
  /** Published when a token request is sent (each attempt). */
  start: "axios-token-refresh:token-request:start",
  /** Published when it got a token. */
  end: "axios-token-refresh:token-request:end",
  /** Published when it failed (refused, network, timeout, cancelled). */
  error: "axios-token-refresh:token-request:error",
} as const;

/**
 * What a token-request channel carries: one object per attempt, published at `start` and again,
 * completed, at `end` or `error`. It never holds a token, a secret or an assertion.
 */
export interface TokenRequestMessage {
  /** The store key of the client the token is for. */
  readonly cacheKey: string;
  /** The token endpoint. */
  readonly tokenUrl: string;
  /** The attempt within one acquisition, from 1. */
  readonly attempt: number;
  /** How long the attempt took, in ms (set at `end` and `error`). */
  durationMs?: number;
  /** The token endpoint's HTTP status, when it answered. */
  status?: number;
  /** The failure's stable code (set at `error`). */
  code?: string;
}

interface Channel {
  readonly hasSubscribers: boolean;
  publish(message: unknown): void;
}
interface ChannelModule {
  channel(name: string): Channel;
}

let channels: { start: Channel; end: Channel; error: Channel } | undefined;
let loading: Promise<void> | undefined;

function adopt(module: ChannelModule | undefined): void {
  if (module === undefined || typeof module.channel !== "function") return;
  channels = {
    start: module.channel(TOKEN_REQUEST_CHANNELS.start),
    end: module.channel(TOKEN_REQUEST_CHANNELS.end),
    error: module.channel(TOKEN_REQUEST_CHANNELS.error),
  };
}

/**
 * Makes the channels ready before the first token request; resolves at once after the first call,
 * and never rejects.
 */
export function channelsReady(): Promise<void> {
  if (channels !== undefined) return Promise.resolve();
  loading ??= (async () => {
    const runtime = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown; versions?: { node?: string } } }).process;
    if (typeof runtime?.getBuiltinModule === "function") {
      adopt(runtime.getBuiltinModule("node:diagnostics_channel") as ChannelModule | undefined);
      return;
    }
    if (runtime?.versions?.node === undefined) return;
    const specifier = "node:diagnostics_channel";
    try {
      adopt((await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as ChannelModule);
    } catch {
      // A runtime that calls itself Node but has no diagnostics_channel: nothing to publish to.
    }
  })();
  return loading;
}

/** Publishes the start of a token request; returns what `finish` completes. */
export function publishStart(message: TokenRequestMessage): TokenRequestMessage {
  if (channels?.start.hasSubscribers) channels.start.publish(message);
  return message;
}

/** Completes and publishes a token request's outcome. */
export function publishEnd(
  message: TokenRequestMessage,
  startedAt: number,
  endedAt: number,
  outcome: { status?: number; code?: string },
): void {
  if (channels === undefined || !(channels.end.hasSubscribers || channels.error.hasSubscribers || channels.start.hasSubscribers)) return;
  message.durationMs = endedAt - startedAt;
  if (outcome.status !== undefined) message.status = outcome.status;
  if (outcome.code === undefined) {
    channels.end.publish(message);
    return;
  }
  message.code = outcome.code;
  channels.error.publish(message);
}
