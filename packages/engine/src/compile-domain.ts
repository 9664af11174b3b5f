/**
 * compileDomain: validates one domain and builds its immutable decision index (semantics.md).
 *
 * The index answers "which assertions could match" by subject (role, group, principal), then
 * effect, then action (exact map plus a list of glob actions), then resource (literal prefix
 * of the glob, looked up by the prefix lengths present), so a decision never scans all of a
 * domain's assertions. Membership indexes answer "which roles and groups does P hold" by exact
 * principal, wildcard patterns, group entries, and role entries (in reverse).
 */

import { compileCondition, isConditionProblem, type CompiledCondition, type ConditionPosition } from './condition.js';
import { compileGlob, hasGlobChars, type Glob } from './glob.js';
import type { AssertionModel, DomainModel, Effect, MemberEntry, ResourceModel } from './model.js';
import {
  NAME_LIMITS,
  groupFullName,
  memberKind,
  parseQualifiedName,
  truncate,
  validateDomainName,
  validatePrincipalPattern,
  validateShortName,
  NameError,
} from './names.js';

/** Limits on a domain's content, checked when it is compiled. */
export const MODEL_LIMITS = {
  rolesPerDomain: 100_000,
  groupsPerDomain: 100_000,
  policiesPerDomain: 100_000,
  assertionsPerPolicy: 10_000,
  membersPerRole: 1_000_000,
  requiresPerAssertion: 16,
  resourcesPerDomain: 1_000_000,
} as const;

/** A problem in a model, with the path of the offending field. */
export interface ModelIssue {
  path: string;
  code: string;
  message: string;
  /** For conditions: where in the expression. */
  position?: ConditionPosition | undefined;
}

/** Thrown by compileDomain when the model is invalid; carries every issue found. */
export class ModelError extends Error {
  readonly issues: readonly ModelIssue[];
  constructor(issues: readonly ModelIssue[]) {
    const first = issues[0];
    super(
      first
        ? `${first.path}: ${first.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`
        : 'invalid model',
    );
    this.name = 'ModelError';
    this.issues = issues;
  }
}

/** One assertion, compiled. */
export interface CompiledAssertion {
  readonly domain: string;
  readonly policy: string;
  readonly version: string | undefined;
  readonly index: number;
  readonly effect: Effect;
  readonly action: Glob;
  readonly resource: Glob;
  readonly subjectKind: 'role' | 'group' | 'principal';
  /** Role glob (short), group full name, or principal pattern. */
  readonly subject: string;
  readonly includeSubgroups: boolean;
  readonly requires: readonly string[];
  readonly condition: CompiledCondition | undefined;
  readonly source: AssertionModel;
}

/**
 * Assertions by the literal prefix of their resource glob, as a prefix id of the domain
 * (CompiledDomain.prefixIds): a decision finds the ids of the prefixes its resource starts with
 * once, then looks them up in each bucket by number.
 */
export type PrefixIndex = ReadonlyMap<number, readonly CompiledAssertion[]>;

/** Everything one subject key (a role, a group, a principal or pattern) can reach. */
export interface SubjectBucket {
  /** Assertions (both effects) with a literal action, by action then prefix id. */
  readonly exact: ReadonlyMap<string, PrefixIndex>;
  /** Assertions whose action is a glob, by prefix id; their action is matched one by one. */
  readonly glob: PrefixIndex | undefined;
  readonly assertions: readonly CompiledAssertion[];
}

/** A member entry as the membership index keeps it. */
export interface EntryRef {
  /** The role or group (short name) the entry belongs to. */
  readonly target: string;
  /** The entry as written (`user.bob`, `user.*`, `library:group.staff`). */
  readonly entry: string;
  /** Epoch ms; Infinity when the entry never expires. Valid while expiresMs >= now. */
  readonly expiresMs: number;
  readonly includeSubgroups: boolean;
}

/** The compiled, immutable form of one domain. */
export interface CompiledDomain {
  readonly name: string;
  readonly revision: number;
  readonly enabled: boolean;
  /** For domains compiled from a bundle: epoch ms from which the bundle is expired. */
  readonly expiresAtMs: number | undefined;
  readonly model: DomainModel;
  /** Roles by short name, with their trust domain (null when not delegated). */
  readonly roles: ReadonlyMap<string, { readonly trust: string | null }>;
  readonly groups: ReadonlyMap<string, { readonly parent: string | null }>;
  /** For each group (short), its ancestors from parent to root. */
  readonly groupAncestors: ReadonlyMap<string, readonly string[]>;
  readonly assertions: readonly CompiledAssertion[];
  /** Every literal prefix of the assertions' resource globs, numbered. */
  readonly prefixIds: ReadonlyMap<string, number>;
  /** The distinct lengths of those prefixes, ascending. */
  readonly prefixLengths: readonly number[];
  /** The prefixes by their prefixHash, to find them without slicing the resource. */
  readonly prefixesByHash: ReadonlyMap<number, readonly (readonly [string, number])[]>;
  readonly actions: readonly string[];
  readonly byRole: ReadonlyMap<string, SubjectBucket>;
  readonly byPrincipal: ReadonlyMap<string, SubjectBucket>;
  readonly principalPatterns: readonly { readonly glob: Glob; readonly bucket: SubjectBucket }[];
  readonly byGroup: ReadonlyMap<string, SubjectBucket>;
  readonly byGroupTree: ReadonlyMap<string, SubjectBucket>;
  /** Role member entries naming principals, by exact principal. */
  readonly roleMembers: ReadonlyMap<string, readonly EntryRef[]>;
  readonly roleMemberPatterns: readonly { readonly glob: Glob; readonly ref: EntryRef }[];
  /** Role entries naming groups, by group full name. */
  readonly roleGroupEntries: ReadonlyMap<string, readonly EntryRef[]>;
  /** Role entries naming roles: member role (short) → entries of the roles that include it. */
  readonly roleRoleEntries: ReadonlyMap<string, readonly EntryRef[]>;
  readonly trustRoles: readonly { readonly role: string; readonly trust: string }[];
  readonly groupMembers: ReadonlyMap<string, readonly EntryRef[]>;
  readonly groupMemberPatterns: readonly { readonly glob: Glob; readonly ref: EntryRef }[];
  /** Domains whose groups this domain's roles and assertions name. */
  readonly groupDomains: readonly string[];
  /** Registered resources by `type/id`. */
  readonly resources: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
  /** Cross-domain references to check against the other domains. */
  readonly references: readonly DomainReference[];
  /**
   * Memo of resolved subjects (membership.ts). Not part of the value: it only saves work, and
   * each entry says for which instants and which versions of other domains it holds.
   */
  readonly subjectCache: SubjectCache;
}

/** A resolved subject, remembered with the conditions under which it still holds. */
export interface CachedSubject {
  readonly view: unknown;
  /** Valid for instants t with after < t <= until. */
  readonly after: number;
  readonly until: number;
  /** The other domains consulted, as they were: the entry holds while each is unchanged. */
  readonly deps: readonly (readonly [string, CompiledDomain | undefined])[];
}

/** Per-domain memo of resolved subjects, plain and with paths. */
export interface SubjectCache {
  readonly plain: Map<string, CachedSubject>;
  readonly paths: Map<string, CachedSubject>;
}

/** A reference from this domain into another one, checked by validateDomains. */
export interface DomainReference {
  path: string;
  kind: 'group' | 'domain';
  domain: string;
  name?: string;
}

/** Options of compileDomain. */
export interface CompileOptions {
  /** Overrides the model's revision. */
  revision?: number;
  /** For bundles: the instant from which decisions answer DENY_DOMAIN_EXPIRED. */
  expiresAtMs?: number;
}

const NO_ROLES: string[] = [];

/**
 * FNV-1a over the first `length` UTF-16 units, kept to 30 bits so that it is a small integer
 * (no heap number) as a map key: the hash a decision computes incrementally.
 */
export function prefixHash(text: string, length: number): number {
  let h = PREFIX_HASH_SEED;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h & 0x3fffffff;
}

/** The FNV-1a offset basis. */
export const PREFIX_HASH_SEED = 0x811c9dc5 | 0;
// Globs match any text, but white space and control characters are never meant.
// eslint-disable-next-line no-control-regex
const BAD_GLOB_CHARS = /[\s\u0000-\u001f\u007f]/;
const ROLE_GLOB_LABEL = /^[a-z0-9_*?][a-z0-9_*?-]*$/;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses an RFC 3339 instant to epoch ms; undefined when malformed. */
export function parseInstant(text: string): number | undefined {
  if (!RFC3339.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

class MutableBucket {
  readonly list: CompiledAssertion[] = [];
  add(a: CompiledAssertion): void {
    this.list.push(a);
  }
  freeze(prefixIds: ReadonlyMap<string, number>): SubjectBucket {
    const exact = new Map<string, Map<number, CompiledAssertion[]>>();
    let glob: Map<number, CompiledAssertion[]> | undefined;
    // Denies first: a decision that meets one stops there.
    const ordered = [...this.list.filter((a) => a.effect === 'deny'), ...this.list.filter((a) => a.effect === 'allow')];
    for (const a of ordered) {
      let byPrefix: Map<number, CompiledAssertion[]>;
      if (a.action.shape === 'exact') {
        let m = exact.get(a.action.source);
        if (m === undefined) {
          m = new Map();
          exact.set(a.action.source, m);
        }
        byPrefix = m;
      } else byPrefix = glob ??= new Map();
      const id = prefixIds.get(a.resource.prefix) as number;
      const arr = byPrefix.get(id);
      if (arr) arr.push(a);
      else byPrefix.set(id, [a]);
    }
    return { exact, glob, assertions: ordered };
  }
}

function freezeMap(m: Map<string, MutableBucket>, prefixIds: ReadonlyMap<string, number>): Map<string, SubjectBucket> {
  const out = new Map<string, SubjectBucket>();
  for (const [k, v] of m) out.set(k, v.freeze(prefixIds));
  return out;
}

function bucketOf(m: Map<string, MutableBucket>, key: string): MutableBucket {
  let b = m.get(key);
  if (!b) {
    b = new MutableBucket();
    m.set(key, b);
  }
  return b;
}

function lower(text: unknown): string {
  return typeof text === 'string' ? text.toLowerCase() : '';
}

/**
 * Validates one domain on its own (names, references inside it, cycles, globs, conditions) and
 * compiles it. Cross-domain references (groups of other domains, trust domains, parents) are
 * listed in `references` for validateDomains to check. Throws ModelError with every issue.
 */
export function compileDomain(model: DomainModel, options: CompileOptions = {}): CompiledDomain {
  const { compiled, issues } = compileDomainCollecting(model, options);
  if (issues.length > 0) throw new ModelError(issues);
  return compiled;
}

/** Like compileDomain, but returns the issues instead of throwing (the index is then partial). */
export function compileDomainCollecting(
  model: DomainModel,
  options: CompileOptions = {},
): { compiled: CompiledDomain; issues: ModelIssue[] } {
  const issues: ModelIssue[] = [];
  const issue = (path: string, code: string, message: string, position?: ConditionPosition): void => {
    issues.push(position ? { path, code, message, position } : { path, code, message });
  };
  const references: DomainReference[] = [];
  const domain = lower(model.name);
  const dp = validateDomainName(domain);
  if (dp) issue('name', dp.code, dp.message);

  // ---- roles -------------------------------------------------------------------------------
  const roles = new Map<string, { trust: string | null }>();
  const rolesIn = model.roles ?? [];
  if (rolesIn.length > MODEL_LIMITS.rolesPerDomain) {
    issue('roles', 'limit.roles', `at most ${MODEL_LIMITS.rolesPerDomain} roles per domain`);
  }
  rolesIn.forEach((r, i) => {
    const name = lower(r.name);
    const np = validateShortName('role', name);
    if (np) issue(`roles[${i}].name`, np.code, np.message);
    else if (roles.has(name)) issue(`roles[${i}].name`, 'role.duplicate', `role "${name}" is defined twice`);
    let trust: string | null = null;
    if (r.trust !== undefined && r.trust !== null) {
      trust = lower(r.trust);
      const tp = validateDomainName(trust);
      if (tp) issue(`roles[${i}].trust`, tp.code, tp.message);
      else if (trust === domain)
        issue(`roles[${i}].trust`, 'role.trust_self', `role "${name}" cannot trust its own domain`);
      else references.push({ path: `roles[${i}].trust`, kind: 'domain', domain: trust });
      if ((r.members ?? []).length > 0) {
        issue(
          `roles[${i}].members`,
          'role.delegated_members',
          `delegated role "${name}" (trust ${trust}) cannot have members`,
        );
      }
    }
    if (!np && !roles.has(name)) roles.set(name, { trust });
  });

  // ---- groups ------------------------------------------------------------------------------
  const groups = new Map<string, { parent: string | null }>();
  const groupsIn = model.groups ?? [];
  if (groupsIn.length > MODEL_LIMITS.groupsPerDomain) {
    issue('groups', 'limit.groups', `at most ${MODEL_LIMITS.groupsPerDomain} groups per domain`);
  }
  groupsIn.forEach((g, i) => {
    const name = lower(g.name);
    const np = validateShortName('group', name);
    if (np) issue(`groups[${i}].name`, np.code, np.message);
    else if (groups.has(name)) issue(`groups[${i}].name`, 'group.duplicate', `group "${name}" is defined twice`);
    else groups.set(name, { parent: g.parent ? lower(g.parent) : null });
  });
  groupsIn.forEach((g, i) => {
    if (!g.parent) return;
    const parent = lower(g.parent);
    if (!groups.has(parent)) {
      issue(`groups[${i}].parent`, 'group.not_found', `parent group "${parent}" is not a group of domain ${domain}`);
    }
  });
  const groupAncestors = new Map<string, string[]>();
  for (const [name] of groups) {
    const chain: string[] = [];
    const seen = new Set([name]);
    let cur = groups.get(name)?.parent ?? null;
    while (cur !== null && groups.has(cur)) {
      if (seen.has(cur)) {
        const idx = groupsIn.findIndex((g) => lower(g.name) === name);
        issue(`groups[${idx}].parent`, 'group.cycle', `group "${name}" is its own ancestor`);
        break;
      }
      seen.add(cur);
      chain.push(cur);
      cur = groups.get(cur)?.parent ?? null;
    }
    groupAncestors.set(name, chain);
  }

  // ---- member entries ----------------------------------------------------------------------
  const roleMembers = new Map<string, EntryRef[]>();
  const roleMemberPatterns: { glob: Glob; ref: EntryRef }[] = [];
  const roleGroupEntries = new Map<string, EntryRef[]>();
  const roleRoleEntries = new Map<string, EntryRef[]>();
  const roleEdges = new Map<string, string[]>();
  const groupMembers = new Map<string, EntryRef[]>();
  const groupMemberPatterns: { glob: Glob; ref: EntryRef }[] = [];
  const groupDomains = new Set<string>();
  const push = <T>(m: Map<string, T[]>, k: string, v: T): void => {
    const arr = m.get(k);
    if (arr) arr.push(v);
    else m.set(k, [v]);
  };

  const readEntry = (
    e: MemberEntry | string,
    path: string,
    owner: 'role' | 'group',
    target: string,
  ): { name: string; ref: EntryRef } | undefined => {
    const entry: MemberEntry = typeof e === 'string' ? { name: e } : e;
    const name = lower(entry.name);
    let expiresMs = Number.POSITIVE_INFINITY;
    if (entry.expires !== undefined && entry.expires !== null) {
      const ms = typeof entry.expires === 'string' ? parseInstant(entry.expires) : undefined;
      if (ms === undefined) {
        issue(
          `${path}.expires`,
          'member.invalid_expires',
          `expires "${String(entry.expires)}" is not an RFC 3339 instant`,
        );
        return undefined;
      }
      expiresMs = ms;
    }
    if (entry.state !== undefined && entry.state !== 'approved' && entry.state !== 'pending') {
      issue(`${path}.state`, 'member.invalid_state', `state must be approved or pending`);
      return undefined;
    }
    const kind = memberKind(name);
    if (entry.includeSubgroups && kind !== 'group') {
      issue(`${path}.includeSubgroups`, 'member.invalid', `includeSubgroups applies to group entries only`);
    }
    if (kind === 'principal') {
      const pp = validatePrincipalPattern(name);
      if (pp) {
        issue(`${path}.name`, pp.code, pp.message);
        return undefined;
      }
    } else {
      if (owner === 'group' && kind === 'role') {
        issue(
          `${path}.name`,
          'member.invalid',
          `a group's members are principals; "${name}" is a role (nest groups with parent)`,
        );
        return undefined;
      }
      if (owner === 'group' && kind === 'group') {
        issue(
          `${path}.name`,
          'member.invalid',
          `a group's members are principals; nest groups with parent instead of "${name}"`,
        );
        return undefined;
      }
      try {
        const q = parseQualifiedName(kind, name);
        if (kind === 'role') {
          if (q.domain !== domain) {
            issue(
              `${path}.name`,
              'member.foreign_role',
              `role entries must name roles of the same domain (${domain}), not "${name}"`,
            );
            return undefined;
          }
          if (!roles.has(q.name)) {
            issue(`${path}.name`, 'role.not_found', `role "${q.name}" is not a role of domain ${domain}`);
            return undefined;
          }
        } else if (q.domain === domain) {
          if (!groups.has(q.name)) {
            issue(`${path}.name`, 'group.not_found', `group "${q.name}" is not a group of domain ${domain}`);
            return undefined;
          }
        } else {
          references.push({ path: `${path}.name`, kind: 'group', domain: q.domain, name: q.name });
        }
        const normalized = kind === 'role' ? `${q.domain}:role.${q.name}` : groupFullName(q.domain, q.name);
        if (kind === 'group') groupDomains.add(q.domain);
        if (entry.disabled || entry.state === 'pending') return undefined;
        return {
          name: normalized,
          ref: { target, entry: normalized, expiresMs, includeSubgroups: entry.includeSubgroups === true },
        };
      } catch (err) {
        if (err instanceof NameError) {
          issue(`${path}.name`, err.code, err.message);
          return undefined;
        }
        throw err;
      }
    }
    // Disabled entries and pending requests are kept in the model but never count.
    if (entry.disabled || entry.state === 'pending') return undefined;
    return { name, ref: { target, entry: name, expiresMs, includeSubgroups: false } };
  };

  rolesIn.forEach((r, i) => {
    const target = lower(r.name);
    const members = r.members ?? [];
    if (members.length > MODEL_LIMITS.membersPerRole) {
      issue(`roles[${i}].members`, 'limit.members', `at most ${MODEL_LIMITS.membersPerRole} members per role`);
    }
    members.forEach((m, j) => {
      const read = readEntry(m, `roles[${i}].members[${j}]`, 'role', target);
      if (!read) return;
      const kind = memberKind(read.name);
      if (kind === 'principal') {
        if (hasGlobChars(read.name)) roleMemberPatterns.push({ glob: compileGlob(read.name), ref: read.ref });
        else push(roleMembers, read.name, read.ref);
      } else if (kind === 'group') push(roleGroupEntries, read.name, read.ref);
      else {
        const member = read.name.slice(read.name.indexOf(':role.') + 6);
        push(roleRoleEntries, member, read.ref);
        push(roleEdges, target, member);
      }
    });
  });
  // Role entries may chain but never loop (semantics.md rule 3).
  {
    const state = new Map<string, 1 | 2>();
    const reported = new Set<string>();
    const visit = (role: string, stack: string[]): void => {
      state.set(role, 1);
      for (const next of roleEdges.get(role) ?? []) {
        const s = state.get(next);
        if (s === 1) {
          const cycle = [...stack.slice(stack.indexOf(next)), next];
          const key = [...cycle].sort().join(',');
          if (!reported.has(key)) {
            reported.add(key);
            const idx = rolesIn.findIndex((r) => lower(r.name) === role);
            issue(`roles[${idx}].members`, 'role.cycle', `role entries form a cycle: ${cycle.join(' → ')}`);
          }
        } else if (s === undefined) visit(next, [...stack, next]);
      }
      state.set(role, 2);
    };
    for (const role of roleEdges.keys()) if (!state.has(role)) visit(role, [role]);
  }

  groupsIn.forEach((g, i) => {
    const target = lower(g.name);
    (g.members ?? []).forEach((m, j) => {
      const read = readEntry(m, `groups[${i}].members[${j}]`, 'group', target);
      if (!read) return;
      if (hasGlobChars(read.name)) groupMemberPatterns.push({ glob: compileGlob(read.name), ref: read.ref });
      else push(groupMembers, read.name, read.ref);
    });
  });

  // ---- policies ----------------------------------------------------------------------------
  const assertions: CompiledAssertion[] = [];
  const byRole = new Map<string, MutableBucket>();
  const byPrincipal = new Map<string, MutableBucket>();
  const principalPatternBuckets = new Map<string, MutableBucket>();
  const byGroup = new Map<string, MutableBucket>();
  const byGroupTree = new Map<string, MutableBucket>();
  const actions = new Set<string>();
  const policyVersions = new Set<string>();
  const activeByName = new Map<string, number>();
  const policiesIn = model.policies ?? [];
  if (policiesIn.length > MODEL_LIMITS.policiesPerDomain) {
    issue('policies', 'limit.policies', `at most ${MODEL_LIMITS.policiesPerDomain} policies per domain`);
  }
  const conditionCache = new Map<string, CompiledCondition>();
  // Many assertions share their action and resource globs: compile each once.
  const globCache = new Map<string, Glob>();
  const globOf = (text: string): Glob => {
    let g = globCache.get(text);
    if (g === undefined) {
      g = compileGlob(text);
      globCache.set(text, g);
    }
    return g;
  };
  policiesIn.forEach((p, i) => {
    const name = lower(p.name);
    const np = validateShortName('policy', name);
    if (np) issue(`policies[${i}].name`, np.code, np.message);
    const version = p.version === undefined || p.version === null ? undefined : String(p.version);
    if (version !== undefined && (version.length === 0 || version.length > 64)) {
      issue(`policies[${i}].version`, 'policy.invalid_version', 'version must be 1 to 64 characters');
    }
    const key = `${name}\u0000${version ?? ''}`;
    if (policyVersions.has(key)) {
      issue(
        `policies[${i}]`,
        'policy.duplicate',
        `policy "${name}"${version ? ` version "${version}"` : ''} is defined twice`,
      );
    }
    policyVersions.add(key);
    const active = p.active !== false;
    if (active) {
      const prev = activeByName.get(name);
      if (prev !== undefined) {
        issue(`policies[${i}].active`, 'policy.several_active', `policy "${name}" has more than one active version`);
      }
      activeByName.set(name, i);
    }
    const list = Array.isArray(p.assertions) ? p.assertions : [];
    if (!Array.isArray(p.assertions)) issue(`policies[${i}].assertions`, 'policy.invalid', 'assertions must be a list');
    if (list.length > MODEL_LIMITS.assertionsPerPolicy) {
      issue(
        `policies[${i}].assertions`,
        'limit.assertions',
        `policy "${name}" has ${list.length} assertions; at most ${MODEL_LIMITS.assertionsPerPolicy} are allowed`,
      );
      return;
    }
    list.forEach((a, j) => {
      const path = `policies[${i}].assertions[${j}]`;
      const before = issues.length;
      const effect = a.effect;
      if (effect !== 'allow' && effect !== 'deny')
        issue(`${path}.effect`, 'assertion.invalid_effect', 'effect must be allow or deny');
      const action = lower(a.action);
      if (action.length === 0) issue(`${path}.action`, 'assertion.invalid_action', 'action is empty');
      else if (action.length > NAME_LIMITS.action) {
        issue(`${path}.action`, 'assertion.invalid_action', `action is longer than ${NAME_LIMITS.action} characters`);
      } else if (BAD_GLOB_CHARS.test(action)) {
        issue(
          `${path}.action`,
          'assertion.invalid_action',
          `action glob "${truncate(action)}" contains white space or a control character`,
        );
      }
      const resource = lower(a.resource);
      if (resource.length === 0 || resource.indexOf(':') <= 0) {
        issue(
          `${path}.resource`,
          'assertion.invalid_resource',
          `resource "${truncate(resource)}" must be <domain>:<entity>`,
        );
      } else if (resource.length > NAME_LIMITS.resource) {
        issue(
          `${path}.resource`,
          'assertion.invalid_resource',
          `resource is longer than ${NAME_LIMITS.resource} characters`,
        );
      } else if (BAD_GLOB_CHARS.test(resource)) {
        issue(
          `${path}.resource`,
          'assertion.invalid_resource',
          `resource glob "${truncate(resource)}" contains white space or a control character`,
        );
      }
      const subjectCount =
        (a.role === undefined || a.role === null ? 0 : 1) +
        (a.group === undefined || a.group === null ? 0 : 1) +
        (a.principal === undefined || a.principal === null ? 0 : 1);
      if (subjectCount !== 1) {
        issue(path, 'assertion.subject', 'an assertion names exactly one of role, group, principal');
      }
      let subjectKind: CompiledAssertion['subjectKind'] = 'principal';
      let subject = '';
      if (a.role !== undefined && a.role !== null) {
        subjectKind = 'role';
        subject = lower(a.role);
        const roleBefore = issues.length;
        const colon = subject.indexOf(':');
        if (colon >= 0) {
          const d = subject.slice(0, colon);
          const rest = subject.slice(colon + 1);
          if (d !== domain) {
            issue(
              `${path}.role`,
              'assertion.foreign_role',
              `an assertion may only name roles of its own domain (${domain}), not "${subject}"`,
            );
          } else if (!rest.startsWith('role.')) {
            issue(`${path}.role`, 'role.invalid', `"${subject}" is not a role name`);
          }
          subject = rest.startsWith('role.') ? rest.slice(5) : rest;
        }
        if (issues.length > roleBefore) {
          // Already reported: a foreign or malformed role name.
        } else if (roles.has(subject)) {
          // A defined role: its name was validated with the role.
        } else if (!hasGlobChars(subject)) {
          const np2 = validateShortName('role', subject);
          if (np2) issue(`${path}.role`, np2.code, np2.message);
          else if (!roles.has(subject))
            issue(`${path}.role`, 'role.not_found', `role "${subject}" is not a role of domain ${domain}`);
        } else if (subject.length > NAME_LIMITS.shortName) {
          issue(`${path}.role`, 'role.too_long', `role glob is longer than ${NAME_LIMITS.shortName} characters`);
        } else if (!subject.split('.').every((label) => ROLE_GLOB_LABEL.test(label))) {
          issue(
            `${path}.role`,
            'role.invalid',
            `role glob "${truncate(subject)}" may hold only [a-z0-9_-], dots, * and ?`,
          );
        }
      } else if (a.group !== undefined && a.group !== null) {
        subjectKind = 'group';
        try {
          const q = parseQualifiedName('group', String(a.group), domain);
          subject = groupFullName(q.domain, q.name);
          groupDomains.add(q.domain);
          if (q.domain === domain) {
            if (!groups.has(q.name))
              issue(`${path}.group`, 'group.not_found', `group "${q.name}" is not a group of domain ${domain}`);
          } else references.push({ path: `${path}.group`, kind: 'group', domain: q.domain, name: q.name });
        } catch (err) {
          if (!(err instanceof NameError)) throw err;
          issue(`${path}.group`, err.code, err.message);
        }
      } else if (a.principal !== undefined && a.principal !== null) {
        subject = lower(a.principal);
        const pp = validatePrincipalPattern(subject);
        if (pp) issue(`${path}.principal`, pp.code, pp.message);
      }
      if (a.includeSubgroups && subjectKind !== 'group') {
        issue(`${path}.includeSubgroups`, 'assertion.invalid', 'includeSubgroups applies to group subjects only');
      }
      let requires: string[] = NO_ROLES;
      const req = a.requires ?? [];
      if (!Array.isArray(req)) issue(`${path}.requires`, 'assertion.invalid', 'requires must be a list of roles');
      else if (req.length > MODEL_LIMITS.requiresPerAssertion) {
        issue(`${path}.requires`, 'limit.requires', `at most ${MODEL_LIMITS.requiresPerAssertion} required roles`);
      } else {
        req.forEach((rq, k) => {
          try {
            const q = parseQualifiedName('role', String(rq), domain);
            if (q.domain !== domain) {
              issue(`${path}.requires[${k}]`, 'assertion.foreign_role', `requires may only name roles of ${domain}`);
            } else if (!roles.has(q.name)) {
              issue(`${path}.requires[${k}]`, 'role.not_found', `role "${q.name}" is not a role of domain ${domain}`);
            } else if (requires === NO_ROLES) requires = [q.name];
            else requires.push(q.name);
          } catch (err) {
            if (!(err instanceof NameError)) throw err;
            issue(`${path}.requires[${k}]`, err.code, err.message);
          }
        });
      }
      let condition: CompiledCondition | undefined;
      if (a.condition !== undefined && a.condition !== null && String(a.condition).trim() !== '') {
        const src = String(a.condition);
        const cached = conditionCache.get(src);
        if (cached) condition = cached;
        else {
          const c = compileCondition(src);
          if (isConditionProblem(c)) {
            const where = c.position ? ` at line ${c.position.line}, column ${c.position.column}` : '';
            issue(`${path}.condition`, 'policy.invalid_condition', `${c.message}${where}`, c.position);
          } else {
            conditionCache.set(src, c);
            condition = c;
          }
        }
      }
      if (issues.length > before || !active) return;
      const compiled: CompiledAssertion = {
        domain,
        policy: name,
        version,
        index: j,
        effect,
        action: globOf(action),
        resource: globOf(resource),
        subjectKind,
        subject,
        includeSubgroups: a.includeSubgroups === true,
        requires,
        condition,
        source: a,
      };
      assertions.push(compiled);
      if (!hasGlobChars(action)) actions.add(action);
      if (subjectKind === 'role') {
        if (hasGlobChars(subject)) {
          const g = compileGlob(subject);
          for (const r of roles.keys()) if (g.matches(r)) bucketOf(byRole, r).add(compiled);
        } else bucketOf(byRole, subject).add(compiled);
      } else if (subjectKind === 'group') {
        bucketOf(compiled.includeSubgroups ? byGroupTree : byGroup, subject).add(compiled);
      } else if (hasGlobChars(subject)) bucketOf(principalPatternBuckets, subject).add(compiled);
      else bucketOf(byPrincipal, subject).add(compiled);
    });
  });

  // ---- resources ---------------------------------------------------------------------------
  const resources = new Map<string, Record<string, unknown>>();
  const resourcesIn: ResourceModel[] = model.resources ?? [];
  resourcesIn.forEach((r, i) => {
    const type = lower(r.type);
    const id = lower(r.id);
    if (type.length === 0 || id.length === 0 || type.includes('/') || type.includes(':')) {
      issue(`resources[${i}]`, 'resource.invalid', 'a resource needs a type (without / or :) and an id');
      return;
    }
    const key = `${type}/${id}`;
    if (resources.has(key)) issue(`resources[${i}]`, 'resource.duplicate', `resource ${key} is registered twice`);
    resources.set(key, { ...(r.properties ?? {}) });
  });

  const prefixIds = new Map<string, number>();
  for (const a of assertions) if (!prefixIds.has(a.resource.prefix)) prefixIds.set(a.resource.prefix, prefixIds.size);
  const prefixLengths = [...new Set([...prefixIds.keys()].map((k) => k.length))].sort((x, y) => x - y);
  const prefixesByHash = new Map<number, [string, number][]>();
  for (const [prefix, id] of prefixIds) {
    const h = prefixHash(prefix, prefix.length);
    const arr = prefixesByHash.get(h);
    if (arr) arr.push([prefix, id]);
    else prefixesByHash.set(h, [[prefix, id]]);
  }
  const patternList = [...principalPatternBuckets].map(([p, b]) => ({
    glob: compileGlob(p),
    bucket: b.freeze(prefixIds),
  }));
  const compiled: CompiledDomain = {
    name: domain,
    revision: options.revision ?? model.revision ?? 0,
    enabled: model.enabled !== false,
    expiresAtMs: options.expiresAtMs,
    model,
    roles,
    groups,
    groupAncestors,
    assertions,
    prefixIds,
    prefixLengths,
    prefixesByHash,
    actions: [...actions].sort(),
    byRole: freezeMap(byRole, prefixIds),
    byPrincipal: freezeMap(byPrincipal, prefixIds),
    principalPatterns: patternList,
    byGroup: freezeMap(byGroup, prefixIds),
    byGroupTree: freezeMap(byGroupTree, prefixIds),
    roleMembers,
    roleMemberPatterns,
    roleGroupEntries,
    roleRoleEntries,
    trustRoles: [...roles].filter(([, r]) => r.trust !== null).map(([role, r]) => ({ role, trust: r.trust as string })),
    groupMembers,
    groupMemberPatterns,
    groupDomains: [...groupDomains].sort(),
    resources,
    references,
    subjectCache: { plain: new Map(), paths: new Map() },
  };
  return { compiled, issues };
}
