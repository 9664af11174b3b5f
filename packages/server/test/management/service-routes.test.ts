import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectFields, expectProblem, startManagementFixture, type ManagementFixture } from './management-fixture.js';

// api.md §3 `…/services`: machine principals of a domain (objects `D:service.<name>`); a
// generated secret is returned once, by the call that made it, and never again.
let f: ManagementFixture;
const secretsSeen: string[] = [];
const ED25519 = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', use: 'sig', kid: 'k1' };

beforeAll(async () => {
  f = await startManagementFixture(['user.alice', 'user.sam']);
  for (const [name, admin] of [
    ['library', 'user.alice'],
    ['shop', 'user.sam'],
  ] as const) {
    const res = await f.call('POST', '/v1/domains', 'user.root', { name, admins: [{ name: admin }] });
    expect(res.statusCode).toBe(201);
  }
});
afterAll(() => f.close());

const URL = '/v1/domains/library/services';

describe('/v1/domains/{domain}/services', () => {
  it('needs a bearer token on every route', async () => {
    for (const [method, url, body] of [
      ['GET', URL, undefined],
      ['POST', URL, { name: 'x' }],
      ['GET', `${URL}/x`, undefined],
      ['PATCH', `${URL}/x`, {}],
      ['POST', `${URL}/x/secret`, {}],
      ['DELETE', `${URL}/x`, undefined],
    ] as const) {
      expectProblem(await f.call(method, url, undefined, body), 401, 'auth.required');
    }
  });

  it('creates a service and shows its generated secret once', async () => {
    const res = await f.call('POST', URL, 'user.alice', { name: 'Indexer', description: 'Builds the index' });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe('/v1/domains/library/services/indexer');
    expect(res.headers.etag).toBe('"1"');
    const body = res.json();
    expect(body).toEqual({
      domain: 'library',
      name: 'indexer',
      principal: 'library.indexer',
      description: 'Builds the index',
      publicKeys: [],
      hasSecret: true,
      secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      revision: 1,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    secretsSeen.push(body.secret);
    expect(await f.gh.management.services.verifyServiceSecret('library', 'indexer', body.secret)).toBe(true);
    const got = await f.call('GET', `${URL}/indexer`, 'user.alice');
    expect(got.statusCode).toBe(200);
    expect(got.headers.etag).toBe('"1"');
    expect(got.json()).not.toHaveProperty('secret');
    expect(got.json().hasSecret).toBe(true);
    const list = await f.call('GET', URL, 'user.alice');
    expect(list.json().items).toHaveLength(1);
    expect(list.body).not.toContain(body.secret);
  });

  it('shows no secret it did not generate', async () => {
    const keyOnly = await f.call('POST', URL, 'user.alice', { name: 'signer', publicKeys: [ED25519] });
    expect(keyOnly.statusCode).toBe(201);
    expect(keyOnly.json()).toMatchObject({ hasSecret: false, publicKeys: [ED25519] });
    expect(keyOnly.json()).not.toHaveProperty('secret');
    const given = 'a secret of my own choosing';
    secretsSeen.push(given);
    const chosen = await f.call('POST', URL, 'user.alice', { name: 'batch', secret: given });
    expect(chosen.json()).toMatchObject({ hasSecret: true });
    expect(chosen.json()).not.toHaveProperty('secret');
    expect(await f.gh.management.services.verifyServiceSecret('library', 'batch', given)).toBe(true);
    const none = await f.call('POST', URL, 'user.alice', { name: 'nosecret', secret: null });
    expect(none.json()).toMatchObject({ hasSecret: false });
    expect(none.json()).not.toHaveProperty('secret');
  });

  it('rotates a secret: the new one is shown once, the old one stops working', async () => {
    const old = secretsSeen[0] as string;
    const stale = await f.call('POST', `${URL}/indexer/secret`, 'user.alice', undefined, { 'if-match': '"7"' });
    expectProblem(stale, 412, 'revision.stale');
    const res = await f.call('POST', `${URL}/indexer/secret`, 'user.alice', undefined, { 'if-match': '"1"' });
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    const secret = res.json().secret as string;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(secret).not.toBe(old);
    secretsSeen.push(secret);
    expect(await f.gh.management.services.verifyServiceSecret('library', 'indexer', old)).toBe(false);
    expect(await f.gh.management.services.verifyServiceSecret('library', 'indexer', secret)).toBe(true);
    expect((await f.call('GET', `${URL}/indexer`, 'user.alice')).body).not.toContain(secret);
    // An empty JSON object works as well as no body; a chosen secret is not echoed.
    const again = await f.call('POST', `${URL}/indexer/secret`, 'user.alice', {});
    expect(again.json().secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    secretsSeen.push(again.json().secret);
    const chosen = await f.call('POST', `${URL}/indexer/secret`, 'user.alice', { secret: 'rotated to my choice' });
    expect(chosen.statusCode).toBe(200);
    expect(chosen.json()).not.toHaveProperty('secret');
    secretsSeen.push('rotated to my choice');
    expect(await f.gh.management.services.verifyServiceSecret('library', 'indexer', 'rotated to my choice')).toBe(true);
    expectFields(await f.call('POST', `${URL}/indexer/secret`, 'user.alice', { secret: 'short' }), [
      ['/body/secret', 'field.too_short'],
    ]);
    expectFields(await f.call('POST', `${URL}/indexer/secret`, 'user.alice', { colour: 'red' }), [
      ['/body/colour', 'field.unknown'],
    ]);
    expectProblem(await f.call('POST', `${URL}/nope/secret`, 'user.alice'), 404, 'service.not_found');
  });

  it('updates a service with If-Match', async () => {
    const res = await f.call('PATCH', `${URL}/signer`, 'user.alice', { description: 'Signs' }, { 'if-match': '"1"' });
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    expect(res.json()).toMatchObject({ description: 'Signs', publicKeys: [ED25519], revision: 2 });
    expectProblem(
      await f.call('PATCH', `${URL}/signer`, 'user.alice', { description: 'x' }, { 'if-match': '"1"' }),
      412,
      'revision.stale',
    );
    const cleared = await f.call('PATCH', `${URL}/signer`, 'user.alice', { description: null, publicKeys: [] });
    expect(cleared.json()).toMatchObject({ description: null, publicKeys: [], revision: 3 });
  });

  it('refuses bad requests with JSON pointers', async () => {
    expectProblem(await f.callRaw('POST', URL, 'user.alice', '{"name": "x",}'), 400, 'request.malformed_json');
    expectFields(await f.call('POST', URL, 'user.alice', { name: 'x', colour: 'red' }), [
      ['/body/colour', 'field.unknown'],
    ]);
    expectFields(await f.call('POST', URL, 'user.alice', { name: 'x', description: 'd'.repeat(1025) }), [
      ['/body/description', 'field.too_long'],
    ]);
    expectFields(await f.call('POST', URL, 'user.alice', { name: 'n'.repeat(65) }), [['/body/name', 'field.too_long']]);
    expectFields(await f.call('POST', URL, 'user.alice', { name: 'a.b' }), [['/body/name', 'service.invalid_name']]);
    const privateKey = await f.call('POST', URL, 'user.alice', {
      name: 'leaky',
      publicKeys: [{ ...ED25519, d: 'c2VjcmV0' }],
    });
    expectProblem(privateKey, 400, 'service.private_key');
    expectFields(privateKey, [['/body/publicKeys/0', 'service.private_key']]);
    expectFields(await f.call('PATCH', `${URL}/indexer`, 'user.alice', { secret: 'x'.repeat(20) }), [
      ['/body/secret', 'field.unknown'],
    ]);
    expectFields(await f.call('PATCH', `${URL}/indexer`, 'user.alice', { publicKeys: [{ kty: 'OKP' }] }), [
      ['/body/publicKeys/0/crv', 'service.invalid_public_key'],
      ['/body/publicKeys/0/x', 'service.invalid_public_key'],
    ]);
    expectProblem(
      await f.call('PATCH', `${URL}/indexer`, 'user.alice', {}, { 'if-match': 'W/x' }),
      400,
      'request.invalid_if_match',
    );
  });

  it('answers 409 for a taken name or client id, 404 for what does not exist', async () => {
    expect(
      expectProblem(await f.call('POST', URL, 'user.alice', { name: 'INDEXER' }), 409, 'service.exists').detail,
    ).toBe('service library.indexer already exists');
    const client = await f.call('POST', '/v1/domains/library/clients', 'user.alice', {
      clientId: 'library.crawler',
      type: 'confidential',
      grantTypes: ['client_credentials'],
    });
    expect(client.statusCode).toBe(201);
    expectProblem(await f.call('POST', URL, 'user.alice', { name: 'crawler' }), 409, 'service.client_id_taken');
    expectProblem(await f.call('GET', `${URL}/nope`, 'user.alice'), 404, 'service.not_found');
    expectProblem(await f.call('PATCH', `${URL}/nope`, 'user.alice', {}), 404, 'service.not_found');
    expectProblem(await f.call('DELETE', `${URL}/nope`, 'user.alice'), 404, 'service.not_found');
    expectProblem(await f.call('GET', '/v1/domains/nowhere/services', 'user.root'), 404, 'domain.not_found');
    expectProblem(
      await f.call('POST', '/v1/domains/nowhere/services', 'user.root', { name: 'x' }),
      404,
      'domain.not_found',
    );
    // Services cannot live in the domain of users.
    expectProblem(
      await f.call('POST', '/v1/domains/user/services', 'user.root', { name: 'x' }),
      400,
      'service.reserved_domain',
    );
  });

  it('keeps another domain’s admin out', async () => {
    for (const [method, url, body] of [
      ['GET', URL, undefined],
      ['POST', URL, { name: 'evil' }],
      ['GET', `${URL}/indexer`, undefined],
      ['PATCH', `${URL}/indexer`, { description: 'mine now' }],
      ['POST', `${URL}/indexer/secret`, {}],
      ['DELETE', `${URL}/indexer`, undefined],
    ] as const) {
      const res = await f.call(method, url, 'user.sam', body);
      expect(expectProblem(res, 403, 'management.forbidden').detail).toMatch(/^user\.sam may not \w+ library:service/);
    }
    expect((await f.call('GET', `${URL}/indexer`, 'user.root')).statusCode).toBe(200);
  });

  it('deletes with If-Match', async () => {
    expectProblem(
      await f.call('DELETE', `${URL}/batch`, 'user.alice', undefined, { 'if-match': '"5"' }),
      412,
      'revision.stale',
    );
    const res = await f.call('DELETE', `${URL}/batch`, 'user.alice', undefined, { 'if-match': '"1"' });
    expect(res.statusCode).toBe(204);
    expectProblem(await f.call('GET', `${URL}/batch`, 'user.alice'), 404, 'service.not_found');
  });

  it('never puts a secret or its hash in the audit trail', async () => {
    const res = await f.call('GET', '/v1/audit?domain=library&limit=500', 'user.alice');
    expect(res.statusCode).toBe(200);
    const actions = (res.json().items as { action: string }[]).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['service.create', 'service.rotate_secret', 'service.delete']));
    expect(secretsSeen.length).toBeGreaterThanOrEqual(5);
    for (const secret of [...secretsSeen, '$argon2', 'secret_hash']) expect(res.body).not.toContain(secret);
  });
});
