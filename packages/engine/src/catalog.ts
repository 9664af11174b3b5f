/**
 * The catalog: every compiled domain and the principals' stored attributes, as one immutable
 * value. Decisions read it; a change produces a new catalog that shares every unchanged domain
 * (a write recompiles only the domain it touched).
 */

import { compileDomainCollecting, ModelError, type CompiledDomain, type ModelIssue } from './compile-domain.js';
import type { DomainModel, PrincipalModel } from './model.js';
import { validatePrincipalName } from './names.js';

/** Compiled domains and principal attributes. */
export interface Catalog {
  readonly domains: ReadonlyMap<string, CompiledDomain>;
  /** Stored subject properties by principal: attributes plus email and displayName. */
  readonly principals: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
}

/** The subject properties the engine keeps for a principal. */
export function principalProperties(p: PrincipalModel): Record<string, unknown> {
  const props: Record<string, unknown> = { ...(p.attributes ?? {}) };
  if (p.email !== undefined) props.email = p.email;
  if (p.displayName !== undefined) props.displayName = p.displayName;
  return props;
}

/** Builds a catalog from compiled domains and principals. */
export function createCatalog(
  domains: readonly CompiledDomain[] = [],
  principals: readonly PrincipalModel[] = [],
): Catalog {
  return {
    domains: new Map(domains.map((d) => [d.name, d])),
    principals: new Map(principals.map((p) => [p.name.toLowerCase(), principalProperties(p)])),
  };
}

/** A new catalog with these domains added or replaced; every other domain is shared. */
export function withDomains(catalog: Catalog, domains: readonly CompiledDomain[]): Catalog {
  const next = new Map(catalog.domains);
  for (const d of domains) next.set(d.name, d);
  return { domains: next, principals: catalog.principals };
}

/** A new catalog without the named domains. */
export function withoutDomains(catalog: Catalog, names: readonly string[]): Catalog {
  const next = new Map(catalog.domains);
  for (const n of names) next.delete(n.toLowerCase());
  return { domains: next, principals: catalog.principals };
}

/** A new catalog with these principals' attributes set and the `removed` ones dropped. */
export function withPrincipals(
  catalog: Catalog,
  principals: readonly PrincipalModel[],
  removed: readonly string[] = [],
): Catalog {
  const next = new Map(catalog.principals);
  for (const r of removed) next.delete(r.toLowerCase());
  for (const p of principals) next.set(p.name.toLowerCase(), principalProperties(p));
  return { domains: catalog.domains, principals: next };
}

/** What validateDomains needs to know of a domain outside the set being validated. */
export interface ExternalDomain {
  groups: ReadonlySet<string>;
}

/** Options of validateDomains. */
export interface ValidateOptions {
  /** Domains that exist outside the given set (the store), for cross-domain references. */
  lookupDomain?: (name: string) => ExternalDomain | undefined;
  /** Principals to validate too (paths `principals[i]`). */
  principals?: readonly PrincipalModel[];
}

/**
 * Validates a whole set of domains: each one on its own (see compileDomain) and every
 * cross-domain reference (groups of other domains, trust domains, subdomain parents). Returns
 * every issue with its path (`domains[2].policies[0].assertions[5].role`); never throws.
 */
export function validateDomains(models: readonly DomainModel[], options: ValidateOptions = {}): ModelIssue[] {
  return compileAll(models, options).issues;
}

function compileAll(
  models: readonly DomainModel[],
  options: ValidateOptions,
): { compiled: CompiledDomain[]; issues: ModelIssue[] } {
  const issues: ModelIssue[] = [];
  const compiled: CompiledDomain[] = [];
  const byName = new Map<string, CompiledDomain>();
  models.forEach((m, i) => {
    const r = compileDomainCollecting(m);
    for (const is of r.issues) issues.push({ ...is, path: `domains[${i}].${is.path}` });
    if (byName.has(r.compiled.name)) {
      issues.push({
        path: `domains[${i}].name`,
        code: 'domain.duplicate',
        message: `domain "${r.compiled.name}" is defined twice`,
      });
    }
    byName.set(r.compiled.name, r.compiled);
    compiled.push(r.compiled);
  });
  const groupsOf = (domain: string): ReadonlySet<string> | undefined => {
    const d = byName.get(domain);
    if (d) return new Set(d.groups.keys());
    return options.lookupDomain?.(domain)?.groups;
  };
  compiled.forEach((d, i) => {
    const dot = d.name.lastIndexOf('.');
    if (dot > 0) {
      const parent = d.name.slice(0, dot);
      if (groupsOf(parent) === undefined) {
        issues.push({
          path: `domains[${i}].name`,
          code: 'domain.parent_not_found',
          message: `subdomain "${d.name}" needs its parent domain "${parent}"`,
        });
      }
    }
    for (const ref of d.references) {
      const groups = groupsOf(ref.domain);
      if (groups === undefined) {
        issues.push({
          path: `domains[${i}].${ref.path}`,
          code: 'domain.not_found',
          message: `domain "${ref.domain}" does not exist`,
        });
      } else if (ref.kind === 'group' && ref.name !== undefined && !groups.has(ref.name)) {
        issues.push({
          path: `domains[${i}].${ref.path}`,
          code: 'group.not_found',
          message: `group "${ref.name}" is not a group of domain ${ref.domain}`,
        });
      }
    }
  });
  const seen = new Set<string>();
  (options.principals ?? []).forEach((p, i) => {
    const name = String(p.name ?? '').toLowerCase();
    const problem = validatePrincipalName(name);
    if (problem) issues.push({ path: `principals[${i}].name`, code: problem.code, message: problem.message });
    else if (seen.has(name)) {
      issues.push({
        path: `principals[${i}].name`,
        code: 'principal.duplicate',
        message: `principal "${name}" is defined twice`,
      });
    }
    seen.add(name);
  });
  return { compiled, issues };
}

/**
 * Validates and compiles a whole set of domains with its principals into a catalog. Throws
 * ModelError with every issue when anything is invalid.
 */
export function compileCatalog(
  models: readonly DomainModel[],
  principals: readonly PrincipalModel[] = [],
  options: Omit<ValidateOptions, 'principals'> = {},
): Catalog {
  const { compiled, issues } = compileAll(models, { ...options, principals });
  if (issues.length > 0) throw new ModelError(issues);
  return createCatalog(compiled, principals);
}
