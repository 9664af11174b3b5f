import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Directory } from '../../src/catalog/directory.js';
import { openDatabase } from '../../src/storage/open-database.js';
import { ServiceStore } from '../../src/storage/service-store.js';
import { Store } from '../../src/storage/store.js';
import { UserStore } from '../../src/storage/user-store.js';
import { cheapHasher, ctx } from '../storage/store-fixtures.js';

// authzen.md "From AuthZEN to Gatehouse": a user subject is the user whose name, else external
// id, else email is the id; a service subject is the service whose principal is the id. The
// directory answers that from memory, exactly as the store does with queries.

const user = (name: string, email: string | null, externalIds: string[] = [], revision = 1) => ({
  name,
  email,
  externalIds,
  revision,
});

describe('Directory lookups', () => {
  const d = new Directory();
  d.setUser(user('alice', 'alice@example.com', ['idp|alice-17', 'Corp-ID-7']));
  d.setUser(user('bob', null, ['bob@example.com']));
  d.setUser(user('carol', 'bob@example.com'));
  d.addService('library.gateway');
  d.addService('Library.Indexer');

  it.each<[string, string, string | undefined]>([
    ['a name', 'alice', 'alice'],
    ['a name in another case', 'ALICE', 'alice'],
    ['an external id', 'idp|alice-17', 'alice'],
    ['an external id is exact: case matters', 'corp-id-7', undefined],
    ['an external id in its own case', 'Corp-ID-7', 'alice'],
    ['an email', 'alice@example.com', 'alice'],
    ['an email in another case', 'Alice@Example.COM', 'alice'],
    // Name, then external id, then email: bob's external id beats carol's email.
    ['an external id before an email', 'bob@example.com', 'bob'],
    ['nobody', 'dave', undefined],
    ['the empty id', '', undefined],
    ['a principal name is not a user name', 'user.alice', undefined],
  ])('finds a user by %s', (_, id, expected) => {
    expect(d.findUser(id)).toBe(expected);
  });

  it('refuses what is not a string, as the store does', () => {
    expect(d.findUser(42 as unknown as string)).toBeUndefined();
    expect(d.findService(undefined as unknown as string)).toBeUndefined();
  });

  it.each<[string, string | undefined]>([
    ['library.gateway', 'library.gateway'],
    ['LIBRARY.GATEWAY', 'library.gateway'],
    ['library.indexer', 'library.indexer'],
    ['library.nope', undefined],
    ['library', undefined],
    ['', undefined],
  ])('finds service %j', (id, expected) => {
    expect(d.findService(id)).toBe(expected);
    expect(d.hasService(id)).toBe(expected !== undefined);
  });

  it('lists its service principals sorted, the same array until they change', () => {
    const list = d.servicePrincipals();
    expect(list).toEqual(['library.gateway', 'library.indexer']);
    expect(d.servicePrincipals()).toBe(list);
    d.addService('library.gateway');
    expect(d.servicePrincipals()).toBe(list);
    d.addService('a.first');
    expect(d.servicePrincipals()).toEqual(['a.first', 'library.gateway', 'library.indexer']);
    d.removeServicesOf('a');
    expect(d.servicePrincipals()).toEqual(list);
  });

  it('counts what it holds', () => {
    expect(d.size).toEqual({ users: 3, services: 2 });
  });
});

describe('Directory updates', () => {
  it('replaces a user’s keys: the old email and external ids no longer find it', () => {
    const d = new Directory();
    d.setUser(user('alice', 'a@x.org', ['old-1', 'old-2'], 1));
    expect(d.setUser(user('alice', 'alice@x.org', ['old-2', 'new-3'], 2))).toBe(true);
    expect(d.findUser('a@x.org')).toBeUndefined();
    expect(d.findUser('old-1')).toBeUndefined();
    expect(d.findUser('old-2')).toBe('alice');
    expect(d.findUser('new-3')).toBe('alice');
    expect(d.findUser('alice@x.org')).toBe('alice');
    expect(d.findUserRevision('ALICE')).toBe(2);
  });

  it('ignores an older revision (a load that raced with a later write) and accepts the same one again', () => {
    const d = new Directory();
    d.setUser(user('alice', 'new@x.org', [], 5));
    expect(d.setUser(user('alice', 'old@x.org', [], 4))).toBe(false);
    expect(d.findUser('new@x.org')).toBe('alice');
    expect(d.findUser('old@x.org')).toBeUndefined();
    expect(d.setUser(user('alice', 'new@x.org', [], 5))).toBe(true);
  });

  it('lets a key move between users whichever notice comes first', () => {
    // bob takes external id "shared" from alice; the directory sees bob's change first.
    const d = new Directory();
    d.setUser(user('alice', null, ['shared'], 1));
    d.setUser(user('bob', null, ['shared'], 1));
    expect(d.findUser('shared')).toBe('bob');
    // alice's change (dropping it) must not take it from bob.
    d.setUser(user('alice', null, [], 2));
    expect(d.findUser('shared')).toBe('bob');
    d.removeUser('alice');
    expect(d.findUser('shared')).toBe('bob');
  });

  it('deletes a user with its keys', () => {
    const d = new Directory();
    d.setUser(user('alice', 'a@x.org', ['e-1']));
    d.removeUser('Alice');
    expect([d.findUser('alice'), d.findUser('a@x.org'), d.findUser('e-1'), d.findUserRevision('alice')]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    d.removeUser('nobody');
    expect(d.size.users).toBe(0);
  });

  it('drops the services of a deleted domain, not those of its subdomains or of a longer name', () => {
    const d = new Directory();
    for (const p of ['library.a', 'library.b', 'library.sub.c', 'libraryx.d', 'shop.e']) d.addService(p);
    d.removeServicesOf('Library');
    expect(['library.a', 'library.b', 'library.sub.c', 'libraryx.d', 'shop.e'].map((p) => d.hasService(p))).toEqual([
      false,
      false,
      true,
      true,
      true,
    ]);
    d.removeService('SHOP.E');
    expect(d.hasService('shop.e')).toBe(false);
  });

  it('holds 100,000 users in plain maps', () => {
    const d = new Directory();
    for (let i = 0; i < 100_000; i++) d.setUser(user(`u${i}`, `u${i}@example.com`, [`idp|${i}`]));
    expect(d.size.users).toBe(100_000);
    expect(d.findUser('idp|99999')).toBe('u99999');
    expect(d.findUser('U5@EXAMPLE.COM')).toBe('u5');
  });
});

describe('Directory over the store', () => {
  let dir: string;
  let store: Store;
  let users: UserStore;
  let services: ServiceStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-directory-'));
    store = new Store(await openDatabase({ kind: 'sqlite', path: join(dir, 'g.db') }));
    users = new UserStore(store, { hasher: cheapHasher() });
    services = new ServiceStore(store, { hasher: cheapHasher() });
    await users.createUser({ name: 'Alice', email: 'Alice@Example.com', externalIds: ['idp|A-1', 'x'] }, ctx);
    await users.createUser({ name: 'bob', externalIds: ['alice@example.org'] }, ctx);
    await users.createUser({ name: 'carol', email: 'alice@example.org' }, ctx);
    await users.createUser({ name: 'x' }, ctx);
    await store.createDomain({ name: 'library' }, ctx);
    await services.createService('library', { name: 'gateway', secret: null }, ctx);
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads what the store holds and answers every id as UserStore.findUserBySubject does', async () => {
    const d = await Directory.load(store.db);
    expect(d.size).toEqual({ users: 4, services: 1 });
    const ids = [
      'alice',
      'ALICE',
      'Alice@example.com',
      'alice@example.com',
      'idp|A-1',
      'idp|a-1',
      'x', // a name and alice's external id: the name wins
      'X',
      'alice@example.org', // bob's external id and carol's email: the external id wins
      'ALICE@EXAMPLE.ORG', // not an external id in this case, so carol's email
      'user.alice',
      'nobody',
      '',
      'a'.repeat(500),
    ];
    for (const id of ids) {
      expect(d.findUser(id), id).toBe((await users.findUserBySubject(id))?.name);
    }
    for (const id of ['library.gateway', 'Library.Gateway', 'library.other', 'library', '.gateway', 'gateway']) {
      expect(d.findService(id), id).toBe((await services.findServiceByPrincipal(id))?.principal);
    }
  });

  it('reloads whole: users and services gone from the store are gone from it', async () => {
    const d = await Directory.load(store.db);
    const other = new Directory();
    other.setUser(user('ghost', 'ghost@x.org'));
    other.addService('gone.svc');
    await other.reload(store.db);
    expect(other.size).toEqual(d.size);
    expect(other.findUser('ghost@x.org')).toBeUndefined();
    expect(other.hasService('gone.svc')).toBe(false);
  });
});
