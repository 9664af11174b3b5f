import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectFields, expectProblem, startManagementFixture, type ManagementFixture } from './management-fixture.js';

// api.md §3 `…/clients`: OAuth clients of a domain (objects `D:client.<clientId>`); client ids
// are unique across the server; a generated secret is returned once and never again.
let f: ManagementFixture;
const secretsSeen: string[] = [];

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

const URL = '/v1/domains/library/clients';
const WEB = {
  clientId: 'Web-App',
  name: 'Library web',
  type: 'confidential',
  redirectUris: ['https://library.example/callback'],
  postLogoutRedirectUris: ['https://library.example/'],
  grantTypes: ['authorization_code', 'refresh_token'],
  firstParty: true,
};

describe('/v1/domains/{domain}/clients', () => {
  it('needs a bearer token on every route', async () => {
    for (const [method, url, body] of [
      ['GET', URL, undefined],
      ['POST', URL, { clientId: 'x', type: 'public' }],
      ['GET', `${URL}/x`, undefined],
      ['PATCH', `${URL}/x`, {}],
      ['POST', `${URL}/x/secret`, {}],
      ['DELETE', `${URL}/x`, undefined],
    ] as const) {
      expectProblem(await f.call(method, url, undefined, body), 401, 'auth.required');
    }
  });

  it('creates a confidential client and shows its generated secret once', async () => {
    const res = await f.call('POST', URL, 'user.alice', WEB);
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe('/v1/domains/library/clients/Web-App');
    expect(res.headers.etag).toBe('"1"');
    const body = res.json();
    expect(body).toEqual({
      ...WEB,
      domain: 'library',
      hasSecret: true,
      secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      revision: 1,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    secretsSeen.push(body.secret);
    expect(await f.gh.management.clients.verifyClientSecret('Web-App', body.secret)).toBe(true);
    const got = await f.call('GET', `${URL}/Web-App`, 'user.alice');
    expect(got.statusCode).toBe(200);
    expect(got.headers.etag).toBe('"1"');
    expect(got.json()).not.toHaveProperty('secret');
    const list = await f.call('GET', `${URL}?limit=10`, 'user.alice');
    expect(list.json().items.map((c: { clientId: string }) => c.clientId)).toEqual(['Web-App']);
    expect(list.body).not.toContain(body.secret);
  });

  it('creates a public client without a secret, and refuses one with', async () => {
    const res = await f.call('POST', URL, 'user.alice', {
      clientId: 'spa',
      type: 'public',
      redirectUris: ['http://127.0.0.1:3000/cb'],
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ hasSecret: false, grantTypes: ['authorization_code'], firstParty: false });
    expect(res.json()).not.toHaveProperty('secret');
    const withSecret = await f.call('POST', URL, 'user.alice', {
      clientId: 'spa2',
      type: 'public',
      secret: 'a public client cannot keep this',
      redirectUris: ['https://spa.example/cb'],
    });
    expectFields(withSecret, [['/body/secret', 'client.secret_not_allowed']]);
    expectProblem(await f.call('POST', `${URL}/spa/secret`, 'user.alice'), 400, 'client.secret_not_allowed');
  });

  it('rotates a confidential client’s secret', async () => {
    const old = secretsSeen[0] as string;
    expectProblem(
      await f.call('POST', `${URL}/Web-App/secret`, 'user.alice', undefined, { 'if-match': '"3"' }),
      412,
      'revision.stale',
    );
    const res = await f.call('POST', `${URL}/Web-App/secret`, 'user.alice', undefined, { 'if-match': '"1"' });
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    const secret = res.json().secret as string;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    secretsSeen.push(secret);
    expect(await f.gh.management.clients.verifyClientSecret('Web-App', old)).toBe(false);
    expect(await f.gh.management.clients.verifyClientSecret('Web-App', secret)).toBe(true);
    expect((await f.call('GET', `${URL}/Web-App`, 'user.alice')).body).not.toContain(secret);
    const chosen = await f.call('POST', `${URL}/Web-App/secret`, 'user.alice', { secret: 'my own client secret' });
    expect(chosen.json()).not.toHaveProperty('secret');
    secretsSeen.push('my own client secret');
    expectProblem(await f.call('POST', `${URL}/nope/secret`, 'user.alice'), 404, 'client.not_found');
  });

  it('updates a client with If-Match', async () => {
    const res = await f.call(
      'PATCH',
      `${URL}/spa`,
      'user.alice',
      { redirectUris: ['https://spa.example/cb'], name: 'SPA' },
      { 'if-match': '"1"' },
    );
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    expect(res.json()).toMatchObject({ name: 'SPA', redirectUris: ['https://spa.example/cb'], revision: 2 });
    expectProblem(
      await f.call('PATCH', `${URL}/spa`, 'user.alice', { name: 'x' }, { 'if-match': '"1"' }),
      412,
      'revision.stale',
    );
    // The rules between fields hold for the client as it would be after the change.
    expectFields(await f.call('PATCH', `${URL}/spa`, 'user.alice', { grantTypes: ['client_credentials'] }), [
      ['/body/grantTypes/0', 'client.invalid_grant_type'],
    ]);
  });

  it('refuses bad requests with JSON pointers', async () => {
    expectProblem(await f.callRaw('POST', URL, 'user.alice', '{"clientId"'), 400, 'request.malformed_json');
    expectFields(await f.call('POST', URL, 'user.alice', { clientId: 'x', type: 'public', colour: 'red' }), [
      ['/body/colour', 'field.unknown'],
    ]);
    expectFields(await f.call('POST', URL, 'user.alice', { clientId: 'x', type: 'public', name: 'n'.repeat(257) }), [
      ['/body/name', 'field.too_long'],
    ]);
    expectFields(await f.call('POST', URL, 'user.alice', { clientId: 'c'.repeat(257), type: 'public' }), [
      ['/body/clientId', 'field.too_long'],
    ]);
    expectFields(await f.call('POST', URL, 'user.alice', { clientId: 'x', type: 'secretive' }), [
      ['/body/type', 'field.not_allowed'],
    ]);
    expectFields(await f.call('POST', URL, 'user.alice', { clientId: 'a b', type: 'public' }), [
      ['/body/clientId', 'field.pattern'],
    ]);
    expectFields(
      await f.call('POST', URL, 'user.alice', { clientId: 'x', type: 'confidential', grantTypes: ['password'] }),
      [['/body/grantTypes/0', 'field.not_allowed']],
    );
    expectFields(
      await f.call('POST', URL, 'user.alice', {
        clientId: 'x',
        type: 'confidential',
        redirectUris: ['http://evil.example/cb', 'https://ok.example/#frag'],
      }),
      [
        ['/body/redirectUris/0', 'client.invalid_redirect_uri'],
        ['/body/redirectUris/1', 'client.invalid_redirect_uri'],
      ],
    );
    expectFields(await f.call('PATCH', `${URL}/spa`, 'user.alice', { type: 'confidential' }), [
      ['/body/type', 'field.unknown'],
    ]);
    expectFields(await f.call('PATCH', `${URL}/spa`, 'user.alice', { secret: 'x'.repeat(20) }), [
      ['/body/secret', 'field.unknown'],
    ]);
  });

  it('answers 409 for a client id taken anywhere, 404 for what does not exist', async () => {
    const dup = await f.call('POST', URL, 'user.alice', WEB);
    expect(expectProblem(dup, 409, 'client.exists').detail).toBe(
      'client id "Web-App" is taken by a client of domain library',
    );
    // Unique across the server, not per domain.
    expectProblem(
      await f.call('POST', '/v1/domains/shop/clients', 'user.sam', {
        ...WEB,
        redirectUris: ['https://shop.example/cb'],
      }),
      409,
      'client.exists',
    );
    // Client ids are case-sensitive (RFC 6749 §2.2 leaves them opaque).
    expect((await f.call('POST', URL, 'user.alice', { ...WEB, clientId: 'web-app' })).statusCode).toBe(201);
    expectProblem(await f.call('GET', `${URL}/nope`, 'user.alice'), 404, 'client.not_found');
    expectProblem(await f.call('PATCH', `${URL}/nope`, 'user.alice', {}), 404, 'client.not_found');
    expectProblem(await f.call('DELETE', `${URL}/nope`, 'user.alice'), 404, 'client.not_found');
    // A client of another domain is not found through this one.
    expectProblem(await f.call('GET', '/v1/domains/shop/clients/spa', 'user.root'), 404, 'client.not_found');
    expectProblem(await f.call('GET', '/v1/domains/nowhere/clients', 'user.root'), 404, 'domain.not_found');
  });

  it('keeps another domain’s admin out', async () => {
    for (const [method, url, body] of [
      ['GET', URL, undefined],
      ['POST', URL, { clientId: 'evil', type: 'public', redirectUris: ['https://evil.example/cb'] }],
      ['GET', `${URL}/Web-App`, undefined],
      ['PATCH', `${URL}/Web-App`, { redirectUris: ['https://evil.example/cb'] }],
      ['POST', `${URL}/Web-App/secret`, {}],
      ['DELETE', `${URL}/Web-App`, undefined],
    ] as const) {
      const res = await f.call(method, url, 'user.sam', body);
      expect(expectProblem(res, 403, 'management.forbidden').detail).toMatch(/^user\.sam may not \w+ library:client/);
    }
  });

  it('deletes with If-Match', async () => {
    expectProblem(
      await f.call('DELETE', `${URL}/spa`, 'user.alice', undefined, { 'if-match': '"1"' }),
      412,
      'revision.stale',
    );
    expect((await f.call('DELETE', `${URL}/spa`, 'user.alice', undefined, { 'if-match': '"2"' })).statusCode).toBe(204);
    expectProblem(await f.call('GET', `${URL}/spa`, 'user.alice'), 404, 'client.not_found');
  });

  it('never puts a secret or its hash in the audit trail', async () => {
    const res = await f.call('GET', '/v1/audit?domain=library&limit=500', 'user.alice');
    const actions = (res.json().items as { action: string }[]).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['client.create', 'client.rotate_secret', 'client.delete']));
    for (const secret of [...secretsSeen, '$argon2', 'secret_hash']) expect(res.body).not.toContain(secret);
  });
});
