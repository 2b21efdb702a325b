/**
 * The one way tests build an interceptor against loopback servers: a token server that counts
 * what reaches it, the interceptor with test defaults (client "c", secret "s", no retries, no
 * jitter), the events it emits, and, when asked, a resource server behind an axios instance.
 * Everything is disposed and closed when the test finishes.
 */
import axios, { type AxiosInstance, type CreateAxiosDefaults } from "axios";
import { onTestFinished } from "vitest";
import {
  createTokenRefreshInterceptor,
  type ClientAuthMethod,
  type CommonTokenRefreshOptions,
  type TokenEvent,
  type TokenRefreshInterceptor,
  type TokenRefreshOptions,
} from "../../src/index.js";
import { startResourceServer, startTokenServer, type Handler, type ResourceServer, type TokenServer } from "./servers.js";

/** Any option a test overrides, the credential and endpoint ones included (`clientSecret: undefined` drops the default secret). */
export type Overrides = Partial<CommonTokenRefreshOptions> & {
  tokenUrl?: string;
  tenantId?: string;
  authorityHost?: string;
  clientSecret?: string | undefined;
  clientAssertion?: string | (() => string | Promise<string>);
  clientAuthMethod?: ClientAuthMethod;
};

/** A token server and an interceptor for it. */
export interface InterceptorUnderTest {
  tokens: TokenServer;
  auth: TokenRefreshInterceptor;
  events: TokenEvent[];
}

/** The same, with a resource server behind an axios instance the interceptor is installed on. */
export interface ApiUnderTest extends InterceptorUnderTest {
  resource: ResourceServer;
  api: AxiosInstance;
  /** Removes what attach() installed (a no-op with `install: "use"`). */
  detach: () => void;
}

/** Starts a token server answering with `handler` (default: token-1, token-2, … for an hour) and an interceptor for it. */
export async function interceptorFor(handler?: Handler, overrides: Overrides = {}): Promise<InterceptorUnderTest> {
  const tokens = await startTokenServer(handler);
  const events: TokenEvent[] = [];
  const options = {
    tokenUrl: tokens.url,
    clientId: "c",
    clientSecret: "s",
    refreshJitter: 0,
    retry: { attempts: 1 },
    onEvent: (event: TokenEvent) => events.push(event),
    ...overrides,
  };
  // The one cast: overrides may swap the credential kind, which the option types rightly refuse to mix.
  const auth = createTokenRefreshInterceptor(options as TokenRefreshOptions);
  onTestFinished(() => auth.dispose());
  return { tokens, auth, events };
}

/** Adds a resource server and an axios instance on it, with the interceptor attached (or `use`d). */
export async function apiFor(
  handler?: Handler,
  overrides: Overrides = {},
  how: { install?: "attach" | "use"; instance?: CreateAxiosDefaults; path?: string } = {},
): Promise<ApiUnderTest> {
  const under = await interceptorFor(handler, overrides);
  const resource = await startResourceServer();
  const api = axios.create({ baseURL: `${resource.origin}${how.path ?? ""}`, ...how.instance });
  let detach = (): void => {};
  if (how.install === "use") api.interceptors.request.use(under.auth);
  else detach = under.auth.attach(api);
  return { ...under, resource, api, detach };
}
