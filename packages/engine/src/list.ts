/**
 * Listing (semantics.md "Listing"): the actions a principal may do on a resource, in one pass
 * over the assertions that reach it; and the resource patterns of a type it may reach, as allow
 * patterns minus deny patterns, paginated and complete.
 */

import type { Catalog } from './catalog.js';
import type { CompiledAssertion, CompiledDomain } from './compile-domain.js';
import type { ConditionInput, ConditionResult } from './condition.js';
import { conditionInput, toMs, type DecisionCode, type DecisionRequest } from './decide.js';
import { compileGlob, globsIntersect, hasGlobChars } from './glob.js';
import { forEachBucket, resolveSubject, type SubjectView } from './membership.js';
import { splitResource } from './names.js';

/** What a principal may do on a resource. */
export interface ActionList {
  /** Literal actions the decision allows (those named by the domain's policies), sorted. */
  actions: string[];
  /** Glob actions of matching allow assertions (`*`, `read*`), sorted. */
  allowPatterns: string[];
  /** Action globs and names of matching deny assertions that cut into what is allowed, sorted. */
  denyPatterns: string[];
  /**
   * Glob actions of matching allow assertions whose condition depends on the action (false for
   * the pattern's own text): allowed for the actions where the condition holds, sorted.
   */
  conditionalPatterns: string[];
}

/** A listing's error, the same codes as decisions. */
export interface ListError {
  error: DecisionCode;
  message: string;
}

function resolveDomain(
  catalog: Catalog,
  resource: string,
): { d: CompiledDomain; parts: NonNullable<ReturnType<typeof splitResource>> } | ListError {
  const parts = splitResource(resource);
  if (parts === undefined)
    return { error: 'resource.invalid', message: `resource "${resource}" is not <domain>:<entity>` };
  const d = catalog.domains.get(parts.domain);
  if (d === undefined) return { error: 'domain.not_found', message: `domain "${parts.domain}" does not exist` };
  if (!d.enabled) return { error: 'domain.disabled', message: `domain "${parts.domain}" is disabled` };
  return { d, parts };
}

function reached(d: CompiledDomain, view: SubjectView, keep: (a: CompiledAssertion) => boolean): CompiledAssertion[] {
  const out = new Set<CompiledAssertion>();
  forEachBucket(d, view, (bucket) => {
    for (const a of bucket.assertions) {
      if (out.has(a) || !keep(a)) continue;
      if (a.requires.some((r) => !view.roles.has(r))) continue;
      out.add(a);
    }
    return false;
  });
  return [...out];
}

/**
 * Every action `principal` may do on `resource` at `now`. Conditions are evaluated with
 * `action.name` set to each action considered. Returns ListError for a bad resource or domain.
 */
export function listActions(
  catalog: Catalog,
  request: Omit<DecisionRequest, 'action'>,
  options: { now: Date | number },
): ActionList | ListError {
  const resource = request.resource.toLowerCase();
  const found = resolveDomain(catalog, resource);
  if ('error' in found) return found;
  const { d } = found;
  const nowMs = toMs(options.now);
  const principal = request.principal.toLowerCase();
  const view = resolveSubject(catalog, d, principal, nowMs, false);
  const candidates = reached(d, view, (a) => a.resource.matches(resource));
  const inputs = new Map<string, ConditionInput>();
  const condition = (a: CompiledAssertion, action: string): ConditionResult => {
    if (!a.condition) return true;
    let input = inputs.get(action);
    if (!input) {
      input = conditionInput(d, resource, action, {
        principal,
        storedSubject: catalog.principals.get(principal),
        request,
        nowMs,
      });
      inputs.set(action, input);
    }
    return a.condition.evaluate(input);
  };
  const allows = candidates.filter((a) => a.effect === 'allow');
  const denies = candidates.filter((a) => a.effect === 'deny');
  const names = new Set(d.actions);
  for (const a of allows) if (!hasGlobChars(a.action.source)) names.add(a.action.source);
  const actions: string[] = [];
  for (const name of names) {
    const denied = denies.some((a) => a.action.matches(name) && condition(a, name) !== false);
    if (denied) continue;
    if (allows.some((a) => a.action.matches(name) && condition(a, name) === true)) actions.push(name);
  }
  const globAllows = allows.filter((a) => hasGlobChars(a.action.source));
  const allowPatterns = [
    ...new Set(globAllows.filter((a) => condition(a, a.action.source) === true).map((a) => a.action.source)),
  ];
  const conditionalPatterns = [
    ...new Set(
      globAllows
        .filter((a) => a.condition !== undefined && !allowPatterns.includes(a.action.source))
        .map((a) => a.action.source),
    ),
  ];
  // Every deny that reaches the resource is reported beside the allow patterns, conditional ones
  // included: a condition false for the pattern's own text may hold for some action it covers.
  const denyPatterns = [
    ...new Set(
      denies
        .map((a) => a.action.source)
        .filter(
          (p) =>
            [...allowPatterns, ...conditionalPatterns].some((ap) => globsIntersect(ap, p)) ||
            actions.some((x) => compileGlob(p).matches(x)),
        ),
    ),
  ];
  return {
    actions: actions.sort(),
    allowPatterns: allowPatterns.sort(),
    denyPatterns: denyPatterns.sort(),
    conditionalPatterns: conditionalPatterns.sort(),
  };
}

/** One resource pattern of a listing. */
export interface ResourcePattern {
  pattern: string;
  /** True when the assertion has a condition: the pattern holds only where it is true. */
  conditional: boolean;
}

/** A page of reachable resource patterns. */
export interface ResourceList {
  allow: ResourcePattern[];
  /** Deny patterns that cut into the allow patterns of this page. */
  deny: ResourcePattern[];
  /** Present when more allow patterns follow; pass it back as `cursor`. */
  nextCursor?: string;
}

/** Limits of listResources. */
export const LIST_LIMITS = { defaultLimit: 100, maxLimit: 1000 } as const;

/**
 * The resource patterns of `type` in `domain` for which `principal` may do `action`: allow
 * patterns (sorted, paginated by `cursor`/`limit`) and the deny patterns that cut into them.
 * Never silently cut off: a page that is not the last carries `nextCursor`.
 */
export function listResources(
  catalog: Catalog,
  request: { principal: string; action: string; domain: string; type: string },
  options: { now: Date | number; cursor?: string | undefined; limit?: number | undefined },
): ResourceList | ListError {
  const domain = request.domain.toLowerCase();
  const type = request.type.toLowerCase();
  const found = resolveDomain(catalog, `${domain}:${type}/x`);
  if ('error' in found) return found;
  const { d } = found;
  const action = request.action.toLowerCase();
  const view = resolveSubject(catalog, d, request.principal.toLowerCase(), toMs(options.now), false);
  const typeGlob = `${domain}:${type}/*`;
  const typeExact = `${domain}:${type}`;
  const reaches = (a: CompiledAssertion): boolean =>
    a.action.matches(action) && (globsIntersect(a.resource.source, typeGlob) || a.resource.matches(typeExact));
  const candidates = reached(d, view, reaches);
  const merge = (list: CompiledAssertion[]): ResourcePattern[] => {
    const m = new Map<string, boolean>();
    for (const a of list) {
      const conditional = a.condition !== undefined;
      m.set(a.resource.source, (m.get(a.resource.source) ?? true) && conditional);
    }
    return [...m]
      .map(([pattern, conditional]) => ({ pattern, conditional }))
      .sort((x, y) => (x.pattern < y.pattern ? -1 : x.pattern > y.pattern ? 1 : 0));
  };
  const allAllow = merge(candidates.filter((a) => a.effect === 'allow'));
  const allDeny = merge(candidates.filter((a) => a.effect === 'deny'));
  const limit = Math.min(Math.max(1, Math.floor(options.limit ?? LIST_LIMITS.defaultLimit)), LIST_LIMITS.maxLimit);
  const start = options.cursor === undefined ? 0 : allAllow.findIndex((p) => p.pattern > (options.cursor as string));
  const from = start < 0 ? allAllow.length : start;
  const page = allAllow.slice(from, from + limit);
  const deny = allDeny.filter((dp) => page.some((ap) => globsIntersect(ap.pattern, dp.pattern)));
  const out: ResourceList = { allow: page, deny };
  if (from + limit < allAllow.length) out.nextCursor = page[page.length - 1]?.pattern ?? '';
  return out;
}
