import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/storage/audit-log.js';
import { CLIENT_LIMITS, ClientStore, validateRedirectUri, type ClientInput } from '../../src/storage/client-store.js';
import { ConflictError, NotFoundError } from '../../src/storage/errors.js';
import { ServiceStore } from '../../src/storage/service-store.js';
import { Store } from '../../src/storage/store.js';
import { auditEvents, cheapHasher, ctx, expectOneWinner, issuesOf, NOW } from './store-fixtures.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from './test-databases.js';

const SECRET = 'a-long-random-client-secret';
const web: ClientInput = {
  clientId: 'library-web',
  name: 'Library Web',
  type: 'public',
  redirectUris: ['http://127.0.0.1:5173/callback'],
  grantTypes: ['authorization_code', 'refresh_token'],
};
const backend: ClientInput = {
  clientId: 'library-backend',
  type: 'confidential',
  redirectUris: ['https://library.example/callback'],
  postLogoutRedirectUris: ['https://library.example/'],
  grantTypes: ['authorization_code', 'client_credentials'],
  firstParty: true,
};

describe('validateRedirectUri (RFC 6749 §3.1.2, RFC 8252 §7.3)', () => {
  it.each([
    'https://app.example/callback',
    'https://app.example:8443/cb?x=1',
    'http://127.0.0.1:5173/callback',
    'http://[::1]/callback',
    'http://localhost:3000/cb',
  ])('accepts %s', (uri) => {
    expect(validateRedirectUri(uri)).toBeUndefined();
  });
  it.each([
    ['not absolute', '/callback'],
    ['plain http', 'http://app.example/callback'],
    ['http on a look-alike host', 'http://127.0.0.1.example/cb'],
    ['a fragment', 'https://app.example/cb#x'],
    ['an empty fragment', 'https://app.example/cb#'],
    ['a private-use scheme', 'com.example.app:/callback'],
    ['javascript', 'javascript:alert(1)'],
    ['no host', 'https:///cb'],
  ])('refuses %s', (_, uri) => {
    expect(validateRedirectUri(uri)).toEqual(expect.any(String));
  });
});

// The storage contract for OAuth clients (config-format.md `clients`), on SQLite and PostgreSQL.
describe.each(TEST_DATABASE_KINDS)('client store on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  let clients: ClientStore;
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
    clients = new ClientStore(store, { hasher: cheapHasher() });
    await store.createDomain({ name: 'library' }, ctx);
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('creates a public client without a secret, with the defaults', async () => {
    const w = await clients.createClient('Library', web, ctx);
    expect(w.secret).toBeUndefined();
    expect(w.record).toEqual({
      clientId: 'library-web',
      domain: 'library',
      name: 'Library Web',
      type: 'public',
      hasSecret: false,
      redirectUris: ['http://127.0.0.1:5173/callback'],
      postLogoutRedirectUris: [],
      grantTypes: ['authorization_code', 'refresh_token'],
      firstParty: false,
      revision: 1,
      createdAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    });
    expect(w.revision).toBe(2);
    expect(await clients.getClient('library', 'library-web')).toEqual(w.record);
    expect(await clients.findClient('library-web')).toEqual(w.record);
    expect(await clients.findClient('LIBRARY-WEB')).toBeUndefined();
    const defaults = await clients.createClient(
      'library',
      { clientId: 'x', type: 'public', redirectUris: ['https://x.example/cb'] },
      ctx,
    );
    expect(defaults.record).toMatchObject({ name: null, grantTypes: ['authorization_code'], firstParty: false });
    expect(await clients.verifyClientSecret('library-web', '')).toBe(false);
  });

  it('gives a confidential client a generated secret, returned once and stored only as a hash', async () => {
    const w = await clients.createClient('library', backend, ctx);
    expect(w.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(w.record).toMatchObject({ type: 'confidential', hasSecret: true, firstParty: true });
    expect(JSON.stringify(w.record)).not.toContain(w.secret);
    const row = await store.db.selectFrom('clients').select('secret_hash').executeTakeFirstOrThrow();
    expect(row.secret_hash).toMatch(/^\$argon2id\$/);
    expect(await clients.verifyClientSecret('library-backend', w.secret!)).toBe(true);
    expect(await clients.verifyClientSecret('library-backend', SECRET)).toBe(false);
    expect(await clients.verifyClientSecret('nobody', w.secret!)).toBe(false);
    const given = await clients.createClient('library', { ...backend, clientId: 'given', secret: SECRET }, ctx);
    expect(given.secret).toBeUndefined();
    expect(await clients.verifyClientSecret('given', SECRET)).toBe(true);
  });

  it.each<[string, Partial<ClientInput>, [string, string][]]>([
    ['an empty client id', { clientId: '' }, [['clientId', 'client.invalid_client_id']]],
    ['a client id with a space', { clientId: 'library web' }, [['clientId', 'client.invalid_client_id']]],
    ['a client id with a slash', { clientId: 'library/web' }, [['clientId', 'client.invalid_client_id']]],
    ['a client id too long', { clientId: 'c'.repeat(257) }, [['clientId', 'client.invalid_client_id']]],
    // A dotted client id is a principal of the client's own domain, never of another.
    ['a client id in another domain', { clientId: 'shop.web' }, [['clientId', 'client.invalid_client_id']]],
    ['a client id naming a user', { clientId: 'user.root' }, [['clientId', 'client.invalid_client_id']]],
    ['a client id in a parent domain', { clientId: 'librar.web' }, [['clientId', 'client.invalid_client_id']]],
    ['a name too long', { name: 'n'.repeat(257) }, [['name', 'client.invalid_name']]],
    ['an unknown type', { type: 'native' as 'public' }, [['type', 'client.invalid_type']]],
    ['a secret on a public client', { secret: SECRET }, [['secret', 'client.secret_not_allowed']]],
    [
      'client_credentials on a public client',
      { grantTypes: ['authorization_code', 'client_credentials'] },
      [['grantTypes[1]', 'client.invalid_grant_type']],
    ],
    ['an unknown grant type', { grantTypes: ['password'] }, [['grantTypes[0]', 'client.invalid_grant_type']]],
    [
      'a grant type twice',
      { grantTypes: ['authorization_code', 'authorization_code'] },
      [['grantTypes[1]', 'client.invalid_grant_type']],
    ],
    ['no grant type', { grantTypes: [] }, [['grantTypes', 'client.invalid_grant_type']]],
    ['refresh_token alone', { grantTypes: ['refresh_token'] }, [['grantTypes', 'client.invalid_grant_type']]],
    ['the code grant without a redirect URI', { redirectUris: [] }, [['redirectUris', 'client.invalid_redirect_uri']]],
    [
      'plain http on a public host',
      { redirectUris: ['https://ok.example/cb', 'http://app.example/cb'] },
      [['redirectUris[1]', 'client.invalid_redirect_uri']],
    ],
    [
      'a redirect URI with a fragment',
      { redirectUris: ['https://a.example/cb#x'] },
      [['redirectUris[0]', 'client.invalid_redirect_uri']],
    ],
    ['a relative redirect URI', { redirectUris: ['/cb'] }, [['redirectUris[0]', 'client.invalid_redirect_uri']]],
    [
      'a redirect URI too long',
      { redirectUris: [`https://a.example/${'p'.repeat(2040)}`] },
      [['redirectUris[0]', 'client.invalid_redirect_uri']],
    ],
    [
      'a redirect URI twice',
      { redirectUris: ['https://a.example/cb', 'https://a.example/cb'] },
      [['redirectUris[1]', 'client.duplicate_redirect_uri']],
    ],
    [
      'too many redirect URIs',
      { redirectUris: Array.from({ length: CLIENT_LIMITS.uris + 1 }, (_, i) => `https://a.example/${i}`) },
      [['redirectUris', 'client.invalid_redirect_uri']],
    ],
    [
      'a bad post-logout redirect URI',
      { postLogoutRedirectUris: ['http://app.example/bye'] },
      [['postLogoutRedirectUris[0]', 'client.invalid_redirect_uri']],
    ],
    [
      'a firstParty that is not a boolean',
      { firstParty: 1 as unknown as boolean },
      [['firstParty', 'client.invalid_first_party']],
    ],
    [
      'several problems',
      { clientId: 'a b', redirectUris: ['x'], grantTypes: ['password'] },
      [
        ['clientId', 'client.invalid_client_id'],
        ['redirectUris[0]', 'client.invalid_redirect_uri'],
        ['grantTypes[0]', 'client.invalid_grant_type'],
      ],
    ],
  ])('refuses %s', async (_, over, expected) => {
    expect(await issuesOf(clients.createClient('library', { ...web, ...over }, ctx))).toEqual(expected);
    expect((await store.getDomain('library')).revision).toBe(1);
  });

  it('refuses a bad secret on a confidential client', async () => {
    expect(await issuesOf(clients.createClient('library', { ...backend, secret: 'short' }, ctx))).toEqual([
      ['secret', 'client.invalid_secret'],
    ]);
  });

  it('keeps client ids unique across the server, and apart from service principal names', async () => {
    await clients.createClient('library', web, ctx);
    await store.createDomain({ name: 'shop' }, ctx);
    await expect(clients.createClient('shop', web, ctx)).rejects.toMatchObject({
      constructor: ConflictError,
      code: 'client.exists',
      message: expect.stringContaining('"library-web"'),
    });
    await new ServiceStore(store, { hasher: cheapHasher() }).createService('library', { name: 'indexer' }, ctx);
    await expect(
      clients.createClient('library', { ...backend, clientId: 'Library.Indexer' }, ctx),
    ).rejects.toMatchObject({
      code: 'client.exists',
      message: expect.stringContaining('service library.indexer'),
    });
  });

  it('lets the database decide a race for one client id, and says so', async () => {
    const domains = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'];
    for (const d of domains) await store.createDomain({ name: d }, ctx);
    const results = await Promise.allSettled(domains.map((d) => clients.createClient(d, web, ctx)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'client.exists' });
  });

  it('updates the fields present with If-Match; the type is fixed', async () => {
    await clients.createClient('library', web, ctx);
    const w = await clients.updateClient(
      'library',
      'library-web',
      { name: null, postLogoutRedirectUris: ['http://localhost:5173/'], firstParty: true },
      1,
      ctx,
    );
    expect(w.record).toMatchObject({
      name: null,
      redirectUris: web.redirectUris,
      postLogoutRedirectUris: ['http://localhost:5173/'],
      firstParty: true,
      revision: 2,
    });
    await expect(clients.updateClient('library', 'library-web', { name: 'x' }, 1, ctx)).rejects.toMatchObject({
      code: 'revision.stale',
      currentRevision: 2,
    });
    expect(
      await issuesOf(
        clients.updateClient('library', 'library-web', { type: 'confidential' } as unknown as object, 2, ctx),
      ),
    ).toEqual([['type', 'client.immutable']]);
    // The rules between fields hold for the client as it would be stored.
    expect(await issuesOf(clients.updateClient('library', 'library-web', { redirectUris: [] }, 2, ctx))).toEqual([
      ['redirectUris', 'client.invalid_redirect_uri'],
    ]);
    expect(
      await issuesOf(clients.updateClient('library', 'library-web', { grantTypes: ['client_credentials'] }, 2, ctx)),
    ).toEqual([['grantTypes[0]', 'client.invalid_grant_type']]);
    await expect(clients.updateClient('library', 'nobody', {}, undefined, ctx)).rejects.toMatchObject({
      constructor: NotFoundError,
      code: 'client.not_found',
    });
    // A client is reached through its own domain only.
    await store.createDomain({ name: 'shop' }, ctx);
    await expect(clients.updateClient('shop', 'library-web', {}, undefined, ctx)).rejects.toMatchObject({
      code: 'client.not_found',
    });
    await expect(clients.getClient('shop', 'library-web')).rejects.toMatchObject({ code: 'client.not_found' });
  });

  it('lets exactly one of concurrent updates from the same revision win', async () => {
    await clients.createClient('library', web, ctx);
    const winner = await expectOneWinner(8, (i) =>
      clients.updateClient('library', 'library-web', { name: `Web ${i}` }, 1, ctx),
    );
    expect(await clients.getClient('library', 'library-web')).toMatchObject({ name: `Web ${winner}`, revision: 2 });
  });

  it('rotates a confidential client secret; a public client has none to rotate', async () => {
    const created = await clients.createClient('library', backend, ctx);
    const rotated = await clients.rotateClientSecret('library', 'library-backend', 1, ctx);
    expect(rotated.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await clients.verifyClientSecret('library-backend', created.secret!)).toBe(false);
    expect(await clients.verifyClientSecret('library-backend', rotated.secret!)).toBe(true);
    const chosen = await clients.rotateClientSecret('library', 'library-backend', 2, ctx, { secret: SECRET });
    expect(chosen.secret).toBeUndefined();
    expect(await clients.verifyClientSecret('library-backend', SECRET)).toBe(true);
    await expect(clients.rotateClientSecret('library', 'library-backend', 2, ctx)).rejects.toMatchObject({
      code: 'revision.stale',
    });
    await clients.createClient('library', web, ctx);
    expect(await issuesOf(clients.rotateClientSecret('library', 'library-web', undefined, ctx))).toEqual([
      ['secret', 'client.secret_not_allowed'],
    ]);
  });

  it('deletes a client and frees its id; lists a page at a time', async () => {
    for (const id of ['c', 'a', 'b']) await clients.createClient('library', { ...web, clientId: id }, ctx);
    const page1 = await clients.listClients('library', { limit: 2 });
    const page2 = await clients.listClients('library', { cursor: page1.nextCursor, limit: 2 });
    expect([...page1.items, ...page2.items].map((c) => c.clientId)).toEqual(['a', 'b', 'c']);
    expect(page2.nextCursor).toBeUndefined();
    await expect(clients.deleteClient('library', 'a', 2, ctx)).rejects.toMatchObject({ code: 'revision.stale' });
    await clients.deleteClient('library', 'a', 1, ctx);
    await expect(clients.getClient('library', 'a')).rejects.toMatchObject({ code: 'client.not_found' });
    await expect(clients.deleteClient('library', 'a', undefined, ctx)).rejects.toMatchObject({
      code: 'client.not_found',
    });
    await store.createDomain({ name: 'shop' }, ctx);
    await clients.createClient('shop', { ...web, clientId: 'a' }, ctx);
    await expect(clients.listClients('nope')).rejects.toMatchObject({ code: 'domain.not_found' });
  });

  it('audits every write and never a secret or its hash', async () => {
    const created = await clients.createClient('library', backend, ctx);
    const rotated = await clients.rotateClientSecret('library', 'library-backend', 1, ctx);
    await clients.createClient('library', { ...backend, clientId: 'given', secret: SECRET }, ctx);
    await clients.updateClient('library', 'library-backend', { firstParty: false }, 2, ctx);
    await clients.deleteClient('library', 'library-backend', 3, ctx);
    const events = (await auditEvents(store)).slice(1);
    expect(events.map((e) => [e.action, e.domain, e.objectType, e.objectName])).toEqual([
      ['client.create', 'library', 'client', 'library-backend'],
      ['client.rotate_secret', 'library', 'client', 'library-backend'],
      ['client.create', 'library', 'client', 'given'],
      ['client.update', 'library', 'client', 'library-backend'],
      ['client.delete', 'library', 'client', 'library-backend'],
    ]);
    expect(events[3]).toMatchObject({ before: { firstParty: true }, after: { firstParty: false } });
    const json = JSON.stringify(events);
    for (const secret of [created.secret!, rotated.secret!, SECRET, '$argon2']) expect(json).not.toContain(secret);
    expect(json).not.toMatch(/secret_?hash/i);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, events: 6 });
  });
});
