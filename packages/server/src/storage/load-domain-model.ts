/**
 * Reads a domain and everything inside it as the engine's DomainModel (members included), from
 * the database or from inside a transaction — the form the engine validates and compiles.
 */

import type { AssertionModel, DomainModel, MemberEntry, PrincipalModel } from '@gatehouse/engine';
import type { Kysely, Transaction } from 'kysely';
import type { Database, MembersTable } from './schema.js';

/** A database handle or an open transaction. */
export type Queryable = Kysely<Database> | Transaction<Database>;

/** A member row as the engine's MemberEntry (absent fields left out). */
export function memberEntryOf(
  row: Pick<MembersTable, 'member' | 'expires' | 'disabled' | 'state' | 'include_subgroups'>,
): MemberEntry {
  const e: MemberEntry = { name: row.member };
  if (row.expires !== null) e.expires = row.expires;
  if (row.disabled) e.disabled = true;
  if (row.state === 'pending') e.state = 'pending';
  if (row.include_subgroups) e.includeSubgroups = true;
  return e;
}

/** Loads one domain; undefined when it does not exist. */
export async function loadDomainModel(db: Queryable, name: string): Promise<DomainModel | undefined> {
  const d = await db.selectFrom('domains').selectAll().where('name', '=', name).executeTakeFirst();
  if (d === undefined) return undefined;
  const [roles, groups, members, policies, resources] = await Promise.all([
    db.selectFrom('roles').selectAll().where('domain', '=', name).orderBy('name').execute(),
    db.selectFrom('groups').selectAll().where('domain', '=', name).orderBy('name').execute(),
    db.selectFrom('members').selectAll().where('domain', '=', name).orderBy('owner_name').orderBy('member').execute(),
    db.selectFrom('policies').selectAll().where('domain', '=', name).orderBy('name').orderBy('version').execute(),
    db.selectFrom('resources').selectAll().where('domain', '=', name).orderBy('type').orderBy('id').execute(),
  ]);
  const membersOf = (kind: 'role' | 'group', owner: string): MemberEntry[] =>
    members.filter((m) => m.owner_kind === kind && m.owner_name === owner).map(memberEntryOf);
  const model: DomainModel = {
    name: d.name,
    enabled: d.enabled === 1,
    attributes: JSON.parse(d.attributes) as Record<string, unknown>,
    revision: d.revision,
    roles: roles.map((r) => ({
      name: r.name,
      ...(r.description !== null ? { description: r.description } : {}),
      ...(r.trust !== null ? { trust: r.trust } : { members: membersOf('role', r.name) }),
    })),
    groups: groups.map((g) => ({
      name: g.name,
      ...(g.description !== null ? { description: g.description } : {}),
      ...(g.parent !== null ? { parent: g.parent } : {}),
      members: membersOf('group', g.name),
    })),
    policies: policies.map((p) => ({
      name: p.name,
      ...(p.version !== '' ? { version: p.version } : {}),
      active: p.active === 1,
      ...(p.description !== null ? { description: p.description } : {}),
      assertions: JSON.parse(p.assertions) as AssertionModel[],
    })),
    resources: resources.map((r) => ({
      type: r.type,
      id: r.id,
      properties: JSON.parse(r.properties) as Record<string, unknown>,
    })),
  };
  if (d.description !== null) model.description = d.description;
  return model;
}

/** Loads every domain, ordered by name. */
export async function loadAllDomainModels(db: Queryable): Promise<DomainModel[]> {
  const names = await db.selectFrom('domains').select('name').orderBy('name').execute();
  const out: DomainModel[] = [];
  for (const { name } of names) {
    const m = await loadDomainModel(db, name);
    if (m) out.push(m);
  }
  return out;
}

/** Every user as a principal with its stored attributes. */
export async function loadPrincipals(db: Queryable): Promise<PrincipalModel[]> {
  const users = await db
    .selectFrom('users')
    .select(['name', 'email', 'display_name', 'attributes'])
    .orderBy('name')
    .execute();
  return users.map((u) => ({
    name: `user.${u.name}`,
    ...(u.email !== null ? { email: u.email } : {}),
    ...(u.display_name !== null ? { displayName: u.display_name } : {}),
    attributes: JSON.parse(u.attributes) as Record<string, unknown>,
  }));
}
