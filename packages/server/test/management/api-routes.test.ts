import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectFields, expectProblem, startManagementFixture, type ManagementFixture } from './management-fixture.js';

// api.md §3 `…/apis`: resource servers of a domain (objects `D:api.<name>`); an audience is
// unique across the server (RFC 8707 resource indicators name exactly one API).
let f: ManagementFixture;

beforeAll(async () => {
  f = await startManagementFixture(['user.alice', 'user.sam']);
  for (const [name, admin] of [
    ['library', 'user.alice'],
    ['shop', 'user.sam'],
  ] as const) {
    expect((await f.call('POST', '/v1/domains', 'user.root', { name, admins: [{ name: admin }] })).statusCode).toBe(
      201,
    );
  }
});
afterAll(() => f.close());

const URL = '/v1/domains/library/apis';
const CATALOG = {
  name: 'catalog',
  audience: 'https://api.library.example',
  scopes: ['book:read', 'book:update', 'library:role.readers'],
  permissionsClaim: true,
};

describe('/v1/domains/{domain}/apis', () => {
  it('needs a bearer token on every route', async () => {
    for (const [method, url, body] of [
      ['GET', URL, undefined],
      ['POST', URL, { name: 'x', audience: 'urn:x:y' }],
      ['GET', `${URL}/x`, undefined],
      ['PATCH', `${URL}/x`, {}],
      ['DELETE', `${URL}/x`, undefined],
    ] as const) {
      expectProblem(await f.call(method, url, undefined, body), 401, 'auth.required');
    }
  });

  it('creates, gets and lists APIs', async () => {
    const res = await f.call('POST', URL, 'user.alice', {
      ...CATALOG,
      scopes: ['Book:Read', ...CATALOG.scopes.slice(1)],
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe('/v1/domains/library/apis/catalog');
    expect(res.headers.etag).toBe('"1"');
    expect(res.json()).toEqual({
      ...CATALOG,
      domain: 'library',
      revision: 1,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    const minimal = await f.call('POST', URL, 'user.alice', { name: 'loans', audience: 'urn:library:loans' });
    expect(minimal.json()).toMatchObject({ scopes: [], permissionsClaim: false });
    const got = await f.call('GET', `${URL}/CATALOG`, 'user.alice');
    expect(got.statusCode).toBe(200);
    expect(got.headers.etag).toBe('"1"');
    const first = await f.call('GET', `${URL}?limit=1`, 'user.alice');
    expect(first.json().items.map((a: { name: string }) => a.name)).toEqual(['catalog']);
    const next = await f.call('GET', `${URL}?limit=1&cursor=${first.json().nextCursor}`, 'user.alice');
    expect(next.json()).toEqual({ items: [expect.objectContaining({ name: 'loans' })] });
  });

  it('updates with If-Match', async () => {
    const res = await f.call(
      'PATCH',
      `${URL}/catalog`,
      'user.alice',
      { scopes: ['book:read'], permissionsClaim: false },
      { 'if-match': '"1"' },
    );
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    expect(res.json()).toMatchObject({ scopes: ['book:read'], permissionsClaim: false, audience: CATALOG.audience });
    expectProblem(
      await f.call('PATCH', `${URL}/catalog`, 'user.alice', { scopes: [] }, { 'if-match': '"1"' }),
      412,
      'revision.stale',
    );
    // Keeping its own audience is no conflict.
    expect((await f.call('PATCH', `${URL}/catalog`, 'user.alice', { audience: CATALOG.audience })).statusCode).toBe(
      200,
    );
  });

  it('refuses bad requests with JSON pointers', async () => {
    expectProblem(await f.callRaw('POST', URL, 'user.alice', '[1,'), 400, 'request.malformed_json');
    expectFields(await f.call('POST', URL, 'user.alice', { name: 'x', audience: 'urn:example:x', colour: 'red' }), [
      ['/body/colour', 'field.unknown'],
    ]);
    expectFields(
      await f.call('POST', URL, 'user.alice', { name: 'x', audience: `https://x.example/${'a'.repeat(2048)}` }),
      [['/body/audience', 'field.too_long']],
    );
    expectFields(await f.call('POST', URL, 'user.alice', { name: 'x' }), [['/body/audience', 'field.required']]);
    expectFields(await f.call('POST', URL, 'user.alice', { name: 'x', audience: 'https://x.example/#f' }), [
      ['/body/audience', 'api.invalid_audience'],
    ]);
    expectFields(
      await f.call('POST', URL, 'user.alice', {
        name: 'x',
        audience: 'urn:example:x',
        scopes: ['read', 'book:*', 'a:b', 'A:B'],
      }),
      [
        ['/body/scopes/0', 'api.invalid_scope'],
        ['/body/scopes/1', 'api.invalid_scope'],
        ['/body/scopes/3', 'api.duplicate_scope'],
      ],
    );
    expectFields(await f.call('PATCH', `${URL}/catalog`, 'user.alice', { name: 'renamed' }), [
      ['/body/name', 'field.unknown'],
    ]);
    expectFields(await f.call('PATCH', `${URL}/catalog`, 'user.alice', { permissionsClaim: 'yes' }), [
      ['/body/permissionsClaim', 'field.type'],
    ]);
  });

  it('answers 409 for a taken name or audience, 404 for what does not exist', async () => {
    expectProblem(
      await f.call('POST', URL, 'user.alice', { name: 'Catalog', audience: 'urn:other:x' }),
      409,
      'api.exists',
    );
    const taken = await f.call('POST', '/v1/domains/shop/apis', 'user.sam', { name: 'x', audience: CATALOG.audience });
    expect(expectProblem(taken, 409, 'api.audience_taken').detail).toBe(
      'audience "https://api.library.example" is already the audience of API "catalog" of domain library',
    );
    expectProblem(
      await f.call('PATCH', `${URL}/loans`, 'user.alice', { audience: CATALOG.audience }),
      409,
      'api.audience_taken',
    );
    expectProblem(await f.call('GET', `${URL}/nope`, 'user.alice'), 404, 'api.not_found');
    expectProblem(await f.call('PATCH', `${URL}/nope`, 'user.alice', {}), 404, 'api.not_found');
    expectProblem(await f.call('DELETE', `${URL}/nope`, 'user.alice'), 404, 'api.not_found');
    expectProblem(await f.call('GET', '/v1/domains/nowhere/apis/x', 'user.root'), 404, 'domain.not_found');
  });

  it('keeps another domain’s admin out', async () => {
    for (const [method, url, body] of [
      ['GET', URL, undefined],
      ['POST', URL, { name: 'evil', audience: 'urn:evil:x' }],
      ['GET', `${URL}/catalog`, undefined],
      ['PATCH', `${URL}/catalog`, { scopes: [] }],
      ['DELETE', `${URL}/catalog`, undefined],
    ] as const) {
      const res = await f.call(method, url, 'user.sam', body);
      expect(expectProblem(res, 403, 'management.forbidden').detail).toMatch(/^user\.sam may not \w+ library:api/);
    }
  });

  it('deletes with If-Match, and the audience is free again', async () => {
    expectProblem(
      await f.call('DELETE', `${URL}/catalog`, 'user.alice', undefined, { 'if-match': '"1"' }),
      412,
      'revision.stale',
    );
    expect((await f.call('DELETE', `${URL}/catalog`, 'user.alice', undefined, { 'if-match': '"3"' })).statusCode).toBe(
      204,
    );
    expectProblem(await f.call('GET', `${URL}/catalog`, 'user.alice'), 404, 'api.not_found');
    const reuse = await f.call('POST', '/v1/domains/shop/apis', 'user.sam', { name: 'x', audience: CATALOG.audience });
    expect(reuse.statusCode).toBe(201);
    const audit = await f.call('GET', '/v1/audit?domain=library&limit=500', 'user.alice');
    expect((audit.json().items as { action: string }[]).map((e) => e.action)).toEqual(
      expect.arrayContaining(['api.create', 'api.update', 'api.delete']),
    );
  });
});
