/**
 * Who holds a role (semantics.md "Who holds a role"): member entries, group entries (with
 * subgroups), role entries, and delegation through a trusted domain — resolved for one
 * principal in one domain at one instant, with the path by which each role is held when asked.
 *
 * Resolutions are memoised per domain and principal. Each memo entry records the instants for
 * which it holds (between the latest expiry already passed and the earliest expiry still to
 * come among the entries it looked at) and the versions of the other domains it consulted, so a
 * hit is always the answer a fresh resolution would give.
 */

import type { Catalog } from './catalog.js';
import type { CachedSubject, CompiledAssertion, CompiledDomain, EntryRef, SubjectBucket } from './compile-domain.js';
import { groupFullName, roleFullName } from './names.js';

/** One step of the way a principal holds a role or belongs to a group. */
export type PathStep =
  | { via: 'member'; role: string; entry: string; expires?: string }
  | { via: 'group-member'; group: string; entry: string; expires?: string }
  | { via: 'subgroup'; group: string; subgroup: string }
  | { via: 'group'; role: string; group: string; includeSubgroups: boolean }
  | { via: 'role'; role: string; member: string }
  | { via: 'trust'; role: string; trust: string; policy: string; version?: string; index: number; heldRole: string };

/** A role or group held: until when (epoch ms, Infinity = no expiry) and, on request, how. */
export interface Held {
  readonly until: number;
  readonly path: readonly PathStep[] | undefined;
}

/** What a decision needs to know of its subject in one domain. */
export interface SubjectView {
  readonly principal: string;
  /** Roles of the domain held (short names). */
  readonly roles: ReadonlyMap<string, Held>;
  /** Groups (full names) the principal is a direct valid member of. */
  readonly groups: ReadonlyMap<string, Held>;
  /** Those groups and all their ancestors: what `includeSubgroups` reaches. */
  readonly groupTree: ReadonlyMap<string, Held>;
  /** The keys of roles, groups and groupTree as arrays, for the decision's hot loop. */
  readonly roleKeys: readonly string[];
  readonly groupKeys: readonly string[];
  readonly groupTreeKeys: readonly string[];
}

/** Builds a SubjectView from its maps. */
export function subjectView(
  principal: string,
  roles: ReadonlyMap<string, Held>,
  groups: ReadonlyMap<string, Held>,
  groupTree: ReadonlyMap<string, Held>,
): SubjectView {
  return {
    principal,
    roles,
    groups,
    groupTree,
    roleKeys: [...roles.keys()],
    groupKeys: groups.size === 0 ? NO_KEYS : [...groups.keys()],
    groupTreeKeys: groupTree.size === 0 ? NO_KEYS : [...groupTree.keys()],
  };
}

const NO_KEYS: readonly string[] = [];

/** Memo entries kept per domain before the memo is emptied. */
export const SUBJECT_CACHE_LIMIT = 100_000;

const EMPTY: ReadonlyMap<string, Held> = new Map();
const FOREVER: Held = { until: Number.POSITIVE_INFINITY, path: undefined };

function held(until: number, path: readonly PathStep[] | undefined): Held {
  return path === undefined && until === Number.POSITIVE_INFINITY ? FOREVER : { until, path };
}

function expiresText(ms: number): { expires?: string } {
  return ms === Number.POSITIVE_INFINITY ? {} : { expires: new Date(ms).toISOString() };
}

/** The state of one resolution: what is held, and for which instants the answer holds. */
class Resolution {
  readonly roles = new Map<string, Held>();
  readonly queue: string[] = [];
  after = Number.NEGATIVE_INFINITY;
  until = Number.POSITIVE_INFINITY;
  readonly deps: [string, CompiledDomain | undefined][] = [];

  constructor(
    readonly catalog: Catalog,
    readonly nowMs: number,
    readonly withPaths: boolean,
  ) {}

  /** Records an entry looked at; returns whether it is valid now (expires >= now). */
  valid(expiresMs: number): boolean {
    if (expiresMs < this.nowMs) {
      if (expiresMs > this.after) this.after = expiresMs;
      return false;
    }
    if (expiresMs < this.until) this.until = expiresMs;
    return true;
  }

  domain(d: CompiledDomain, name: string): CompiledDomain | undefined {
    if (name === d.name) return d;
    const x = this.catalog.domains.get(name);
    this.deps.push([name, x]);
    return x;
  }

  addRole(role: string, until: number, path: readonly PathStep[] | undefined): void {
    const prev = this.roles.get(role);
    if (prev !== undefined && prev.until >= until) return;
    this.roles.set(role, held(until, path));
    this.queue.push(role);
  }

  memberEntry(ref: EntryRef): void {
    if (!this.valid(ref.expiresMs)) return;
    this.addRole(
      ref.target,
      ref.expiresMs,
      this.withPaths
        ? [{ via: 'member', role: ref.target, entry: ref.entry, ...expiresText(ref.expiresMs) }]
        : undefined,
    );
  }
}

function addGroup(into: Map<string, Held>, key: string, until: number, path: readonly PathStep[] | undefined): void {
  const prev = into.get(key);
  if (prev !== undefined && prev.until >= until) return;
  into.set(key, held(until, path));
}

function groupMemberEntry(r: Resolution, x: CompiledDomain, ref: EntryRef, into: Map<string, Held>): void {
  if (!r.valid(ref.expiresMs)) return;
  const full = groupFullName(x.name, ref.target);
  addGroup(
    into,
    full,
    ref.expiresMs,
    r.withPaths ? [{ via: 'group-member', group: full, entry: ref.entry, ...expiresText(ref.expiresMs) }] : undefined,
  );
}

/** The groups (of every domain `d` names groups of) the principal belongs to, with ancestors. */
function resolveGroups(
  r: Resolution,
  d: CompiledDomain,
  principal: string,
): { groups: Map<string, Held>; groupTree: Map<string, Held> } {
  const groups = new Map<string, Held>();
  for (const name of d.groupDomains) {
    const x = r.domain(d, name);
    if (x === undefined || !x.enabled) continue;
    const exact = x.groupMembers.get(principal);
    if (exact !== undefined) for (const ref of exact) groupMemberEntry(r, x, ref, groups);
    for (const p of x.groupMemberPatterns) if (p.glob.matches(principal)) groupMemberEntry(r, x, p.ref, groups);
  }
  const groupTree = new Map<string, Held>();
  for (const [full, h] of groups) {
    addGroup(groupTree, full, h.until, h.path);
    const colon = full.indexOf(':');
    const domain = full.slice(0, colon);
    const x = domain === d.name ? d : r.catalog.domains.get(domain);
    const ancestors = x?.groupAncestors.get(full.slice(colon + 7));
    if (ancestors === undefined) continue;
    let child = full;
    let path = h.path;
    for (const a of ancestors) {
      const af = groupFullName(domain, a);
      if (r.withPaths) path = [{ via: 'subgroup', group: af, subgroup: child }, ...(path ?? [])];
      addGroup(groupTree, af, h.until, path);
      child = af;
    }
  }
  return { groups, groupTree };
}

/** Groups of the given full names, with ancestors, for token mode (no membership lookup). */
export function groupViewFromNames(
  catalog: Catalog,
  names: readonly string[],
): { groups: ReadonlyMap<string, Held>; groupTree: ReadonlyMap<string, Held> } {
  if (names.length === 0) return { groups: EMPTY, groupTree: EMPTY };
  const groups = new Map<string, Held>();
  const groupTree = new Map<string, Held>();
  for (const raw of names) {
    const full = raw.toLowerCase();
    const colon = full.indexOf(':');
    if (colon <= 0 || !full.startsWith('group.', colon + 1)) continue;
    groups.set(full, FOREVER);
    groupTree.set(full, FOREVER);
    const domain = full.slice(0, colon);
    for (const a of catalog.domains.get(domain)?.groupAncestors.get(full.slice(colon + 7)) ?? []) {
      groupTree.set(groupFullName(domain, a), FOREVER);
    }
  }
  return { groups, groupTree };
}

function viaGroupEntries(r: Resolution, d: CompiledDomain, full: string, h: Held, subgroupsOnly: boolean): void {
  const entries = d.roleGroupEntries.get(full);
  if (entries === undefined) return;
  for (const ref of entries) {
    if (subgroupsOnly && !ref.includeSubgroups) continue;
    if (!r.valid(ref.expiresMs)) continue;
    r.addRole(
      ref.target,
      Math.min(ref.expiresMs, h.until),
      r.withPaths
        ? [{ via: 'group', role: ref.target, group: full, includeSubgroups: ref.includeSubgroups }, ...(h.path ?? [])]
        : undefined,
    );
  }
}

function closeOverRoleEntries(r: Resolution, d: CompiledDomain): void {
  while (r.queue.length > 0) {
    const member = r.queue.pop() as string;
    const entries = d.roleRoleEntries.get(member);
    if (entries === undefined) continue;
    const h = r.roles.get(member) as Held;
    for (const ref of entries) {
      if (!r.valid(ref.expiresMs)) continue;
      r.addRole(
        ref.target,
        Math.min(ref.expiresMs, h.until),
        r.withPaths ? [{ via: 'role', role: ref.target, member }, ...(h.path ?? [])] : undefined,
      );
    }
  }
}

/** Resolves rules 1–3 and, with `withTrust`, rule 4 into `r`. */
function resolveInto(r: Resolution, d: CompiledDomain, principal: string, withTrust: boolean): SubjectView {
  const exact = d.roleMembers.get(principal);
  if (exact !== undefined) for (const ref of exact) r.memberEntry(ref);
  for (const p of d.roleMemberPatterns) if (p.glob.matches(principal)) r.memberEntry(p.ref);
  let groups = EMPTY;
  let groupTree = EMPTY;
  if (d.groupDomains.length > 0) {
    const g = resolveGroups(r, d, principal);
    groups = g.groups;
    groupTree = g.groupTree;
    if (d.roleGroupEntries.size > 0) {
      for (const [full, h] of groups) viaGroupEntries(r, d, full, h, false);
      for (const [full, h] of groupTree) if (!groups.has(full)) viaGroupEntries(r, d, full, h, true);
    }
  }
  closeOverRoleEntries(r, d);
  if (withTrust && d.trustRoles.length > 0) {
    for (const { role, trust } of d.trustRoles) {
      const t = r.domain(d, trust);
      if (t === undefined || !t.enabled) continue;
      const granted = assumeRole(r, t, principal, roleFullName(d.name, role));
      if (granted !== undefined) {
        r.addRole(
          role,
          granted.until,
          r.withPaths && granted.path ? [{ ...granted.step, role, trust }, ...granted.path] : undefined,
        );
      }
    }
    closeOverRoleEntries(r, d);
  }
  return subjectView(principal, r.roles, groups, groupTree);
}

function depsCurrent(catalog: Catalog, deps: CachedSubject['deps']): boolean {
  for (const [name, x] of deps) if (catalog.domains.get(name) !== x) return false;
  return true;
}

/**
 * Roles the principal holds in domain `d` by rules 1–3 (member, group and role entries), and,
 * when `withTrust`, by rule 4 (delegation). `until` is the latest instant up to which each role
 * is held by some path (the minimum expiry along that path).
 */
export function resolveSubject(
  catalog: Catalog,
  d: CompiledDomain,
  principal: string,
  nowMs: number,
  withPaths: boolean,
  withTrust = true,
): SubjectView {
  if (!withTrust) return resolveInto(new Resolution(catalog, nowMs, withPaths), d, principal, false);
  const cache = withPaths ? d.subjectCache.paths : d.subjectCache.plain;
  const hit = cache.get(principal);
  if (hit !== undefined && hit.after < nowMs && nowMs <= hit.until && depsCurrent(catalog, hit.deps)) {
    return hit.view as SubjectView;
  }
  const r = new Resolution(catalog, nowMs, withPaths);
  const view = resolveInto(r, d, principal, true);
  if (cache.size >= SUBJECT_CACHE_LIMIT) cache.clear();
  cache.set(principal, { view, after: r.after, until: r.until, deps: r.deps });
  return view;
}

/**
 * Rule 4: may the principal assume `roleName` (a full role name of another domain) through the
 * policies of trusted domain `t`? Only allow assertions with a role subject grant; deny
 * assertions of any subject kind remove the role. Conditional allow assertions never grant here
 * (there is no request to evaluate them against) and conditional deny assertions always count.
 */
function assumeRole(
  outer: Resolution,
  t: CompiledDomain,
  principal: string,
  roleName: string,
):
  | {
      until: number;
      path: readonly PathStep[] | undefined;
      step: { via: 'trust'; policy: string; version?: string; index: number; heldRole: string };
    }
  | undefined {
  // P's roles in T by rules 1–3; what they depend on is what the outer answer depends on.
  const inner = new Resolution(outer.catalog, outer.nowMs, outer.withPaths);
  const view = resolveInto(inner, t, principal, false);
  outer.after = Math.max(outer.after, inner.after);
  outer.until = Math.min(outer.until, inner.until);
  outer.deps.push(...inner.deps);
  let denied = false;
  let best:
    { until: number; path: readonly PathStep[] | undefined; a: CompiledAssertion; heldRole: string } | undefined;
  forEachBucket(t, view, (bucket, heldRole, until, path) => {
    for (const a of bucket.assertions) {
      if (!a.action.matches('assume_role') || !a.resource.matches(roleName)) continue;
      if (!a.requires.every((r) => view.roles.has(r))) continue;
      if (a.effect === 'deny') {
        denied = true;
        return true;
      }
      // Only an allow naming a role of T delegates (rule 4: "whose role glob matches a role of
      // T that P holds"); denies of any subject kind remove the role.
      if (a.condition !== undefined || a.subjectKind !== 'role') continue;
      let u = until;
      for (const r of a.requires) u = Math.min(u, (view.roles.get(r) as Held).until);
      if (best === undefined || u > best.until) best = { until: u, path, a, heldRole };
    }
    return false;
  });
  if (denied || best === undefined) return undefined;
  const found = best as {
    until: number;
    path: readonly PathStep[] | undefined;
    a: CompiledAssertion;
    heldRole: string;
  };
  return {
    until: found.until,
    path: found.path,
    step: {
      via: 'trust',
      policy: found.a.policy,
      ...(found.a.version !== undefined ? { version: found.a.version } : {}),
      index: found.a.index,
      heldRole: found.heldRole,
    },
  };
}

/**
 * Calls `visit` with every subject bucket of `d` the view reaches: its roles, its principal
 * (exact and patterns), its groups and group trees. Stops when `visit` returns true.
 * `subject` names how the bucket was reached, for explanations.
 */
export function forEachBucket(
  d: CompiledDomain,
  view: SubjectView,
  visit: (bucket: SubjectBucket, subject: string, until: number, path: readonly PathStep[] | undefined) => boolean,
): boolean {
  for (const [role, h] of view.roles) {
    const b = d.byRole.get(role);
    if (b !== undefined && visit(b, roleFullName(d.name, role), h.until, h.path)) return true;
  }
  const forever = Number.POSITIVE_INFINITY;
  const p = d.byPrincipal.get(view.principal);
  if (p !== undefined && visit(p, view.principal, forever, undefined)) return true;
  if (view.principal !== '') {
    for (const pp of d.principalPatterns) {
      if (pp.glob.matches(view.principal) && visit(pp.bucket, pp.glob.source, forever, undefined)) return true;
    }
  }
  if (d.byGroup.size > 0) {
    for (const [full, h] of view.groups) {
      const b = d.byGroup.get(full);
      if (b !== undefined && visit(b, full, h.until, h.path)) return true;
    }
  }
  if (d.byGroupTree.size > 0) {
    for (const [full, h] of view.groupTree) {
      const b = d.byGroupTree.get(full);
      if (b !== undefined && visit(b, full, h.until, h.path)) return true;
    }
  }
  return false;
}
