import { decide } from '@gatehouse/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProblemError } from '../../src/http/problem.js';
import { expectFields, expectProblem, startManagementFixture, type ManagementFixture } from './management-fixture.js';

// api.md §3 registered resources (objects `D:resource.<type>/<id>`); semantics.md "Conditions":
// a registered resource's properties are what conditions see as resource.properties, so a
// write changes decisions on this node before it returns.
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
  const policy = await f.call('PUT', '/v1/domains/library/policies/owners', 'user.alice', {
    assertions: [
      {
        effect: 'allow',
        action: 'update',
        resource: 'library:book/*',
        principal: 'user.*',
        condition: 'resource.properties.owner == subject.id',
      },
    ],
  });
  expect(policy.statusCode).toBe(200);
});
afterAll(() => f.close());

const URL = '/v1/domains/library/resources';

/** May `principal` update library:book/`id`, as this node decides now? */
function mayUpdate(principal: string, id: string): string {
  return decide(
    f.gh.catalog.catalog,
    { principal, action: 'update', resource: `library:book/${id}` },
    { now: new Date() },
  ).decision;
}

describe('/v1/domains/{domain}/resources', () => {
  it('needs a bearer token on every route', async () => {
    for (const [method, url, body] of [
      ['GET', URL, undefined],
      ['GET', `${URL}/book/1`, undefined],
      ['PUT', `${URL}/book/1`, {}],
      ['DELETE', `${URL}/book/1`, undefined],
    ] as const) {
      expectProblem(await f.call(method, url, undefined, body), 401, 'auth.required');
    }
  });

  it('creates with PUT (201, Location), replaces with PUT (200), and decisions follow at once', async () => {
    expect(mayUpdate('user.bob', '42')).toBe('deny');
    const created = await f.call('PUT', `${URL}/Book/42`, 'user.alice', { properties: { owner: 'user.bob' } });
    expect(created.statusCode).toBe(201);
    expect(created.headers.location).toBe('/v1/domains/library/resources/book/42');
    expect(created.headers.etag).toBe('"1"');
    expect(created.json()).toEqual({
      domain: 'library',
      type: 'book',
      id: '42',
      properties: { owner: 'user.bob' },
      revision: 1,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    expect(mayUpdate('user.bob', '42')).toBe('allow');
    expect(mayUpdate('user.carol', '42')).toBe('deny');
    const replaced = await f.call('PUT', `${URL}/book/42`, 'user.alice', { properties: { owner: 'user.carol' } });
    expect(replaced.statusCode).toBe(200);
    expect(replaced.headers.location).toBeUndefined();
    expect(replaced.headers.etag).toBe('"2"');
    expect(mayUpdate('user.bob', '42')).toBe('deny');
    expect(mayUpdate('user.carol', '42')).toBe('allow');
    // No body properties: an empty object, and the condition no longer holds for anyone.
    const emptied = await f.call('PUT', `${URL}/book/42`, 'user.alice', {});
    expect(emptied.json()).toMatchObject({ properties: {}, revision: 3 });
    expect(mayUpdate('user.carol', '42')).toBe('deny');
    await f.call('PUT', `${URL}/book/42`, 'user.alice', { properties: { owner: 'user.carol' } });
  });

  it('gets and lists resources, by type and a page at a time', async () => {
    await f.call('PUT', `${URL}/book/7`, 'user.alice', { properties: { owner: 'user.dan' } });
    await f.call('PUT', `${URL}/dvd/1`, 'user.alice', { properties: {} });
    const got = await f.call('GET', `${URL}/book/42`, 'user.alice');
    expect(got.statusCode).toBe(200);
    expect(got.headers.etag).toBe('"4"');
    expect(got.json().properties).toEqual({ owner: 'user.carol' });
    const all = await f.call('GET', URL, 'user.alice');
    expect(all.json().items.map((r: { type: string; id: string }) => `${r.type}/${r.id}`)).toEqual([
      'book/42',
      'book/7',
      'dvd/1',
    ]);
    const books = await f.call('GET', `${URL}?type=BOOK&limit=1`, 'user.alice');
    expect(books.json().items.map((r: { id: string }) => r.id)).toEqual(['42']);
    const more = await f.call('GET', `${URL}?type=book&limit=1&cursor=${books.json().nextCursor}`, 'user.alice');
    expect(more.json()).toEqual({ items: [expect.objectContaining({ id: '7' })] });
    expect((await f.call('GET', `${URL}?type=cd`, 'user.alice')).json()).toEqual({ items: [] });
  });

  it('takes ids with a slash, percent-encoded in the path', async () => {
    const res = await f.call('PUT', `${URL}/page/guide%2Fintro`, 'user.alice', { properties: { n: 1 } });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ type: 'page', id: 'guide/intro' });
    expect(res.headers.location).toBe('/v1/domains/library/resources/page/guide%2Fintro');
    expect((await f.call('GET', res.headers.location as string, 'user.alice')).json().id).toBe('guide/intro');
  });

  it('honours If-Match: on replace, on delete, and on a resource that does not exist', async () => {
    const stale = await f.call('PUT', `${URL}/book/42`, 'user.alice', { properties: {} }, { 'if-match': '"1"' });
    expect(expectProblem(stale, 412, 'revision.stale').detail).toBe('resource book/42 is at revision 4, not 1');
    expectProblem(
      await f.call('PUT', `${URL}/book/new`, 'user.alice', { properties: {} }, { 'if-match': '"1"' }),
      412,
      'revision.stale',
    );
    const ok = await f.call(
      'PUT',
      `${URL}/book/42`,
      'user.alice',
      { properties: { owner: 'user.bob' } },
      { 'if-match': '"4"' },
    );
    expect(ok.statusCode).toBe(200);
    expect(mayUpdate('user.bob', '42')).toBe('allow');
    expectProblem(
      await f.call('DELETE', `${URL}/book/42`, 'user.alice', undefined, { 'if-match': '"4"' }),
      412,
      'revision.stale',
    );
    expect((await f.call('DELETE', `${URL}/book/42`, 'user.alice', undefined, { 'if-match': '"5"' })).statusCode).toBe(
      204,
    );
    expect(mayUpdate('user.bob', '42')).toBe('deny');
    expectProblem(await f.call('GET', `${URL}/book/42`, 'user.alice'), 404, 'resource.not_found');
  });

  it('refuses bad requests with JSON pointers', async () => {
    expectProblem(
      await f.callRaw('PUT', `${URL}/book/1`, 'user.alice', '{"properties":{'),
      400,
      'request.malformed_json',
    );
    expectFields(await f.call('PUT', `${URL}/book/1`, 'user.alice', { owner: 'user.bob' }), [
      ['/body/owner', 'field.unknown'],
    ]);
    expectFields(await f.call('PUT', `${URL}/book/1`, 'user.alice', { properties: [1] }), [
      ['/body/properties', 'field.type'],
    ]);
    expectFields(await f.call('PUT', `${URL}/${'t'.repeat(65)}/1`, 'user.alice', {}), [
      ['/params/type', 'field.too_long'],
    ]);
    expectFields(await f.call('PUT', `${URL}/book/b*`, 'user.alice', {}), [['/params/id', 'field.pattern']]);
    expectFields(await f.call('PUT', `${URL}/book/a%20b`, 'user.alice', {}), [['/params/id', 'field.pattern']]);
    expectFields(await f.call('PUT', `${URL}/bo.ok/1`, 'user.alice', {}), [['/params/type', 'field.pattern']]);
    // Fastify's maxParamLength (1,024) bounds a path parameter before the schema sees it.
    expectProblem(
      await f.call('PUT', `${URL}/book/${'i'.repeat(1025)}`, 'user.alice', {}),
      414,
      'request.uri_too_long',
    );
    // What only the store can tell (the whole name D:TYPE/ID is too long) points at the path too.
    const longId = await f.gh.management
      .putResource({ principal: 'user.alice' }, 'library', 'book', 'i'.repeat(1100), {}, undefined)
      .catch((e: unknown) => e);
    expect(longId).toBeInstanceOf(ProblemError);
    expect((longId as ProblemError).errors).toEqual([
      expect.objectContaining({ pointer: '/params/id', code: 'resource.invalid_id' }),
    ]);
    const big = await f.call('PUT', `${URL}/book/1`, 'user.alice', { properties: { blob: 'x'.repeat(70_000) } });
    expectFields(big, [['/body/properties', 'resource.invalid_properties']]);
    expectFields(await f.call('GET', `${URL}?colour=red`, 'user.alice'), [['/query/colour', 'field.unknown']]);
  });

  it('answers 404 for what does not exist', async () => {
    expectProblem(await f.call('GET', `${URL}/book/none`, 'user.alice'), 404, 'resource.not_found');
    expectProblem(await f.call('DELETE', `${URL}/book/none`, 'user.alice'), 404, 'resource.not_found');
    expectProblem(await f.call('GET', '/v1/domains/nowhere/resources', 'user.root'), 404, 'domain.not_found');
    expectProblem(
      await f.call('PUT', '/v1/domains/nowhere/resources/book/1', 'user.root', {}),
      404,
      'domain.not_found',
    );
  });

  it('keeps another domain’s admin out', async () => {
    for (const [method, url, body] of [
      ['GET', URL, undefined],
      ['GET', `${URL}/book/7`, undefined],
      ['PUT', `${URL}/book/7`, { properties: { owner: 'user.sam' } }],
      ['DELETE', `${URL}/book/7`, undefined],
    ] as const) {
      const res = await f.call(method, url, 'user.sam', body);
      expect(expectProblem(res, 403, 'management.forbidden').detail).toMatch(/^user\.sam may not \w+ library:resource/);
    }
    expect(mayUpdate('user.sam', '7')).toBe('deny');
    expect(mayUpdate('user.dan', '7')).toBe('allow');
  });

  it('audits resource writes', async () => {
    const audit = await f.call('GET', '/v1/audit?domain=library&limit=500', 'user.alice');
    const events = (audit.json().items as { action: string; objectName: string }[]).filter((e) =>
      e.action.startsWith('resource.'),
    );
    expect(events.filter((e) => e.objectName === 'book/42').map((e) => e.action)).toEqual([
      'resource.create',
      'resource.update',
      'resource.update',
      'resource.update',
      'resource.update',
      'resource.delete',
    ]);
  });
});
