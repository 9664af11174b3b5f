/**
 * `gatehouse export`: the store's domains in the config file format, such that applying the
 * output changes nothing (export → apply round-trips exactly). Secrets and passwords never
 * appear; defaults are left out; lists are sorted so that exports diff cleanly.
 */

import type { MemberEntry } from '@gatehouse/engine';
import { stringify } from 'yaml';
import type { Queryable } from '../storage/load-domain-model.js';
import { readDomainState, type DomainState } from './domain-state.js';

/** A member entry in the file's shortest form: the bare name when nothing else is set. */
function memberOut(m: MemberEntry): string | MemberEntry {
  return Object.keys(m).length === 1 ? m.name : m;
}

/** One domain in the config file format. */
export function domainStateToConfig(state: DomainState): Record<string, unknown> {
  const out: Record<string, unknown> = { name: state.name };
  if (state.description !== null) out.description = state.description;
  if (state.admins.length > 0) out.admins = state.admins.map(memberOut);
  if (Object.keys(state.attributes).length > 0) out.attributes = state.attributes;
  if (!state.enabled) out.enabled = false;
  const sorted = <T>(m: Map<string, T>): [string, T][] => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (state.groups.size > 0) {
    out.groups = sorted(state.groups).map(([name, g]) => ({
      name,
      ...(g.description !== null ? { description: g.description } : {}),
      ...(g.parent !== null ? { parent: g.parent } : {}),
      ...(g.members.length > 0 ? { members: g.members.map(memberOut) } : {}),
    }));
  }
  if (state.roles.size > 0) {
    out.roles = sorted(state.roles).map(([name, r]) => ({
      name,
      ...(r.description !== null ? { description: r.description } : {}),
      ...(r.trust !== null ? { trust: r.trust } : {}),
      ...(r.members.length > 0 ? { members: r.members.map(memberOut) } : {}),
    }));
  }
  if (state.policies.size > 0) {
    out.policies = sorted(state.policies).map(([, p]) => ({
      name: p.name,
      ...(p.version !== null ? { version: p.version } : {}),
      ...(!p.active ? { active: false } : {}),
      ...(p.description !== null ? { description: p.description } : {}),
      assertions: p.assertions,
    }));
  }
  if (state.services.size > 0) {
    out.services = sorted(state.services).map(([name, sv]) => ({
      name,
      ...(sv.description !== null ? { description: sv.description } : {}),
      ...(sv.publicKeys.length > 0 ? { publicKeys: sv.publicKeys } : {}),
    }));
  }
  if (state.apis.size > 0) {
    out.apis = sorted(state.apis).map(([name, a]) => ({
      name,
      audience: a.audience,
      ...(a.scopes.length > 0 ? { scopes: a.scopes } : {}),
      ...(a.permissionsClaim ? { permissionsClaim: true } : {}),
    }));
  }
  if (state.clients.size > 0) {
    out.clients = sorted(state.clients).map(([clientId, c]) => ({
      clientId,
      ...(c.name !== null ? { name: c.name } : {}),
      type: c.type,
      ...(c.redirectUris.length > 0 ? { redirectUris: c.redirectUris } : {}),
      ...(c.postLogoutRedirectUris.length > 0 ? { postLogoutRedirectUris: c.postLogoutRedirectUris } : {}),
      grantTypes: c.grantTypes,
      ...(c.firstParty ? { firstParty: true } : {}),
    }));
  }
  if (state.resources.size > 0) {
    out.resources = sorted(state.resources).map(([, r]) => ({
      type: r.type,
      id: r.id,
      ...(r.properties && Object.keys(r.properties).length > 0 ? { properties: r.properties } : {}),
    }));
  }
  return out;
}

/** Every user in the config file format (no passwords). */
export async function exportUsers(db: Queryable): Promise<Record<string, unknown>[]> {
  const users = await db.selectFrom('users').selectAll().orderBy('name').execute();
  const ids = await db.selectFrom('user_external_ids').selectAll().orderBy('external_id').execute();
  return users.map((u) => {
    const externalIds = ids.filter((x) => x.user_name === u.name).map((x) => x.external_id);
    const attributes = JSON.parse(u.attributes) as Record<string, unknown>;
    return {
      name: u.name,
      ...(u.email !== null ? { email: u.email } : {}),
      ...(u.display_name !== null ? { displayName: u.display_name } : {}),
      ...(externalIds.length > 0 ? { externalIds } : {}),
      ...(Object.keys(attributes).length > 0 ? { attributes } : {}),
    };
  });
}

/**
 * Exports the named domains as a config file object; with no names, every domain and every user.
 * NotFound domains are reported by name in the thrown Error.
 */
export async function exportConfig(
  db: Queryable,
  names: readonly string[] = [],
): Promise<{ users?: Record<string, unknown>[]; domains: Record<string, unknown>[] }> {
  const wanted =
    names.length > 0
      ? names.map((n) => n.toLowerCase())
      : (await db.selectFrom('domains').select('name').orderBy('name').execute()).map((r) => r.name);
  const domains: Record<string, unknown>[] = [];
  for (const name of wanted) {
    const state = await readDomainState(db, name);
    if (state === undefined) throw new Error(`domain "${name}" does not exist`);
    domains.push(domainStateToConfig(state));
  }
  if (names.length > 0) return { domains };
  const users = await exportUsers(db);
  return users.length > 0 ? { users, domains } : { domains };
}

/** The config file object as YAML text. */
export function configToYaml(config: object): string {
  return stringify(config, { lineWidth: 0, aliasDuplicateObjects: false });
}
