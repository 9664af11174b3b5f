/**
 * @gatehouse/sdk — for services that enforce Gatehouse decisions locally. So far it re-exports
 * the local engine (token mode over compiled bundle payloads); the bundle agent, token verifier,
 * authorizer and middleware come with the data-plane work (issue 6).
 */

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
