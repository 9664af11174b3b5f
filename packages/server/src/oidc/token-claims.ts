/**
 * What goes into a token, decided by policy on the node's in-memory catalog (api.md §1; no SQL):
 *
 * - which requested scopes are granted: `TYPE:ACTION` on an API of domain D iff the engine allows
 *   ACTION on `D:TYPE/*` for the principal; `DOMAIN:role.NAME` iff the principal holds that role;
 *   a scope the API does not declare is unknown, and rejected like a denied one;
 * - the claims: `domain`, `roles`, `groups` (the principal's memberships in the API's domain,
 *   resolved with resolveTokenClaims, the same function token mode relies on) and, when the API
 *   asks for it, the PBAC `permissions` claim (permissionsFor);
 * - the latest `exp` the token may have: never later than the earliest expiry among the
 *   memberships it carries — its roles and groups, and the roles behind its granted role scopes
 *   (semantics.md "Privileged access").
 *
 * Times: a token is issued at a whole second `iat` (oidc-provider's epochTime) and lives at least
 * one second, so memberships are resolved as they stand at `iat + 1`: one that ends within the
 * token's first second is not carried at all, and every one carried lets `exp` be capped at or
 * after `iat + 1`.
 */

import {
  decide,
  permissionsFor,
  resolveSubject,
  resolveTokenClaims,
  type Catalog,
  type PermissionsClaim,
} from '@gatehouse/engine';

/** The resource server a token is for: an API of the store, or one of the server's own audiences. */
export interface TokenApi {
  /** The API's domain; undefined for the server's own audiences (management, decision API). */
  readonly domain: string | undefined;
  /** The `aud` of its tokens (RFC 8707 resource indicator). */
  readonly audience: string;
  /** The permission scopes it declares (lower case); others requested are unknown. */
  readonly scopes: readonly string[];
  /** Whether its tokens carry the PBAC `permissions` claim. */
  readonly permissionsClaim: boolean;
}

/** The outcome of deciding requested scopes: both lists keep the request's order, without repeats. */
export interface ScopeDecision {
  readonly granted: readonly string[];
  readonly rejected: readonly string[];
}

/** The Gatehouse claims of an access token and the latest `exp` it may carry. */
export interface TokenFacts {
  /** `domain`, `roles`, `groups` (when any), `permissions` (when the API asks). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Epoch seconds the token's `exp` must not pass; undefined when nothing it carries expires. */
  readonly maxExp: number | undefined;
}

/** A scope `DOMAIN:role.NAME`, split; undefined for any other scope. */
export function parseRoleScope(scope: string): { domain: string; role: string } | undefined {
  const colon = scope.indexOf(':');
  if (colon <= 0 || !scope.startsWith('role.', colon + 1)) return undefined;
  const role = scope.slice(colon + 1 + 'role.'.length);
  return role.length === 0 ? undefined : { domain: scope.slice(0, colon), role };
}

/**
 * Decides `requested` scopes for `principal` on `api` at `nowMs` (see the module comment). Never
 * throws: an unknown or malformed scope is rejected, not an error for the request (issue 4).
 */
export function decideScopes(
  catalog: Catalog,
  principal: string,
  api: TokenApi,
  requested: Iterable<string>,
  nowMs: number,
): ScopeDecision {
  const declared = new Set(api.scopes);
  const granted: string[] = [];
  const rejected: string[] = [];
  const seen = new Set<string>();
  const membershipAt = membershipInstant(nowMs);
  for (const scope of requested) {
    if (scope === '' || seen.has(scope)) continue;
    seen.add(scope);
    const ok = declared.has(scope) && isScopeAllowed(catalog, principal, api, scope, nowMs, membershipAt);
    (ok ? granted : rejected).push(scope);
  }
  return { granted, rejected };
}

function isScopeAllowed(
  catalog: Catalog,
  principal: string,
  api: TokenApi,
  scope: string,
  nowMs: number,
  membershipAt: number,
): boolean {
  const role = parseRoleScope(scope);
  if (role !== undefined) return roleExpiry(catalog, principal, role.domain, role.role, membershipAt) !== undefined;
  if (api.domain === undefined) return false;
  const colon = scope.indexOf(':');
  if (colon <= 0) return false;
  // api.md §1: TYPE:ACTION is granted when ACTION is allowed on D:TYPE/* (the literal resource
  // "all of TYPE"): a grant on every resource of the type, not on some of them.
  const decision = decide(
    catalog,
    { principal, action: scope.slice(colon + 1), resource: `${api.domain}:${scope.slice(0, colon)}/*` },
    { now: nowMs },
  );
  return decision.decision === 'allow';
}

/**
 * When `principal` stops holding role `role` of `domain` (epoch ms; Infinity when never), or
 * undefined when it does not hold it at `atMs` (or the domain is unknown or disabled).
 */
function roleExpiry(
  catalog: Catalog,
  principal: string,
  domain: string,
  role: string,
  atMs: number,
): number | undefined {
  const d = catalog.domains.get(domain.toLowerCase());
  if (d === undefined || !d.enabled) return undefined;
  return resolveSubject(catalog, d, principal.toLowerCase(), atMs, false).roles.get(role.toLowerCase())?.until;
}

/**
 * The claims and the `exp` ceiling of a token issued at `iatSeconds` for `principal` on `api`
 * with the granted `scope` (space-separated). Tokens for the server's own audiences carry no
 * Gatehouse claims, but their role scopes still cap `exp`.
 */
export function tokenFactsFor(
  catalog: Catalog,
  principal: string,
  api: TokenApi,
  scope: string | undefined,
  iatSeconds: number,
): TokenFacts {
  const at = (iatSeconds + 1) * 1000;
  let earliestMs = Number.POSITIVE_INFINITY;
  const claims: Record<string, unknown> = {};
  if (api.domain !== undefined) {
    const membership = resolveTokenClaims(catalog, principal, api.domain, at);
    claims.domain = api.domain;
    claims.roles = membership?.roles ?? [];
    if (membership !== undefined && membership.groups.length > 0) claims.groups = membership.groups;
    if (membership?.expiresAtMs !== undefined) earliestMs = Math.min(earliestMs, membership.expiresAtMs);
    if (api.permissionsClaim) claims.permissions = permissionsFor(catalog, principal, api.domain, at);
  }
  for (const s of (scope ?? '').split(' ')) {
    const role = s === '' ? undefined : parseRoleScope(s);
    if (role === undefined) continue;
    const until = roleExpiry(catalog, principal, role.domain, role.role, at);
    if (until !== undefined) earliestMs = Math.min(earliestMs, until);
  }
  return { claims, maxExp: earliestMs === Number.POSITIVE_INFINITY ? undefined : Math.floor(earliestMs / 1000) };
}

/** The `roles` and `features` claims of an ID token for a user signing in to a client of `domain`. */
export function identityClaimsFor(
  catalog: Catalog,
  principal: string,
  domain: string,
  nowMs: number,
): { roles: string[]; features: string[]; maxExp: number | undefined } {
  const at = membershipInstant(nowMs);
  const membership = resolveTokenClaims(catalog, principal, domain, at);
  return {
    roles: membership?.roles ?? [],
    features: featuresOf(permissionsFor(catalog, principal, domain, at)),
    maxExp: membership?.expiresAtMs === undefined ? undefined : Math.floor(membership.expiresAtMs / 1000),
  };
}

/**
 * The `features` claim: every `TYPE:ACTION` the principal may do on all resources of a type
 * (the `*` entries of the permissions claim), sorted — the application-level view of the same
 * grants, in the form of permission scopes.
 */
function featuresOf(permissions: PermissionsClaim): string[] {
  const out: string[] = [];
  const byType = permissions[0];
  if (byType === undefined) return out;
  for (const [type, ids] of Object.entries(byType)) {
    for (const action of ids['*'] ?? []) out.push(`${type}:${action}`);
  }
  return out.sort();
}

/** The instant memberships are resolved at for a token issued now: the end of its first second. */
function membershipInstant(nowMs: number): number {
  return (Math.floor(nowMs / 1000) + 1) * 1000;
}
