/**
 * The reserved domains exist from the first start (semantics.md "Names"): `sys`, `sys.auth`
 * (super admins and the rules for managing Gatehouse itself) and `user` (home of people).
 * Safe to run on every start and from several nodes at once.
 */

import { RESERVED_DOMAINS } from '@gatehouse/engine';
import { ConflictError } from '../storage/errors.js';
import type { Store } from '../storage/store.js';

/** Creates whichever reserved domains are missing; returns the names it created. */
export async function ensureReservedDomains(store: Store): Promise<string[]> {
  const created: string[] = [];
  for (const name of RESERVED_DOMAINS) {
    try {
      await store.getDomain(name);
      continue;
    } catch (err) {
      if ((err as { code?: string }).code !== 'domain.not_found') throw err;
    }
    try {
      const w = await store.createDomain({ name, description: DESCRIPTIONS[name] }, { actor: 'system' });
      created.push(w.record.name);
    } catch (err) {
      // Another node created it between our read and our write.
      if (!(err instanceof ConflictError)) throw err;
    }
  }
  return created;
}

const DESCRIPTIONS: Record<string, string> = {
  sys: 'Reserved: Gatehouse itself',
  'sys.auth': 'Reserved: super admins (members of role admin) and the rules for managing Gatehouse',
  user: 'Reserved: the home of people (principals user.<name>)',
};
