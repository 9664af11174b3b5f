/**
 * The plan of `gatehouse apply`: what must be created, changed and deleted to make each domain
 * the file names match the file exactly (config-format.md "apply reconciles"), computed by
 * comparing normalised states, and printed like terraform's plan before anything happens.
 */

import { canonicalJson } from '../storage/canonical-json.js';
import { policyKey, type DomainState, type RoleState } from './domain-state.js';

/** The kinds of object a plan changes. */
export type ChangeKind =
  'domain' | 'admins' | 'role' | 'group' | 'policy' | 'resource' | 'service' | 'api' | 'client' | 'user';

/** One step of a plan. */
export interface PlannedChange {
  action: 'create' | 'update' | 'delete';
  kind: ChangeKind;
  /** The domain the object is in (the domain itself for kind 'domain'; null for users). */
  domain: string | null;
  /** The object's name (`readers`, `books@2`, `book/42`, `alice`). */
  name: string;
  /** For updates: which fields change, for people (`members: +user.dave −user.eve`). */
  details: string[];
}

/** A whole plan; `changes` in the order they will be made. */
export interface ApplyPlan {
  changes: PlannedChange[];
}

const same = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);

function memberDiff(before: RoleState['members'], after: RoleState['members']): string | undefined {
  const key = (m: unknown): string => canonicalJson(m);
  const b = new Set(before.map(key));
  const a = new Set(after.map(key));
  const added = after.filter((m) => !b.has(key(m))).map((m) => `+${m.name}`);
  const removed = before.filter((m) => !a.has(key(m))).map((m) => `-${m.name}`);
  return added.length + removed.length === 0 ? undefined : `members: ${[...added, ...removed].join(' ')}`;
}

function fieldDiffs<T extends object>(before: T, after: T, fields: (keyof T)[]): string[] {
  const out: string[] = [];
  for (const f of fields) {
    if (f === 'members') {
      const d = memberDiff(before[f] as RoleState['members'], after[f] as RoleState['members']);
      if (d) out.push(d);
    } else if (!same(before[f], after[f]))
      out.push(`${String(f)}: ${canonicalJson(before[f] ?? null)} → ${canonicalJson(after[f] ?? null)}`);
  }
  return out;
}

function diffMap<T extends object>(
  kind: ChangeKind,
  domain: string,
  before: Map<string, T>,
  after: Map<string, T>,
  fields: (keyof T)[],
  label: (key: string) => string,
  out: { creates: PlannedChange[]; updates: PlannedChange[]; deletes: PlannedChange[] },
): void {
  for (const [key, a] of after) {
    const b = before.get(key);
    if (b === undefined) out.creates.push({ action: 'create', kind, domain, name: label(key), details: [] });
    else {
      const details = fieldDiffs(b, a, fields);
      if (details.length > 0) out.updates.push({ action: 'update', kind, domain, name: label(key), details });
    }
  }
  for (const key of before.keys()) {
    if (!after.has(key)) out.deletes.push({ action: 'delete', kind, domain, name: label(key), details: [] });
  }
}

const policyLabel = (key: string): string => {
  const [name, version] = key.split('\u0000') as [string, string];
  return version === '' ? name : `${name}@${version}`;
};

/**
 * The changes that make `current` (undefined: the domain does not exist yet) equal `desired`.
 * Creates and updates come first, deletions last, so that references are removed before the
 * objects they point at.
 */
export function planDomain(
  current: DomainState | undefined,
  desired: DomainState,
): { upserts: PlannedChange[]; deletes: PlannedChange[] } {
  const d = desired.name;
  const creates: PlannedChange[] = [];
  const updates: PlannedChange[] = [];
  const deletes: PlannedChange[] = [];
  if (current === undefined) {
    creates.push({ action: 'create', kind: 'domain', domain: d, name: d, details: [] });
  } else {
    const details = fieldDiffs(current, desired, ['description', 'enabled', 'attributes']);
    if (details.length > 0) updates.push({ action: 'update', kind: 'domain', domain: d, name: d, details });
    const admins = memberDiff(current.admins, desired.admins);
    if (admins) updates.push({ action: 'update', kind: 'admins', domain: d, name: 'admin', details: [admins] });
  }
  const cur: DomainState =
    current ??
    ({
      ...desired,
      roles: new Map(),
      groups: new Map(),
      policies: new Map(),
      resources: new Map(),
      services: new Map(),
      apis: new Map(),
      clients: new Map(),
    } satisfies DomainState);
  const out = { creates, updates, deletes };
  diffMap('role', d, cur.roles, desired.roles, ['description', 'trust', 'members'], (k) => k, out);
  diffMap('group', d, cur.groups, desired.groups, ['description', 'parent', 'members'], (k) => k, out);
  diffMap('policy', d, cur.policies, desired.policies, ['active', 'description', 'assertions'], policyLabel, out);
  diffMap('resource', d, cur.resources, desired.resources, ['properties'], (k) => k, out);
  diffMap('service', d, cur.services, desired.services, ['description', 'publicKeys'], (k) => k, out);
  diffMap('api', d, cur.apis, desired.apis, ['audience', 'scopes', 'permissionsClaim'], (k) => k, out);
  diffMap(
    'client',
    d,
    cur.clients,
    desired.clients,
    ['name', 'type', 'redirectUris', 'postLogoutRedirectUris', 'grantTypes', 'firstParty'],
    (k) => k,
    out,
  );
  return { upserts: [...creates, ...updates], deletes };
}

/** Counts a plan's creates, updates and deletes. */
export function countPlan(plan: ApplyPlan): { create: number; update: number; delete: number } {
  const n = { create: 0, update: 0, delete: 0 };
  for (const c of plan.changes) n[c.action]++;
  return n;
}

/** Prints a plan like terraform: `+` create, `~` change (with what), `-` delete; or "no changes". */
export function formatPlan(plan: ApplyPlan): string {
  if (plan.changes.length === 0) return 'No changes. The store already matches the file.';
  const sign = { create: '+', update: '~', delete: '-' } as const;
  const lines: string[] = [];
  for (const c of plan.changes) {
    const where = c.kind === 'domain' || c.kind === 'user' || c.domain === null ? '' : `${c.domain}:`;
    const what = c.kind === 'domain' || c.kind === 'user' ? `${c.kind} ${c.name}` : `${c.kind} ${where}${c.name}`;
    lines.push(`  ${sign[c.action]} ${what}`);
    for (const d of c.details) lines.push(`      ${d}`);
  }
  const n = countPlan(plan);
  lines.push('', `Plan: ${n.create} to create, ${n.update} to change, ${n.delete} to delete.`);
  return lines.join('\n');
}

/** The key of a policy change's object, for executing it. */
export function policyOf(change: PlannedChange): { name: string; version: string | null } {
  const at = change.name.indexOf('@');
  return at < 0
    ? { name: change.name, version: null }
    : { name: change.name.slice(0, at), version: change.name.slice(at + 1) };
}

export { policyKey };
