/**
 * Who holds a role (semantics.md "Who holds a role"): member entries, group entries (with
 * subgroups), role entries, and delegation through a trusted domain — resolved for one
 * principal in one domain at one instant, with the path by which each role is held when asked.
 */

import type { Catalog } from './catalog.js';
import type { CompiledAssertion, CompiledDomain, EntryRef, SubjectBucket } from './compile-domain.js';
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
  until: number;
  path: readonly PathStep[] | undefined;
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
}

const EMPTY: ReadonlyMap<string, Held> = new Map();

function expiresText(ms: number): { expires?: string } {
  return ms === Number.POSITIVE_INFINITY ? {} : { expires: new Date(ms).toISOString() };
}

function addHeld(into: Map<string, Held>, key: string, until: number, path: readonly PathStep[] | undefined): boolean {
  const prev = into.get(key);
  if (prev !== undefined && prev.until >= until) return false;
  into.set(key, { until, path });
  return true;
}

/** Adds the groups of domain `x` that the principal is a direct valid member of. */
function collectDirectGroups(
  x: CompiledDomain,
  principal: string,
  nowMs: number,
  withPaths: boolean,
  direct: Map<string, Held>,
): void {
  const visit = (ref: EntryRef): void => {
    if (ref.expiresMs < nowMs) return;
    const full = groupFullName(x.name, ref.target);
    addHeld(
      direct,
      full,
      ref.expiresMs,
      withPaths ? [{ via: 'group-member', group: full, entry: ref.entry, ...expiresText(ref.expiresMs) }] : undefined,
    );
  };
  const exact = x.groupMembers.get(principal);
  if (exact) for (const ref of exact) visit(ref);
  for (const p of x.groupMemberPatterns) if (p.glob.matches(principal)) visit(p.ref);
}

function groupsOf(
  catalog: Catalog,
  d: CompiledDomain,
  principal: string,
  nowMs: number,
  withPaths: boolean,
): { groups: Map<string, Held>; groupTree: Map<string, Held> } | undefined {
  if (d.groupDomains.length === 0) return undefined;
  const groups = new Map<string, Held>();
  for (const name of d.groupDomains) {
    const x = name === d.name ? d : catalog.domains.get(name);
    if (x === undefined || !x.enabled) continue;
    collectDirectGroups(x, principal, nowMs, withPaths, groups);
  }
  const groupTree = new Map<string, Held>();
  for (const [full, held] of groups) {
    addHeld(groupTree, full, held.until, held.path);
    const colon = full.indexOf(':');
    const domain = full.slice(0, colon);
    const short = full.slice(colon + 7);
    const x = domain === d.name ? d : catalog.domains.get(domain);
    const ancestors = x?.groupAncestors.get(short) ?? [];
    let child = full;
    let path = held.path;
    for (const a of ancestors) {
      const af = groupFullName(domain, a);
      if (withPaths) path = [{ via: 'subgroup', group: af, subgroup: child }, ...(path ?? [])];
      addHeld(groupTree, af, held.until, path);
      child = af;
    }
  }
  return { groups, groupTree };
}

/** Groups of the given full names, with ancestors, for token mode (no membership lookup). */
export function groupViewFromNames(
  catalog: Catalog,
  names: readonly string[],
): { groups: Map<string, Held>; groupTree: Map<string, Held> } {
  const groups = new Map<string, Held>();
  const groupTree = new Map<string, Held>();
  const forever = { until: Number.POSITIVE_INFINITY, path: undefined };
  for (const raw of names) {
    const full = raw.toLowerCase();
    const colon = full.indexOf(':');
    if (colon <= 0 || !full.startsWith('group.', colon + 1)) continue;
    groups.set(full, forever);
    groupTree.set(full, forever);
    const domain = full.slice(0, colon);
    for (const a of catalog.domains.get(domain)?.groupAncestors.get(full.slice(colon + 7)) ?? []) {
      groupTree.set(groupFullName(domain, a), forever);
    }
  }
  return { groups, groupTree };
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
  const roles = new Map<string, Held>();
  const queue: string[] = [];
  const add = (role: string, until: number, path: readonly PathStep[] | undefined): void => {
    if (addHeld(roles, role, until, path)) queue.push(role);
  };
  const exact = d.roleMembers.get(principal);
  if (exact) {
    for (const ref of exact) {
      if (ref.expiresMs < nowMs) continue;
      add(
        ref.target,
        ref.expiresMs,
        withPaths ? [{ via: 'member', role: ref.target, entry: ref.entry, ...expiresText(ref.expiresMs) }] : undefined,
      );
    }
  }
  for (const p of d.roleMemberPatterns) {
    const ref = p.ref;
    if (ref.expiresMs < nowMs || !p.glob.matches(principal)) continue;
    add(
      ref.target,
      ref.expiresMs,
      withPaths ? [{ via: 'member', role: ref.target, entry: ref.entry, ...expiresText(ref.expiresMs) }] : undefined,
    );
  }
  const g = groupsOf(catalog, d, principal, nowMs, withPaths);
  if (g && d.roleGroupEntries.size > 0) {
    const viaGroup = (full: string, held: Held, subgroupsOnly: boolean): void => {
      const entries = d.roleGroupEntries.get(full);
      if (!entries) return;
      for (const ref of entries) {
        if (ref.expiresMs < nowMs || (subgroupsOnly && !ref.includeSubgroups)) continue;
        add(
          ref.target,
          Math.min(ref.expiresMs, held.until),
          withPaths
            ? [
                { via: 'group', role: ref.target, group: full, includeSubgroups: ref.includeSubgroups },
                ...(held.path ?? []),
              ]
            : undefined,
        );
      }
    };
    for (const [full, held] of g.groups) viaGroup(full, held, false);
    for (const [full, held] of g.groupTree) if (!g.groups.has(full)) viaGroup(full, held, true);
  }
  const closeOverRoleEntries = (): void => {
    while (queue.length > 0) {
      const member = queue.pop() as string;
      const entries = d.roleRoleEntries.get(member);
      if (!entries) continue;
      const held = roles.get(member) as Held;
      for (const ref of entries) {
        if (ref.expiresMs < nowMs) continue;
        add(
          ref.target,
          Math.min(ref.expiresMs, held.until),
          withPaths ? [{ via: 'role', role: ref.target, member }, ...(held.path ?? [])] : undefined,
        );
      }
    }
  };
  closeOverRoleEntries();
  if (withTrust && d.trustRoles.length > 0) {
    for (const { role, trust } of d.trustRoles) {
      const t = catalog.domains.get(trust);
      if (t === undefined || !t.enabled) continue;
      const granted = assumeRole(catalog, t, principal, roleFullName(d.name, role), nowMs, withPaths);
      if (granted) {
        add(
          role,
          granted.until,
          withPaths && granted.path ? [{ ...granted.step, role, trust }, ...granted.path] : undefined,
        );
      }
    }
    closeOverRoleEntries();
  }
  return {
    principal,
    roles,
    groups: g?.groups ?? EMPTY,
    groupTree: g?.groupTree ?? EMPTY,
  };
}

/**
 * Rule 4: may the principal assume `roleName` (a full role name of another domain) through the
 * policies of trusted domain `t`? Conditional allow assertions never grant here (there is no
 * request to evaluate them against) and conditional deny assertions always count.
 */
function assumeRole(
  catalog: Catalog,
  t: CompiledDomain,
  principal: string,
  roleName: string,
  nowMs: number,
  withPaths: boolean,
):
  | {
      until: number;
      path: readonly PathStep[] | undefined;
      step: { via: 'trust'; policy: string; version?: string; index: number; heldRole: string };
    }
  | undefined {
  const view = resolveSubject(catalog, t, principal, nowMs, withPaths, false);
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
      if (a.condition !== undefined) continue;
      let u = until;
      for (const r of a.requires) u = Math.min(u, (view.roles.get(r) as Held).until);
      if (!best || u > best.until) best = { until: u, path, a, heldRole };
    }
    return false;
  });
  if (denied || !best) return undefined;
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
  for (const [role, held] of view.roles) {
    const b = d.byRole.get(role);
    if (b && visit(b, roleFullName(d.name, role), held.until, held.path)) return true;
  }
  const forever = Number.POSITIVE_INFINITY;
  const p = d.byPrincipal.get(view.principal);
  if (p && visit(p, view.principal, forever, undefined)) return true;
  if (view.principal !== '') {
    for (const pp of d.principalPatterns) {
      if (pp.glob.matches(view.principal) && visit(pp.bucket, pp.glob.source, forever, undefined)) return true;
    }
  }
  if (d.byGroup.size > 0) {
    for (const [full, held] of view.groups) {
      const b = d.byGroup.get(full);
      if (b && visit(b, full, held.until, held.path)) return true;
    }
  }
  if (d.byGroupTree.size > 0) {
    for (const [full, held] of view.groupTree) {
      const b = d.byGroupTree.get(full);
      if (b && visit(b, full, held.until, held.path)) return true;
    }
  }
  return false;
}
