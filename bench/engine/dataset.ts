/**
 * The benchmark's data: a random but deterministic policy set and query list, generated the same
 * way in every process from (size, seed). Engine-neutral: each adapter translates it into its
 * engine's own input.
 *
 * Shape: `tenants` domains `tenant0..`, each with its own roles (`tenantN:role.rK`), projects and
 * documents (`tenantN:projectM/docX`). An assertion gives one role one action (or `*`) on one
 * project glob (`tenantN:projectM/*`) or one document; ~5% are deny. Every user holds ~5 roles by
 * direct member entries, mostly in a home tenant.
 */

/** The actions assertions and queries use (`*` is added to assertions only). */
export const ACTIONS = ['read', 'write', 'delete', 'share', 'list', 'comment'] as const;

/** Share of deny assertions. */
export const DENY_SHARE = 0.05;
/** Share of assertions whose action is `*`. */
export const ANY_ACTION_SHARE = 0.05;
/** Share of assertions on a whole project (`tenantN:projectM/*`); the rest name one document. */
export const PROJECT_GLOB_SHARE = 0.7;
/** Roles each user holds. */
export const ROLES_PER_USER = 5;
/** At most this many assertions per policy (the engine allows 10,000). */
export const ASSERTIONS_PER_POLICY = 1000;

/** A seeded PRNG (mulberry32): uniform floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RoleRef {
  tenant: number;
  role: number;
}

export interface Assertion {
  tenant: number;
  effect: 'allow' | 'deny';
  role: number;
  /** One of ACTIONS, or `*`. */
  action: string;
  project: number;
  /** A document of the project, or null for the whole project (`tenantN:projectM/*`). */
  doc: number | null;
}

export interface User {
  name: string;
  home: number;
  roles: RoleRef[];
}

/** Why a query was generated (the answer is whatever the engines say). */
export type QueryKind = 'allow-target' | 'deny-target' | 'random';

export interface Query {
  user: number;
  action: string;
  tenant: number;
  project: number;
  doc: number;
  kind: QueryKind;
}

export interface Dataset {
  size: number;
  seed: number;
  tenants: number;
  rolesPerTenant: number;
  projectsPerTenant: number;
  docsPerProject: number;
  users: User[];
  /** Grouped by tenant, in generation order. */
  assertions: Assertion[];
  queries: Query[];
}

// ---- names ---------------------------------------------------------------------------------

export const tenantName = (t: number): string => `tenant${t}`;
export const roleShort = (r: number): string => `r${r}`;
export const roleFull = (t: number, r: number): string => `${tenantName(t)}:role.${roleShort(r)}`;
export const projectName = (t: number, p: number): string => `${tenantName(t)}:project${p}`;
export const docName = (t: number, p: number, d: number): string => `${projectName(t, p)}/doc${d}`;
/** `tenantN:projectM/*` or `tenantN:projectM/docX`. */
export const assertionResource = (a: Assertion): string =>
  a.doc === null ? `${projectName(a.tenant, a.project)}/*` : docName(a.tenant, a.project, a.doc);
export const queryResource = (q: Query): string => docName(q.tenant, q.project, q.doc);

// ---- generation ----------------------------------------------------------------------------

/** The dimensions used for a given number of assertions. */
export function dimensions(size: number): {
  tenants: number;
  rolesPerTenant: number;
  projectsPerTenant: number;
  docsPerProject: number;
  users: number;
} {
  const tenants = Math.max(1, Math.ceil(size / 5000));
  const perTenant = Math.ceil(size / tenants);
  return {
    tenants,
    rolesPerTenant: Math.max(10, Math.ceil(perTenant / 50)),
    projectsPerTenant: Math.max(5, Math.ceil(perTenant / 100)),
    docsPerProject: 20,
    users: Math.max(20, Math.ceil(size / 20)),
  };
}

/** Builds the dataset for `size` assertions and `queryCount` queries. Deterministic. */
export function generate(size: number, seed: number, queryCount: number): Dataset {
  const dim = dimensions(size);
  const rnd = prng((seed * 2654435761) ^ size);
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)] as T;

  // Assertions, spread evenly over tenants; no two identical (casbin rejects duplicates).
  const assertions: Assertion[] = [];
  const seen = new Set<string>();
  for (let t = 0; t < dim.tenants; t++) {
    const count = Math.floor(size / dim.tenants) + (t < size % dim.tenants ? 1 : 0);
    for (let k = 0; k < count;) {
      const a: Assertion = {
        tenant: t,
        effect: rnd() < DENY_SHARE ? 'deny' : 'allow',
        role: int(dim.rolesPerTenant),
        action: rnd() < ANY_ACTION_SHARE ? '*' : pick(ACTIONS),
        project: int(dim.projectsPerTenant),
        doc: rnd() < PROJECT_GLOB_SHARE ? null : int(dim.docsPerProject),
      };
      const key = `${a.tenant}|${a.effect}|${a.role}|${a.action}|${a.project}|${a.doc ?? '*'}`;
      if (seen.has(key)) continue;
      seen.add(key);
      assertions.push(a);
      k++;
    }
  }

  // Users: ROLES_PER_USER distinct roles, one of them in another tenant when there is one.
  const users: User[] = [];
  for (let u = 0; u < dim.users; u++) {
    const home = int(dim.tenants);
    const roles: RoleRef[] = [];
    const has = new Set<string>();
    while (roles.length < ROLES_PER_USER) {
      const away = dim.tenants > 1 && roles.length === ROLES_PER_USER - 1;
      const tenant = away ? (home + 1 + int(dim.tenants - 1)) % dim.tenants : home;
      const role = int(dim.rolesPerTenant);
      const key = `${tenant}|${role}`;
      if (has.has(key)) continue;
      has.add(key);
      roles.push({ tenant, role });
    }
    users.push({ name: `user.u${u}`, home, roles });
  }

  // Queries: some aimed at an allow or a deny assertion the user reaches, the rest random (mostly
  // in the user's home tenant), so the answers mix allow, deny and no match.
  const byRole = new Map<string, { allow: Assertion[]; deny: Assertion[] }>();
  for (const a of assertions) {
    const key = `${a.tenant}|${a.role}`;
    let e = byRole.get(key);
    if (!e) byRole.set(key, (e = { allow: [], deny: [] }));
    e[a.effect].push(a);
  }
  const queries: Query[] = [];
  for (let i = 0; i < queryCount; i++) {
    const userIndex = int(users.length);
    const user = users[userIndex] as User;
    const r = rnd();
    let target: Assertion | undefined;
    let kind: QueryKind = 'random';
    if (r < 0.6) {
      const effect = r < 0.45 ? 'allow' : 'deny';
      const candidates = user.roles
        .map((ref) => byRole.get(`${ref.tenant}|${ref.role}`)?.[effect] ?? [])
        .filter((l) => l.length > 0);
      if (candidates.length > 0) {
        target = pick(pick(candidates));
        kind = effect === 'allow' ? 'allow-target' : 'deny-target';
      }
    }
    if (target) {
      queries.push({
        user: userIndex,
        action: target.action === '*' ? pick(ACTIONS) : target.action,
        tenant: target.tenant,
        project: target.project,
        doc: target.doc ?? int(dim.docsPerProject),
        kind,
      });
    } else {
      queries.push({
        user: userIndex,
        action: pick(ACTIONS),
        tenant: rnd() < 0.8 ? user.home : int(dim.tenants),
        project: int(dim.projectsPerTenant),
        doc: int(dim.docsPerProject),
        kind,
      });
    }
  }

  return {
    size,
    seed,
    tenants: dim.tenants,
    rolesPerTenant: dim.rolesPerTenant,
    projectsPerTenant: dim.projectsPerTenant,
    docsPerProject: dim.docsPerProject,
    users,
    assertions,
    queries,
  };
}

/** A short digest of a dataset, so the parent can check every child built the same one. */
export function fingerprint(ds: Dataset): string {
  let h = 0x811c9dc5;
  const mix = (s: string): void => {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  };
  for (const a of ds.assertions) mix(`${a.effect}${a.action}${a.role}${assertionResource(a)};`);
  for (const u of ds.users) mix(`${u.name}${u.roles.map((r) => roleFull(r.tenant, r.role)).join(',')};`);
  for (const q of ds.queries) mix(`${q.user}${q.action}${queryResource(q)};`);
  return h.toString(16).padStart(8, '0');
}
