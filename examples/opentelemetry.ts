/**
 * OpenTelemetry for the token requests: a span per request from node:diagnostics_channel, and
 * counters from `onEvent`. Only @opentelemetry/api is used, so it works with whichever SDK the
 * application registers; docs/observability.md shows the same code, test/opentelemetry.test.ts
 * runs it and checks that the page still matches this file.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { SpanKind, SpanStatusCode, type Attributes, type Meter, type Span, type Tracer } from "@opentelemetry/api";
import { TOKEN_REQUEST_CHANNELS, type TokenEvent, type TokenRequestMessage } from "../src/index.js";

/**
 * Makes one CLIENT span per token request (each attempt, retries included) and returns the function
 * that stops it. Subscribe once, at start-up: a listener sees the requests of every client in the process.
 */
export function traceTokenRequests(tracer: Tracer): () => void {
  // The library publishes the same object at start and at end or error, so it is the correlation
  // key; a WeakMap lets a span whose end never comes go with its message instead of piling up.
  const spans = new WeakMap<object, Span>();

  const onStart = (message: unknown): void => {
    const { tokenUrl, cacheKey, attempt } = message as TokenRequestMessage;
    const url = new URL(tokenUrl);
    const attributes: Attributes = {
      // The token URL is safe to record: the library refuses one with userinfo or a fragment, and
      // the credentials travel in the POST body or the Authorization header, which are not published.
      "url.full": tokenUrl,
      "server.address": url.hostname,
      "server.port": url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port),
      "http.request.method": "POST",
      // The store key tells the clients of one process apart; it holds no secret, only a short hash of it.
      "oauth2.cache_key": cacheKey,
      "oauth2.attempt": attempt,
    };
    if (attempt > 1) attributes["http.request.resend_count"] = attempt - 1;
    // Started in the publisher's context, so a token request made for an outgoing call is a child of that call's span.
    spans.set(message as object, tracer.startSpan("oauth2 token request", { kind: SpanKind.CLIENT, attributes }));
  };

  const onFinish = (message: unknown): void => {
    const span = spans.get(message as object);
    if (span === undefined) return; // started before we subscribed
    spans.delete(message as object);
    const { status, code } = message as TokenRequestMessage;
    if (status !== undefined) span.setAttribute("http.response.status_code", status);
    if (code !== undefined) {
      // The stable code, not the error's message: a code is low-cardinality and never quotes a response body.
      span.setAttribute("error.type", code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: code });
    }
    span.end();
  };

  subscribe(TOKEN_REQUEST_CHANNELS.start, onStart);
  subscribe(TOKEN_REQUEST_CHANNELS.end, onFinish);
  subscribe(TOKEN_REQUEST_CHANNELS.error, onFinish);
  // A span still open when this is called is never ended, so never exported: the map forgets it.
  return () => {
    unsubscribe(TOKEN_REQUEST_CHANNELS.start, onStart);
    unsubscribe(TOKEN_REQUEST_CHANNELS.end, onFinish);
    unsubscribe(TOKEN_REQUEST_CHANNELS.error, onFinish);
  };
}

/**
 * Returns an `onEvent` listener that counts refreshes, failures, retries, replays and store
 * failures, and records refresh durations. `attributes` go on every data point: name the client
 * there when one process has several (events do not say which client they come from).
 */
export function countTokenEvents(meter: Meter, attributes: Attributes = {}): (event: TokenEvent) => void {
  // Instruments are made once, here; making them per event would look them up again on each call.
  const refreshes = meter.createCounter("oauth2.token.refreshes", { description: "Tokens fetched from the token endpoint" });
  const duration = meter.createHistogram("oauth2.token.refresh.duration", {
    description: "Time to get a token, retries included",
    // Seconds, as OpenTelemetry's HTTP durations are; the boundaries span a fast IdP to a timed-out one.
    unit: "s",
    advice: { explicitBucketBoundaries: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] },
  });
  const failures = meter.createCounter("oauth2.token.failures", { description: "Failed attempts to get a token" });
  const retries = meter.createCounter("oauth2.token.retries", { description: "Token requests retried after a transient failure" });
  const throttled = meter.createCounter("oauth2.token.throttled", { description: "Times the token endpoint answered Retry-After" });
  const replayed = meter.createCounter("oauth2.requests.replayed", { description: "Requests replayed with a new token after a 401" });
  const notReplayed = meter.createCounter("oauth2.requests.not_replayed", { description: "401 responses handed to the caller" });
  const storeFailures = meter.createCounter("oauth2.store.failures", { description: "Token store calls that failed" });

  // Only codes, reasons and flags become attributes: bounded sets, and none of them is a token or a secret.
  return (event) => {
    switch (event.type) {
      case "token_refreshed":
        refreshes.add(1, { ...attributes, "oauth2.background": event.background });
        duration.record(event.durationMs / 1000, { ...attributes, "oauth2.background": event.background });
        break;
      case "refresh_failed":
        failures.add(1, { ...attributes, "error.type": event.code, "oauth2.serving_cached_token": event.servingCachedToken });
        break;
      case "request_retried":
        retries.add(1, { ...attributes, "error.type": event.code });
        break;
      case "throttled":
        throttled.add(1, attributes);
        break;
      case "unauthorized_replayed":
        replayed.add(1, { ...attributes, "http.response.status_code": event.status });
        break;
      case "unauthorized_not_replayed":
        notReplayed.add(1, { ...attributes, "http.response.status_code": event.status, "oauth2.reason": event.reason });
        break;
      case "store_failed":
        storeFailures.add(1, { ...attributes, "oauth2.store.operation": event.operation, "oauth2.store.reason": event.reason });
        break;
      default:
        // token_cached and scope_narrowed are for logs (expiry times, scope lists), and event types
        // added in later versions are ignored rather than counted under a wrong name.
        break;
    }
  };
}
