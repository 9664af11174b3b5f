import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { API_LIMITS, ApiStore, type ApiInput } from '../../src/storage/api-store.js';
import { ConflictError, NotFoundError } from '../../src/storage/errors.js';
import { Store } from '../../src/storage/store.js';
import { auditEvents, ctx, expectOneWinner, issuesOf, NOW } from './store-fixtures.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from './test-databases.js';

const catalog: ApiInput = {
  name: 'Catalog',
  audience: 'https://catalog.library.example',
  scopes: ['book:read', 'Book:Update', 'library:role.readers'],
};

// The storage contract for APIs (config-format.md `apis`, api.md §1 permission scopes), on both databases.
describe.each(TEST_DATABASE_KINDS)('API store on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  let apis: ApiStore;
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
    apis = new ApiStore(store);
    await store.createDomain({ name: 'library' }, ctx);
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('creates an API: name and scopes lower-cased, audience as given', async () => {
    const w = await apis.createApi('library', catalog, ctx);
    expect(w.record).toEqual({
      domain: 'library',
      name: 'catalog',
      audience: 'https://catalog.library.example',
      scopes: ['book:read', 'book:update', 'library:role.readers'],
      permissionsClaim: false,
      revision: 1,
      createdAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    });
    expect(w.revision).toBe(2);
    expect(await apis.getApi('LIBRARY', 'CATALOG')).toEqual(w.record);
    expect(await apis.findApiByAudience('https://catalog.library.example')).toEqual(w.record);
    expect(await apis.findApiByAudience('https://other.example')).toBeUndefined();
    const urn = await apis.createApi(
      'library',
      { name: 'loans', audience: 'urn:library:loans', permissionsClaim: true },
      ctx,
    );
    expect(urn.record).toMatchObject({ scopes: [], permissionsClaim: true });
  });

  it.each<[string, Partial<ApiInput>, [string, string][]]>([
    ['a dotted name', { name: 'cat.alog' }, [['name', 'api.invalid_name']]],
    ['a relative audience', { audience: '/catalog' }, [['audience', 'api.invalid_audience']]],
    ['an audience with a space', { audience: 'https://a b.example' }, [['audience', 'api.invalid_audience']]],
    ['an audience with a fragment', { audience: 'https://catalog.example/#x' }, [['audience', 'api.invalid_audience']]],
    ['an audience without a host', { audience: 'https://' }, [['audience', 'api.invalid_audience']]],
    ['an audience with an empty host', { audience: 'https:///catalog' }, [['audience', 'api.invalid_audience']]],
    ['a malformed URN', { audience: 'urn:x' }, [['audience', 'api.invalid_audience']]],
    [
      'an audience too long',
      { audience: `https://x.example/${'p'.repeat(2040)}` },
      [['audience', 'api.invalid_audience']],
    ],
    ['a scope without a colon', { scopes: ['read'] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a scope without an action', { scopes: ['book:read', 'book:'] }, [['scopes[1]', 'api.invalid_scope']]],
    ['a scope without a type', { scopes: [':read'] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a dotted scope type', { scopes: ['rare.book:read'] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a scope with a space', { scopes: ['book:read all'] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a scope with a quote', { scopes: ['book:"read"'] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a glob action', { scopes: ['book:*'] }, [['scopes[0]', 'api.invalid_scope']]],
    ['an action too long', { scopes: [`book:${'a'.repeat(129)}`] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a role scope without a role', { scopes: ['library:role.'] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a role scope of a bad domain', { scopes: ['Lib_rary!:role.readers'] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a scope too long', { scopes: [`library:role.${'r'.repeat(250)}`] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a scope that is not a string', { scopes: [7 as unknown as string] }, [['scopes[0]', 'api.invalid_scope']]],
    ['a scope twice', { scopes: ['book:read', 'BOOK:READ'] }, [['scopes[1]', 'api.duplicate_scope']]],
    [
      'too many scopes',
      { scopes: Array.from({ length: API_LIMITS.scopes + 1 }, (_, i) => `book:a${i}`) },
      [['scopes', 'api.invalid_scope']],
    ],
    [
      'a permissionsClaim that is not a boolean',
      { permissionsClaim: 'yes' as unknown as boolean },
      [['permissionsClaim', 'api.invalid_permissions_claim']],
    ],
    [
      'several problems',
      { name: '', audience: 'nope', scopes: ['x', 'book:read'] },
      [
        ['name', 'api.invalid_name'],
        ['audience', 'api.invalid_audience'],
        ['scopes[0]', 'api.invalid_scope'],
      ],
    ],
  ])('refuses %s', async (_, over, expected) => {
    expect(await issuesOf(apis.createApi('library', { ...catalog, ...over }, ctx))).toEqual(expected);
    expect((await store.getDomain('library')).revision).toBe(1);
  });

  it('keeps API names unique in a domain and audiences unique across the server', async () => {
    await apis.createApi('library', catalog, ctx);
    await expect(
      apis.createApi('library', { name: 'catalog', audience: 'https://other.example' }, ctx),
    ).rejects.toMatchObject({ constructor: ConflictError, code: 'api.exists' });
    await store.createDomain({ name: 'shop' }, ctx);
    await expect(apis.createApi('shop', { name: 'catalog', audience: catalog.audience }, ctx)).rejects.toMatchObject({
      code: 'api.audience_taken',
      message: expect.stringContaining('"https://catalog.library.example"'),
    });
    await apis.createApi('shop', { name: 'catalog', audience: 'https://shop.example' }, ctx);
    await expect(
      apis.updateApi('shop', 'catalog', { audience: catalog.audience }, undefined, ctx),
    ).rejects.toMatchObject({ code: 'api.audience_taken' });
    // Keeping one's own audience is no conflict.
    await apis.updateApi('shop', 'catalog', { audience: 'https://shop.example' }, 1, ctx);
  });

  it('lets the database decide a race for one audience, and says so', async () => {
    const domains = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'];
    for (const d of domains) await store.createDomain({ name: d }, ctx);
    const results = await Promise.allSettled(
      domains.map((d) => apis.createApi(d, { name: 'api', audience: 'https://race.example' }, ctx)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'api.audience_taken' });
    }
  });

  it('updates the fields present with If-Match; exactly one concurrent update wins', async () => {
    await apis.createApi('library', catalog, ctx);
    const w = await apis.updateApi('library', 'catalog', { scopes: ['book:delete'], permissionsClaim: true }, 1, ctx);
    expect(w.record).toMatchObject({
      audience: catalog.audience,
      scopes: ['book:delete'],
      permissionsClaim: true,
      revision: 2,
    });
    await expect(apis.updateApi('library', 'catalog', { scopes: [] }, 1, ctx)).rejects.toMatchObject({
      code: 'revision.stale',
      currentRevision: 2,
    });
    expect(await issuesOf(apis.updateApi('library', 'catalog', { scopes: ['nope'] }, 2, ctx))).toEqual([
      ['scopes[0]', 'api.invalid_scope'],
    ]);
    await expect(apis.updateApi('library', 'nope', {}, undefined, ctx)).rejects.toMatchObject({
      constructor: NotFoundError,
      code: 'api.not_found',
    });
    const winner = await expectOneWinner(8, (i) =>
      apis.updateApi('library', 'catalog', { scopes: [`book:a${i}`] }, 2, ctx),
    );
    expect((await apis.getApi('library', 'catalog')).scopes).toEqual([`book:a${winner}`]);
  });

  it('deletes an API and frees its audience; lists a page at a time', async () => {
    for (const n of ['b', 'c', 'a']) await apis.createApi('library', { name: n, audience: `urn:test:${n}` }, ctx);
    const page1 = await apis.listApis('library', { limit: 2 });
    const page2 = await apis.listApis('library', { cursor: page1.nextCursor });
    expect([...page1.items, ...page2.items].map((a) => a.name)).toEqual(['a', 'b', 'c']);
    await expect(apis.deleteApi('library', 'a', 3, ctx)).rejects.toMatchObject({ code: 'revision.stale' });
    await apis.deleteApi('library', 'a', 1, ctx);
    await expect(apis.getApi('library', 'a')).rejects.toMatchObject({ code: 'api.not_found' });
    await expect(apis.deleteApi('library', 'a', undefined, ctx)).rejects.toMatchObject({ code: 'api.not_found' });
    await apis.createApi('library', { name: 'z', audience: 'urn:test:a' }, ctx);
    await expect(apis.getApi('nope', 'a')).rejects.toMatchObject({ code: 'domain.not_found' });
  });

  it('audits every write in the domain', async () => {
    await apis.createApi('library', catalog, ctx);
    await apis.updateApi('library', 'catalog', { permissionsClaim: true }, 1, ctx);
    await apis.deleteApi('library', 'catalog', 2, ctx);
    const events = (await auditEvents(store)).slice(1);
    expect(events.map((e) => [e.action, e.domain, e.objectType, e.objectName])).toEqual([
      ['api.create', 'library', 'api', 'catalog'],
      ['api.update', 'library', 'api', 'catalog'],
      ['api.delete', 'library', 'api', 'catalog'],
    ]);
    expect(events[1]).toMatchObject({ before: { permissionsClaim: false }, after: { permissionsClaim: true } });
  });
});
