/**
 * The PBAC `permissions` claim (api.md §1): what a principal may do in a domain, per resource
 * type and id (`*` for all of a type), precomputed for tokens and UIs. Only unconditional allow
 * assertions with a literal action and a `D:TYPE/ID` resource (ID literal or `*`) that no deny
 * assertion reaching the principal could override are listed, so the claim is never wider than
 * what `decide` answers.
 */

import type { Catalog } from './catalog.js';
import type { CompiledAssertion } from './compile-domain.js';
import { toMs } from './decide.js';
import { globsIntersect, hasGlobChars } from './glob.js';
import { forEachBucket, resolveSubject } from './membership.js';

/** `[ { "book": { "*": ["read"], "42": ["read", "update"] } } ]`. */
export type PermissionsClaim = [Record<string, Record<string, string[]>>] | [];

/**
 * The permissions claim of `principal` in `domain` at `now`. Returns `[]` when the domain does
 * not exist, is disabled, or grants nothing listable.
 */
export function permissionsFor(
  catalog: Catalog,
  principal: string,
  domain: string,
  now: Date | number,
): PermissionsClaim {
  const d = catalog.domains.get(domain.toLowerCase());
  if (d === undefined || !d.enabled) return [];
  const view = resolveSubject(catalog, d, principal.toLowerCase(), toMs(now), false);
  const allows = new Set<CompiledAssertion>();
  const denies = new Set<CompiledAssertion>();
  forEachBucket(d, view, (bucket) => {
    for (const a of bucket.assertions) {
      if (a.requires.some((r) => !view.roles.has(r))) continue;
      (a.effect === 'deny' ? denies : allows).add(a);
    }
    return false;
  });
  const prefix = `${d.name}:`;
  const out: Record<string, Record<string, Set<string>>> = {};
  for (const a of allows) {
    if (a.condition !== undefined || hasGlobChars(a.action.source)) continue;
    const res = a.resource.source;
    if (!res.startsWith(prefix)) continue;
    const entity = res.slice(prefix.length);
    const slash = entity.indexOf('/');
    if (slash <= 0) continue;
    const type = entity.slice(0, slash);
    const id = entity.slice(slash + 1);
    if (hasGlobChars(type) || id.length === 0 || (id !== '*' && hasGlobChars(id))) continue;
    const action = a.action.source;
    // Any deny that reaches the principal (conditional or not) and could meet this allow
    // removes it: the claim must never be wider than the decision.
    let overridden = false;
    for (const dn of denies) {
      if (dn.action.matches(action) && globsIntersect(dn.resource.source, res)) {
        overridden = true;
        break;
      }
    }
    if (overridden) continue;
    const byId = (out[type] ??= {});
    (byId[id] ??= new Set()).add(action);
  }
  const types = Object.keys(out).sort();
  if (types.length === 0) return [];
  const claim: Record<string, Record<string, string[]>> = {};
  for (const type of types) {
    const byId = out[type] as Record<string, Set<string>>;
    const all = byId['*'];
    const ids: Record<string, string[]> = {};
    for (const id of Object.keys(byId).sort()) {
      const actions = new Set(byId[id]);
      if (all && id !== '*') for (const x of all) actions.add(x);
      ids[id] = [...actions].sort();
    }
    claim[type] = ids;
  }
  return [claim];
}
