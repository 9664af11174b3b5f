/**
 * A domain's content in one normalised form — names lower-cased, member entries sorted and
 * stripped of defaults, instants in ISO form — so that what a config file asks for and what
 * the store holds can be compared field by field (apply's plan) and written back (export).
 */

import {
  ADMIN_POLICY,
  ADMIN_ROLE,
  type AssertionModel,
  type DomainConfig,
  type GroupModel,
  type MemberEntry,
  type PolicyModel,
  type ResourceModel,
  type RoleModel,
} from '@gatehouse/engine';
import { loadDomainModel, type Queryable } from '../storage/load-domain-model.js';

/** A role as compared: description, trust, members. */
export interface RoleState {
  description: string | null;
  trust: string | null;
  members: MemberEntry[];
}

/** A group as compared. */
export interface GroupState {
  description: string | null;
  parent: string | null;
  members: MemberEntry[];
}

/** One policy version as compared. */
export interface PolicyState {
  name: string;
  version: string | null;
  active: boolean;
  description: string | null;
  assertions: AssertionModel[];
}

/** A service as compared; `secret` (desired side only) is checked against the stored hash. */
export interface ServiceState {
  description: string | null;
  publicKeys: Record<string, unknown>[];
  secret?: string | undefined;
}

/** An API as compared. */
export interface ApiState {
  audience: string;
  scopes: string[];
  permissionsClaim: boolean;
}

/** An OAuth client as compared; `secret` (desired side only) is checked against the stored hash. */
export interface ClientState {
  name: string | null;
  type: 'public' | 'confidential';
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  grantTypes: string[];
  firstParty: boolean;
  secret?: string | undefined;
}

/** A domain's content as compared. */
export interface DomainState {
  name: string;
  description: string | null;
  enabled: boolean;
  attributes: Record<string, unknown>;
  admins: MemberEntry[];
  roles: Map<string, RoleState>;
  groups: Map<string, GroupState>;
  /** By `name` + NUL + `version` ('' when unversioned). */
  policies: Map<string, PolicyState>;
  /** By `type/id`. */
  resources: Map<string, ResourceModel>;
  services: Map<string, ServiceState>;
  apis: Map<string, ApiState>;
  /** By client id (as given: client ids are case-sensitive). */
  clients: Map<string, ClientState>;
}

/** The key of a policy version in DomainState.policies. */
export function policyKey(name: string, version: string | null | undefined): string {
  return `${name}\u0000${version ?? ''}`;
}

function instant(text: string): string {
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? text : new Date(ms).toISOString();
}

/** Normalises member entries: lower-case names, ISO instants, defaults dropped, sorted by name. */
export function normalizeMembers(list: readonly (MemberEntry | string)[] | undefined): MemberEntry[] {
  return (list ?? [])
    .map((m) => {
      const e = typeof m === 'string' ? { name: m } : m;
      const out: MemberEntry = { name: e.name.toLowerCase() };
      if (e.expires) out.expires = instant(e.expires);
      if (e.disabled) out.disabled = true;
      if (e.state === 'pending') out.state = 'pending';
      if (e.includeSubgroups) out.includeSubgroups = true;
      return out;
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Normalises an assertion: lower-case names, absent fields dropped, fixed key order. */
export function normalizeAssertion(a: AssertionModel): AssertionModel {
  const out: AssertionModel = { effect: a.effect, action: a.action.toLowerCase(), resource: a.resource.toLowerCase() };
  if (a.role !== undefined && a.role !== null) out.role = a.role.toLowerCase();
  if (a.group !== undefined && a.group !== null) out.group = a.group.toLowerCase();
  if (a.principal !== undefined && a.principal !== null) out.principal = a.principal.toLowerCase();
  if (a.includeSubgroups) out.includeSubgroups = true;
  if (a.requires && a.requires.length > 0) out.requires = a.requires.map((r) => r.toLowerCase());
  if (a.condition !== undefined && a.condition !== null && a.condition !== '') out.condition = a.condition;
  return out;
}

function fromModelParts(
  name: string,
  description: string | null,
  enabled: boolean,
  attributes: Record<string, unknown>,
  roles: readonly RoleModel[],
  groups: readonly GroupModel[],
  policies: readonly PolicyModel[],
  resources: readonly ResourceModel[],
  admins: readonly MemberEntry[],
): DomainState {
  const state: DomainState = {
    name: name.toLowerCase(),
    description,
    enabled,
    attributes,
    admins: normalizeMembers(admins),
    roles: new Map(),
    groups: new Map(),
    policies: new Map(),
    resources: new Map(),
    services: new Map(),
    apis: new Map(),
    clients: new Map(),
  };
  for (const r of roles) {
    const n = r.name.toLowerCase();
    if (n === ADMIN_ROLE) continue;
    state.roles.set(n, {
      description: r.description ?? null,
      trust: r.trust ? r.trust.toLowerCase() : null,
      members: normalizeMembers(r.members),
    });
  }
  for (const g of groups) {
    state.groups.set(g.name.toLowerCase(), {
      description: g.description ?? null,
      parent: g.parent ? g.parent.toLowerCase() : null,
      members: normalizeMembers(g.members),
    });
  }
  for (const p of policies) {
    const n = p.name.toLowerCase();
    if (n === ADMIN_POLICY) continue;
    const version = p.version === undefined || p.version === null || p.version === '' ? null : String(p.version);
    state.policies.set(policyKey(n, version), {
      name: n,
      version,
      active: p.active !== false,
      description: p.description ?? null,
      assertions: p.assertions.map(normalizeAssertion),
    });
  }
  for (const r of resources) {
    const type = r.type.toLowerCase();
    const id = r.id.toLowerCase();
    state.resources.set(`${type}/${id}`, { type, id, properties: r.properties ?? {} });
  }
  return state;
}

/** The state a config file's domain asks for. */
export function desiredDomainState(d: DomainConfig): DomainState {
  const state = fromModelParts(
    d.name,
    d.description ?? null,
    d.enabled,
    d.attributes ?? {},
    d.roles,
    d.groups,
    d.policies,
    d.resources,
    d.admins,
  );
  for (const sv of d.services) {
    state.services.set(sv.name.toLowerCase(), {
      description: sv.description ?? null,
      publicKeys: sv.publicKeys ?? [],
      ...(sv.secret !== undefined ? { secret: sv.secret } : {}),
    });
  }
  for (const a of d.apis) {
    state.apis.set(a.name.toLowerCase(), {
      audience: a.audience,
      scopes: a.scopes.map((x) => x.toLowerCase()),
      permissionsClaim: a.permissionsClaim === true,
    });
  }
  for (const c of d.clients) {
    state.clients.set(c.clientId, {
      name: c.name ?? null,
      type: c.type,
      redirectUris: c.redirectUris,
      postLogoutRedirectUris: c.postLogoutRedirectUris,
      grantTypes: c.grantTypes.length > 0 ? c.grantTypes : ['authorization_code'],
      firstParty: c.firstParty,
      ...(c.secret !== undefined ? { secret: c.secret } : {}),
    });
  }
  return state;
}

/** The state the store holds for a domain; undefined when it does not exist. */
export async function readDomainState(db: Queryable, name: string): Promise<DomainState | undefined> {
  const model = await loadDomainModel(db, name.toLowerCase());
  if (model === undefined) return undefined;
  const admin = (model.roles ?? []).find((r) => r.name === ADMIN_ROLE);
  const state = fromModelParts(
    model.name,
    model.description ?? null,
    model.enabled !== false,
    model.attributes ?? {},
    model.roles ?? [],
    model.groups ?? [],
    model.policies ?? [],
    model.resources ?? [],
    admin?.members ?? [],
  );
  const d = state.name;
  for (const r of await db
    .selectFrom('services')
    .select(['name', 'description', 'public_keys'])
    .where('domain', '=', d)
    .execute()) {
    state.services.set(r.name, {
      description: r.description,
      publicKeys: JSON.parse(r.public_keys) as Record<string, unknown>[],
    });
  }
  for (const r of await db
    .selectFrom('apis')
    .select(['name', 'audience', 'scopes', 'permissions_claim'])
    .where('domain', '=', d)
    .execute()) {
    state.apis.set(r.name, {
      audience: r.audience,
      scopes: JSON.parse(r.scopes) as string[],
      permissionsClaim: r.permissions_claim === 1,
    });
  }
  for (const r of await db.selectFrom('clients').selectAll().where('domain', '=', d).execute()) {
    state.clients.set(r.client_id, {
      name: r.name,
      type: r.type,
      redirectUris: JSON.parse(r.redirect_uris) as string[],
      postLogoutRedirectUris: JSON.parse(r.post_logout_redirect_uris) as string[],
      grantTypes: JSON.parse(r.grant_types) as string[],
      firstParty: r.first_party === 1,
    });
  }
  return state;
}
