/**
 * @gatehouse/server — the Gatehouse server and the `gatehouse` command line: a node's wiring
 * (createGatehouse), its parts, and the CLI.
 */

export { buildCli } from './cli/build-cli.js';
export { runPolicyTests, type PolicyTestRun } from './cli/policy-test-command.js';
export {
  KeyDecryptionError,
  MASTER_KEY_BYTES,
  MasterKeyCipher,
  type KeyDecryptionReason,
} from './keys/master-key-cipher.js';
export {
  KEY_PURPOSES,
  KeyService,
  type KeyPurpose,
  type KeyServiceOptions,
  type PublicJwks,
  type RotateOptions,
  type SigningAlgorithm,
  type SigningKey,
  type VerificationKey,
} from './keys/key-service.js';
export {
  ACCESS_TOKEN_TYPE,
  AccessTokenVerifier,
  InvalidTokenError,
  MAX_ACCESS_TOKEN_LENGTH,
  RESERVED_ACCESS_TOKEN_CLAIMS,
  mintAccessToken,
  type AccessTokenClaims,
  type AccessTokenVerifierOptions,
  type InvalidTokenCode,
  type MintAccessTokenInput,
} from './keys/access-tokens.js';
export {
  CONFIG_LIMITS,
  CONFIG_VARIABLES,
  ConfigError,
  loadConfig,
  OTHER_GATEHOUSE_VARIABLES,
  type ConfigIssue,
  type DatabaseConfig,
  type LogLevel,
  type ServerConfig,
  type ServerRole,
} from './config/load-config.js';
export {
  buildApp,
  UNMATCHED_ROUTE,
  type BuildAppOptions,
  type GatehouseApp,
  type LoggerOptions,
} from './http/build-app.js';
export { createMetrics, type CreateMetricsOptions, type GatehouseMetrics } from './http/create-metrics.js';
export { genRequestId, MAX_REQUEST_ID_LENGTH, REQUEST_ID_HEADER } from './http/gen-request-id.js';
export { handleError, handleNotFound, MAX_FIELD_ERRORS, sendProblem, toProblemError } from './http/handle-error.js';
export {
  badRequest,
  conflict,
  errorSchema,
  forbidden,
  notFound,
  preconditionFailed,
  PROBLEM_CONTENT_TYPE,
  PROBLEM_TYPE_BASE,
  ProblemError,
  problemResponses,
  problemType,
  serviceUnavailable,
  toProblemDetails,
  unauthorized,
  type ProblemDetails,
  type ProblemFieldError,
  type ProblemInit,
  type ProblemResponse,
} from './http/problem.js';
export { installGracefulShutdown, type GracefulShutdown, type GracefulShutdownOptions } from './http/shutdown.js';
export {
  ARGON2_IMPORT_LIMITS,
  generateSecret,
  OWASP_ARGON2ID,
  SECRET_LIMITS,
  SecretHasher,
  validateArgon2idHash,
  validateSecret,
  type Argon2Parameters,
} from './storage/secret-hasher.js';
export {
  principalOfUser,
  USER_LIMITS,
  UserStore,
  validateUserName,
  type UserInput,
  type UserPatch,
  type UserRecord,
  type UserStoreOptions,
} from './storage/user-store.js';
export { RESOURCE_LIMITS, ResourceStore, type ResourceInput, type ResourceRecord } from './storage/resource-store.js';
export {
  loadServicesAsPrincipals,
  SERVICE_LIMITS,
  ServiceStore,
  type PublicJwk,
  type ServiceInput,
  type ServicePatch,
  type ServiceRecord,
  type ServiceStoreOptions,
  type ServiceWrite,
} from './storage/service-store.js';
export {
  API_LIMITS,
  ApiStore,
  validateAudience,
  validateScope,
  type ApiInput,
  type ApiPatch,
  type ApiRecord,
} from './storage/api-store.js';
export {
  CLIENT_GRANT_TYPES,
  CLIENT_LIMITS,
  ClientStore,
  validateRedirectUri,
  type ClientGrantType,
  type ClientInput,
  type ClientPatch,
  type ClientRecord,
  type ClientStoreOptions,
  type ClientType,
  type ClientWrite,
} from './storage/client-store.js';
export { createGatehouse, type CreateGatehouseOptions, type Gatehouse } from './runtime/create-gatehouse.js';
export { applyConfig, type ApplyOptions, type ApplyResult } from './apply/apply-config.js';
export { OPERATOR } from './management/management-service.js';
