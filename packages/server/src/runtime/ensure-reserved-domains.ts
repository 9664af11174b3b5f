/**
 * The reserved domains exist from the first start (semantics.md "Names"): `sys`, `sys.auth`
 * (super admins and the rules for managing Gatehouse itself) and `user` (home of people). `sys`
 * holds the built-in OAuth client of the `gatehouse` CLI (`gatehouse login`, docs/cli.md).
 * Safe to run on every start and from several nodes at once.
 */

import { RESERVED_DOMAINS } from '@gatehouse/engine';
import { ClientStore, type ClientInput } from '../storage/client-store.js';
import { ConflictError } from '../storage/errors.js';
import type { Store } from '../storage/store.js';

/** The client_id of the `gatehouse` CLI's built-in client (domain `sys`). */
export const CLI_CLIENT_ID = 'sys.cli';

/**
 * The CLI's client: public (PKCE, no secret: a secret in a program everyone has would be no
 * secret), first party, and a native app (RFC 8252 §7.3): its redirect URIs are http loopback
 * URIs, whose port may vary, so `gatehouse login` listens on any free port. Being a native app,
 * it still gets the consent page at every sign-in (oidc-provider's `native_client_prompt`; RFC 8252
 * §8.6: any program on the machine can claim to be this client).
 */
export const CLI_CLIENT: ClientInput = {
  clientId: CLI_CLIENT_ID,
  name: 'Gatehouse CLI',
  type: 'public',
  redirectUris: ['http://127.0.0.1/callback', 'http://[::1]/callback'],
  grantTypes: ['authorization_code', 'refresh_token'],
  firstParty: true,
};

/**
 * Creates whichever reserved domains are missing, then the CLI's client when there is none;
 * returns the names of the domains it created.
 */
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
  await ensureCliClient(store);
  return created;
}

/**
 * Creates the CLI's client in `sys` when no client has its id; true when it did. A client that
 * exists is left as it is (an administrator may have changed it).
 */
export async function ensureCliClient(store: Store): Promise<boolean> {
  // A public client has no secret: the store's hasher is never used.
  const clients = new ClientStore(store);
  if ((await clients.findClient(CLI_CLIENT_ID)) !== undefined) return false;
  try {
    await clients.createClient('sys', CLI_CLIENT, { actor: 'system' });
    return true;
  } catch (err) {
    // Another node created it between our read and our write.
    if (err instanceof ConflictError) return false;
    throw err;
  }
}

const DESCRIPTIONS: Record<string, string> = {
  sys: 'Reserved: Gatehouse itself',
  'sys.auth': 'Reserved: super admins (members of role admin) and the rules for managing Gatehouse',
  user: 'Reserved: the home of people (principals user.<name>)',
};
