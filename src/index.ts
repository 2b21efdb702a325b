export { createTokenRefreshInterceptor } from "./interceptor.js";
export { createTokenSource } from "./token-source.js";
export type { AccessToken, DpopProofRequest, GetTokenOptions, TokenSource } from "./token-source.js";
export type {
  AttachableAxiosInstance,
  GetAccessTokenOptions,
  InterceptorList,
  TokenRefreshInterceptor,
  TokenRefreshRequestOptions,
} from "./interceptor.js";
export { InMemoryTokenStore } from "./store.js";
export type { InMemoryTokenStoreOptions, StoredToken, TokenStore } from "./store.js";
export { DEFAULTS } from "./options.js";
export type {
  ClientAssertionAlgorithm,
  ClientAuthMethod,
  ClientCertificate,
  ClientCredentialOptions,
  CommonTokenRefreshOptions,
  CommonTokenSourceOptions,
  DpopAlgorithm,
  DpopOptions,
  PrivateKeyObject,
  RetryOptions,
  TokenEndpointOptions,
  TokenHttpClient,
  TokenHttpRequest,
  TokenRefreshOptions,
  TokenSourceOptions,
} from "./options.js";
export type { NotReplayedReason, StoreFailureReason, StoreOperation, TokenEvent } from "./events.js";
export { TOKEN_REQUEST_CHANNELS } from "./tracing.js";
export type { TokenRequestMessage } from "./tracing.js";
export {
  DiscoveryError,
  InvalidOptionError,
  InvalidTokenResponseError,
  TokenRefreshError,
  TokenRequestError,
  isTokenRefreshError,
} from "./errors.js";
export type {
  DiscoveryErrorCode,
  DiscoveryErrorDetails,
  InvalidOptionCode,
  TokenRefreshErrorCode,
  TokenRequestErrorDetails,
} from "./errors.js";
