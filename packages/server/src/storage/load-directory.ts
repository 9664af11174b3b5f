/**
 * Reads what the in-memory directory (catalog/directory.ts) holds: each user's lookup keys —
 * name, email, external ids — with its revision, and every service principal. Two plain scans;
 * no password hashes, attributes or secrets are read.
 */

import type { Queryable } from './load-domain-model.js';

/** A user's lookup keys as stored (name and email lower-cased, external ids sorted). */
export interface UserKeys {
  name: string;
  email: string | null;
  externalIds: readonly string[];
  revision: number;
}

/** Every user's lookup keys, ordered by name. */
export async function loadUserKeys(db: Queryable): Promise<UserKeys[]> {
  const [users, ids] = await Promise.all([
    db.selectFrom('users').select(['name', 'email', 'revision']).orderBy('name').execute(),
    db.selectFrom('user_external_ids').select(['user_name', 'external_id']).orderBy('external_id').execute(),
  ]);
  const byUser = new Map<string, string[]>();
  for (const r of ids) {
    const list = byUser.get(r.user_name);
    if (list) list.push(r.external_id);
    else byUser.set(r.user_name, [r.external_id]);
  }
  return users.map((u) => ({
    name: u.name,
    email: u.email,
    externalIds: byUser.get(u.name) ?? [],
    revision: u.revision,
  }));
}

/** Every service principal (`<domain>.<name>`), ordered. */
export async function loadServicePrincipals(db: Queryable): Promise<string[]> {
  const rows = await db.selectFrom('services').select(['domain', 'name']).orderBy('domain').orderBy('name').execute();
  return rows.map((r) => `${r.domain}.${r.name}`);
}
