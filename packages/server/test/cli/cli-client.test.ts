import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLI_CLIENT_ID, ensureCliClient, ensureReservedDomains } from '../../src/runtime/ensure-reserved-domains.js';
import { ClientStore } from '../../src/storage/client-store.js';
import { Store } from '../../src/storage/store.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from '../storage/test-databases.js';

// issue 4: the built-in OAuth client of `gatehouse login`, made with the reserved domains.
describe.each(TEST_DATABASE_KINDS)('the CLI’s built-in client on $name', (kind) => {
  let database: TestDatabase;
  let store: Store;

  beforeEach(async () => {
    database = await kind.create();
    store = new Store(database.open);
  });
  afterEach(async () => {
    await database.dispose();
  });

  async function cliClients(): Promise<{ client_id: string; domain: string }[]> {
    return store.db
      .selectFrom('clients')
      .select(['client_id', 'domain'])
      .where('client_id', '=', CLI_CLIENT_ID)
      .execute();
  }

  it('is created once, however many nodes start at the same time', async () => {
    const results = await Promise.all(Array.from({ length: 4 }, () => ensureReservedDomains(new Store(database.open))));
    expect(results.flat().sort()).toEqual(['sys', 'sys.auth', 'user']);
    expect(await cliClients()).toEqual([{ client_id: 'sys.cli', domain: 'sys' }]);
    // Later starts change nothing: no write, no audit event.
    const revision = (await store.getDomain('sys')).revision;
    expect(await ensureCliClient(store)).toBe(false);
    expect(await ensureReservedDomains(store)).toEqual([]);
    expect((await store.getDomain('sys')).revision).toBe(revision);
  });

  it('leaves a client an administrator changed as it is, and makes it again once deleted', async () => {
    await ensureReservedDomains(store);
    const clients = new ClientStore(store);
    await clients.updateClient('sys', CLI_CLIENT_ID, { redirectUris: ['http://127.0.0.1/callback'] }, undefined, {
      actor: 'user.root',
    });
    await ensureReservedDomains(store);
    expect((await clients.getClient('sys', CLI_CLIENT_ID)).redirectUris).toEqual(['http://127.0.0.1/callback']);
    await clients.deleteClient('sys', CLI_CLIENT_ID, undefined, { actor: 'user.root' });
    expect(await ensureCliClient(store)).toBe(true);
    expect((await clients.getClient('sys', CLI_CLIENT_ID)).redirectUris).toEqual([
      'http://127.0.0.1/callback',
      'http://[::1]/callback',
    ]);
  });
});
