/**
 * The model: domains, roles, groups, policies and assertions as they are stored and exchanged
 * (semantics.md; config-format.md is the file form of the same thing). Names are lower-case;
 * short names inside a domain (`readers`), full names across domains (`library:group.staff`).
 */

import { ADMIN_POLICY, ADMIN_ROLE } from './names.js';

/** Approval state of a member entry; pending requests never count. */
export type MemberState = 'approved' | 'pending';

/**
 * One entry of a role or group: a principal pattern (`user.bob`, `user.*`, `*`), a group
 * (`library:group.staff`) or, in roles only, another role of the same domain (`library:role.x`).
 */
export interface MemberEntry {
  name: string;
  /** RFC 3339 instant; the entry holds while `expires >= now`. */
  expires?: string | undefined;
  disabled?: boolean | undefined;
  state?: MemberState | undefined;
  /** For group entries of a role: members of descendant groups count too. */
  includeSubgroups?: boolean | undefined;
}

/** A role of a domain. A delegated role has `trust` (a domain name) and no members. */
export interface RoleModel {
  name: string;
  description?: string | undefined;
  members?: MemberEntry[] | undefined;
  trust?: string | null | undefined;
}

/** A group of a domain, optionally a subgroup of another group of the same domain. */
export interface GroupModel {
  name: string;
  description?: string | undefined;
  parent?: string | null | undefined;
  members?: MemberEntry[] | undefined;
}

/** allow or deny. */
export type Effect = 'allow' | 'deny';

/**
 * One rule of a policy. Exactly one subject: `role` (a glob over the domain's own roles),
 * `group` (a group, short or full name) or `principal` (a member pattern).
 */
export interface AssertionModel {
  effect: Effect;
  action: string;
  resource: string;
  role?: string | undefined;
  group?: string | undefined;
  principal?: string | undefined;
  includeSubgroups?: boolean | undefined;
  /** Roles of the same domain the principal must also hold. */
  requires?: string[] | undefined;
  /** A CEL expression that must be true for the assertion to match. */
  condition?: string | undefined;
}

/** One version of a policy. Several versions of one name may exist; at most one is active. */
export interface PolicyModel {
  name: string;
  version?: string | undefined;
  /** Defaults to true. */
  active?: boolean | undefined;
  description?: string | undefined;
  assertions: AssertionModel[];
}

/** A registered resource with stored properties (visible to conditions as resource.properties). */
export interface ResourceModel {
  type: string;
  id: string;
  properties?: Record<string, unknown> | undefined;
}

/** A domain with everything inside it. */
export interface DomainModel {
  name: string;
  description?: string | undefined;
  /** Defaults to true; a disabled domain answers every decision with domain.disabled. */
  enabled?: boolean | undefined;
  attributes?: Record<string, unknown> | undefined;
  roles?: RoleModel[] | undefined;
  groups?: GroupModel[] | undefined;
  policies?: PolicyModel[] | undefined;
  resources?: ResourceModel[] | undefined;
  /** Increases with every change inside the domain. */
  revision?: number | undefined;
}

/** A principal's stored attributes (users: `attributes` + `email` + `displayName`). */
export interface PrincipalModel {
  name: string;
  email?: string | undefined;
  displayName?: string | undefined;
  attributes?: Record<string, unknown> | undefined;
}

/** The built-in assertion of every domain: allow `*` on `D:*` to role admin. */
export function adminAssertion(domain: string): AssertionModel {
  return { effect: 'allow', action: '*', resource: `${domain}:*`, role: ADMIN_ROLE };
}

/**
 * Adds the built-in `admin` role (with `admins` as its members when it does not exist yet) and
 * the built-in `admin` policy to a domain, replacing any stored admin policy by the built-in one.
 * Both go last, so the indexes of the other roles and policies stay as they were. Returns a new
 * model; the input is not changed.
 */
export function withBuiltins(domain: DomainModel, admins: MemberEntry[] = []): DomainModel {
  const roles = [...(domain.roles ?? [])];
  if (!roles.some((r) => r.name === ADMIN_ROLE)) roles.push({ name: ADMIN_ROLE, members: admins });
  const policies = (domain.policies ?? []).filter((p) => p.name !== ADMIN_POLICY);
  policies.push({ name: ADMIN_POLICY, assertions: [adminAssertion(domain.name)] });
  return { ...domain, roles, policies };
}
