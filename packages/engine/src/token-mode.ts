/**
 * Token mode (semantics.md "Local engine"): decisions from signed bundles and an already
 * verified access token's claims — roles from `roles`, groups from `groups`, the subject from
 * `sub` — with Athenz ZPE-style result codes. Also `resolveTokenClaims`, which computes the
 * claims the server puts in a token so that both modes agree.
 */

import type { Catalog } from './catalog.js';
import { evaluateAssertions, summarize, toMs, type DecisionRequest, type Explanation } from './decide.js';
import { groupViewFromNames, resolveSubject, subjectView, type Held, type SubjectView } from './membership.js';
import { roleFullName, splitResource } from './names.js';

/** Result codes of the local engine. */
export type TokenStatus =
  | 'ALLOW'
  | 'DENY'
  | 'DENY_NO_MATCH'
  | 'DENY_TOKEN_INVALID'
  | 'DENY_TOKEN_EXPIRED'
  | 'DENY_DOMAIN_MISMATCH'
  | 'DENY_DOMAIN_NOT_FOUND'
  | 'DENY_DOMAIN_EMPTY'
  | 'DENY_DOMAIN_EXPIRED'
  | 'DENY_INVALID_PARAMETERS';

/** The claims token mode reads. Anything else in the token is ignored. */
export interface TokenClaims {
  sub?: unknown;
  domain?: unknown;
  roles?: unknown;
  groups?: unknown;
  /** Seconds since the epoch (RFC 7519 NumericDate). Required. */
  exp?: unknown;
  iat?: unknown;
  [claim: string]: unknown;
}

/** Options of a token-mode decision. */
export interface TokenDecideOptions extends Pick<
  DecisionRequest,
  'context' | 'subjectProperties' | 'resourceProperties' | 'actionProperties'
> {
  now: Date | number;
  /** Allowed clock skew for `exp` and `iat`; default 0. */
  clockSkewSeconds?: number | undefined;
  explain?: boolean | undefined;
}

/** A token-mode decision. */
export interface TokenDecision {
  allowed: boolean;
  status: TokenStatus;
  reason: string;
  domain?: string;
  revision?: number;
  explanation?: Explanation;
}

function deny(status: TokenStatus, reason: string, domain?: string): TokenDecision {
  return domain === undefined ? { allowed: false, status, reason } : { allowed: false, status, reason, domain };
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** The domains a token speaks for: its `domain` claim, or else the domains of its roles. */
export function tokenDomains(claims: TokenClaims): string[] {
  if (typeof claims.domain === 'string' && claims.domain !== '') return [claims.domain.toLowerCase()];
  const out = new Set<string>();
  if (isStringArray(claims.roles)) {
    for (const r of claims.roles) {
      const colon = r.indexOf(':');
      if (colon > 0) out.add(r.slice(0, colon).toLowerCase());
    }
  }
  return [...out];
}

/**
 * Decides with the token's claims against the catalog built from bundles. Checks the token's
 * shape and lifetime first (the signature is the caller's job), then the parameters and the
 * domain, then the assertions. Never throws.
 */
export function decideToken(
  catalog: Catalog,
  claims: TokenClaims,
  action: string,
  resource: string,
  options: TokenDecideOptions,
): TokenDecision {
  const nowMs = toMs(options.now);
  const skewMs = Math.max(0, options.clockSkewSeconds ?? 0) * 1000;
  if (claims === null || typeof claims !== 'object')
    return deny('DENY_TOKEN_INVALID', 'token claims are not an object');
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) {
    return deny('DENY_TOKEN_INVALID', 'token has no numeric exp claim');
  }
  if (claims.iat !== undefined && (typeof claims.iat !== 'number' || !Number.isFinite(claims.iat))) {
    return deny('DENY_TOKEN_INVALID', 'token iat claim is not a number');
  }
  if (claims.roles !== undefined && claims.roles !== null && !isStringArray(claims.roles)) {
    return deny('DENY_TOKEN_INVALID', 'token roles claim is not a list of strings');
  }
  if (claims.groups !== undefined && claims.groups !== null && !isStringArray(claims.groups)) {
    return deny('DENY_TOKEN_INVALID', 'token groups claim is not a list of strings');
  }
  if (claims.sub !== undefined && typeof claims.sub !== 'string')
    return deny('DENY_TOKEN_INVALID', 'token sub claim is not a string');
  if (typeof claims.iat === 'number' && claims.iat * 1000 > nowMs + skewMs) {
    return deny('DENY_TOKEN_INVALID', 'token was issued in the future');
  }
  // RFC 7519 §4.1.4: expired on or after exp (within the allowed skew).
  if (nowMs >= claims.exp * 1000 + skewMs) return deny('DENY_TOKEN_EXPIRED', 'token has expired');

  const act = typeof action === 'string' ? action.toLowerCase() : '';
  if (act.length === 0) return deny('DENY_INVALID_PARAMETERS', 'action is empty');
  const domains = tokenDomains(claims);
  let res = typeof resource === 'string' ? resource.toLowerCase() : '';
  if (res.length === 0) return deny('DENY_INVALID_PARAMETERS', 'resource is empty');
  if (!res.includes(':')) {
    // A resource without a domain prefix means the token's domain.
    if (domains.length !== 1)
      return deny('DENY_INVALID_PARAMETERS', `resource "${resource}" has no domain and the token names none`);
    res = `${domains[0]}:${res}`;
  }
  const parts = splitResource(res);
  if (parts === undefined) return deny('DENY_INVALID_PARAMETERS', `resource "${resource}" is not <domain>:<entity>`);
  if (domains.length > 0 && !domains.includes(parts.domain)) {
    return deny('DENY_DOMAIN_MISMATCH', `the token is for ${domains.join(', ')}, not ${parts.domain}`, parts.domain);
  }
  const d = catalog.domains.get(parts.domain);
  if (d === undefined) return deny('DENY_DOMAIN_NOT_FOUND', `no bundle for domain ${parts.domain}`, parts.domain);
  if (d.expiresAtMs !== undefined && nowMs >= d.expiresAtMs) {
    return deny('DENY_DOMAIN_EXPIRED', `the bundle of ${parts.domain} has expired`, parts.domain);
  }
  if (!d.enabled || d.assertions.length === 0)
    return deny('DENY_DOMAIN_EMPTY', `the bundle of ${parts.domain} has no policies`, parts.domain);

  const principal = typeof claims.sub === 'string' ? claims.sub.toLowerCase() : '';
  const roles = new Map<string, Held>();
  const prefix = `${d.name}:role.`;
  const forever: Held = { until: Number.POSITIVE_INFINITY, path: undefined };
  for (const r of (claims.roles as string[] | undefined) ?? []) {
    const lower = r.toLowerCase();
    // Only the resource domain's own roles count: another domain's role never matches.
    if (lower.startsWith(prefix)) roles.set(lower.slice(prefix.length), forever);
  }
  const g = groupViewFromNames(catalog, (claims.groups as string[] | undefined) ?? []);
  const view: SubjectView = subjectView(principal, roles, g.groups, g.groupTree);
  const explain = options.explain === true;
  const e = evaluateAssertions(
    d,
    view,
    act,
    res,
    { principal, storedSubject: undefined, request: options, nowMs },
    explain,
  );
  const status: TokenStatus = e.effect === 'allow' ? 'ALLOW' : e.effect === 'deny' ? 'DENY' : 'DENY_NO_MATCH';
  const summary = summarize(e, principal, act, res);
  const out: TokenDecision = {
    allowed: e.effect === 'allow',
    status,
    reason: summary,
    domain: d.name,
    revision: d.revision,
  };
  if (explain) {
    out.explanation = {
      decision: e.effect === 'allow' ? 'allow' : 'deny',
      code: e.effect,
      principal,
      action: act,
      resource: res,
      domain: d.name,
      revision: d.revision,
      deciding: e.deciding,
      conditions: e.conditions,
      summary,
    };
  }
  return out;
}

/** The membership claims of a token for a principal in a domain. */
export interface TokenMembership {
  /** Full role names held (delegation included), sorted. */
  roles: string[];
  /** Full names of the groups the principal directly belongs to, sorted. */
  groups: string[];
  /** Epoch ms of the earliest expiry among the memberships carried; undefined when none expires. */
  expiresAtMs: number | undefined;
}

/**
 * The roles and groups a token issued at `now` for `principal` in `domain` carries, and the
 * instant its `exp` must not pass. Returns undefined when the domain does not exist or is
 * disabled.
 */
export function resolveTokenClaims(
  catalog: Catalog,
  principal: string,
  domain: string,
  now: Date | number,
): TokenMembership | undefined {
  const d = catalog.domains.get(domain.toLowerCase());
  if (d === undefined || !d.enabled) return undefined;
  const view = resolveSubject(catalog, d, principal.toLowerCase(), toMs(now), false);
  let earliest = Number.POSITIVE_INFINITY;
  const roles: string[] = [];
  for (const [r, held] of view.roles) {
    roles.push(roleFullName(d.name, r));
    earliest = Math.min(earliest, held.until);
  }
  const groups: string[] = [];
  for (const [gname, held] of view.groups) {
    groups.push(gname);
    earliest = Math.min(earliest, held.until);
  }
  return {
    roles: roles.sort(),
    groups: groups.sort(),
    expiresAtMs: earliest === Number.POSITIVE_INFINITY ? undefined : earliest,
  };
}
