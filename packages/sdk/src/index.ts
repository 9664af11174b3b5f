/**
 * @gatehouse/sdk — for services that enforce Gatehouse decisions locally: the bundle verifier, the
 * authorizer (bundles fetched, verified, cached and decided on with the engine's token mode) and the
 * local engine itself. Background refresh, the access-token verifier and middleware come with the
 * rest of the data-plane work (issue 6).
 */

export {
  BUNDLE_JWS_TYPE,
  BundleError,
  verifyBundle,
  type BundleErrorCode,
  type BundleExpectation,
  type BundleKeys,
} from './verify-bundle.js';
export {
  createAuthorizer,
  type Authorizer,
  type AuthorizerCredentials,
  type AuthorizerDecision,
  type AuthorizerOptions,
  type HeldBundle,
  type RefreshResult,
} from './authorizer.js';

export {
  compileBundle,
  createCatalog,
  decideToken,
  tokenDomains,
  type BundlePayload,
  type Catalog,
  type TokenClaims,
  type TokenDecideOptions,
  type TokenDecision,
  type TokenStatus,
} from '@gatehouse/engine';
