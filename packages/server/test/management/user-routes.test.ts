import { decide } from '@gatehouse/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectFields, expectProblem, startManagementFixture, type ManagementFixture } from './management-fixture.js';

// api.md §3 `/v1/users`: users are managed in the reserved domain `user` (objects
// `user:user.<name>`); a user may also read itself and change its own display name and password.
let f: ManagementFixture;
const BOB_PASSWORD = 'correct horse battery';

beforeAll(async () => {
  f = await startManagementFixture(['user.ursula', 'user.alice', 'user.bob', 'user.carol', 'user.nobody']);
  // ursula administers domain `user`; alice administers library, which says nothing about users.
  await f.makeAdmin('user', 'user.ursula');
  expect(
    (await f.call('POST', '/v1/domains', 'user.root', { name: 'library', admins: [{ name: 'user.alice' }] }))
      .statusCode,
  ).toBe(201);
});
afterAll(() => f.close());

describe('/v1/users', () => {
  it('needs a bearer token on every route', async () => {
    for (const [method, url] of [
      ['GET', '/v1/users'],
      ['POST', '/v1/users'],
      ['GET', '/v1/users/bob'],
      ['PATCH', '/v1/users/bob'],
      ['DELETE', '/v1/users/bob'],
    ] as const) {
      // A body the schema accepts: requests are validated before the handler authenticates.
      const res = await f.call(
        method,
        url,
        undefined,
        method === 'POST' ? { name: 'x' } : method === 'PATCH' ? {} : undefined,
      );
      expectProblem(res, 401, 'auth.required');
      expect(res.headers['www-authenticate']).toBe('Bearer realm="gatehouse"');
    }
  });

  it('creates a user: 201, Location, ETag, the password hashed and never shown', async () => {
    const res = await f.call('POST', '/v1/users', 'user.ursula', {
      name: 'Bob',
      email: 'Bob@Example.COM',
      displayName: 'Bob',
      password: BOB_PASSWORD,
      externalIds: ['github|17'],
      attributes: { department: 'eng' },
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe('/v1/users/bob');
    expect(res.headers.etag).toBe('"1"');
    expect(res.json()).toEqual({
      name: 'bob',
      email: 'bob@example.com',
      displayName: 'Bob',
      externalIds: ['github|17'],
      attributes: { department: 'eng' },
      hasPassword: true,
      revision: 1,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    expect(res.body).not.toContain(BOB_PASSWORD);
    expect(await f.gh.management.users.verifyPassword('bob', BOB_PASSWORD)).toBe(true);
    const carol = await f.call('POST', '/v1/users', 'user.root', { name: 'carol', email: 'carol@example.com' });
    expect(carol.statusCode).toBe(201);
    expect(carol.json().hasPassword).toBe(false);
  });

  it('gets and lists users, a page at a time', async () => {
    const one = await f.call('GET', '/v1/users/BOB', 'user.ursula');
    expect(one.statusCode).toBe(200);
    expect(one.headers.etag).toBe('"1"');
    expect(one.json()).toMatchObject({ name: 'bob', hasPassword: true });
    expect(Object.keys(one.json())).not.toContain('password');
    expect(Object.keys(one.json())).not.toContain('passwordHash');
    const first = await f.call('GET', '/v1/users?limit=1', 'user.root');
    expect(first.statusCode).toBe(200);
    expect(first.json().items.map((u: { name: string }) => u.name)).toEqual(['bob']);
    const next = await f.call('GET', `/v1/users?limit=1&cursor=${first.json().nextCursor}`, 'user.root');
    expect(next.json()).toEqual({ items: [expect.objectContaining({ name: 'carol' })] });
    expect(next.body).not.toContain('$argon2');
  });

  it('lets a user read itself and nobody else', async () => {
    expect((await f.call('GET', '/v1/users/bob', 'user.bob')).statusCode).toBe(200);
    const other = await f.call('GET', '/v1/users/carol', 'user.bob');
    expect(expectProblem(other, 403, 'management.forbidden').detail).toBe('user.bob may not read user:user.carol');
    // A domain's admin is no admin of users.
    expectProblem(await f.call('GET', '/v1/users/bob', 'user.alice'), 403, 'management.forbidden');
    expectProblem(await f.call('GET', '/v1/users', 'user.alice'), 403, 'management.forbidden');
    expectProblem(await f.call('GET', '/v1/users', 'user.bob'), 403, 'management.forbidden');
    expectProblem(await f.call('POST', '/v1/users', 'user.alice', { name: 'mallory' }), 403, 'management.forbidden');
    expectProblem(await f.call('POST', '/v1/users', 'user.bob', { name: 'mallory' }), 403, 'management.forbidden');
  });

  it('refuses bad requests with JSON pointers', async () => {
    const badJson = await f.callRaw('POST', '/v1/users', 'user.ursula', '{"name":');
    expectProblem(badJson, 400, 'request.malformed_json');
    expectFields(await f.call('POST', '/v1/users', 'user.ursula', { name: 'dave', colour: 'red' }), [
      ['/body/colour', 'field.unknown'],
    ]);
    expectFields(await f.call('POST', '/v1/users', 'user.ursula', { name: 'dave', displayName: 'd'.repeat(257) }), [
      ['/body/displayName', 'field.too_long'],
    ]);
    expectFields(await f.call('POST', '/v1/users', 'user.ursula', { name: 'dave', password: 'short' }), [
      ['/body/password', 'field.too_short'],
    ]);
    expectFields(await f.call('POST', '/v1/users', 'user.ursula', {}), [['/body/name', 'field.required']]);
    // The store's own checks come back with pointers too.
    const email = await f.call('POST', '/v1/users', 'user.ursula', { name: 'dave', email: 'not-an-address' });
    expectProblem(email, 400, 'user.invalid_email');
    expectFields(email, [['/body/email', 'user.invalid_email']]);
    const name = await f.call('POST', '/v1/users', 'user.ursula', { name: 'dave!' });
    expectFields(name, [['/body/name', 'user.invalid_name']]);
    const ids = await f.call('POST', '/v1/users', 'user.ursula', { name: 'dave', externalIds: ['a', 'a'] });
    expectFields(ids, [['/body/externalIds/1', 'user.duplicate_external_id']]);
    // Nullable fields (null clears them) also report the branches they did not match; the first
    // error is the one that says why.
    const patchLong = await f.call('PATCH', '/v1/users/bob', 'user.ursula', { displayName: 'd'.repeat(257) });
    expectProblem(patchLong, 400, 'request.invalid');
    expect(patchLong.json().errors[0]).toMatchObject({ pointer: '/body/displayName', code: 'field.too_long' });
    expectFields(await f.call('PATCH', '/v1/users/bob', 'user.ursula', { name: 'robert' }), [
      ['/body/name', 'field.unknown'],
    ]);
    expectProblem(
      await f.call('PATCH', '/v1/users/bob', 'user.ursula', {}, { 'if-match': 'soon' }),
      400,
      'request.invalid_if_match',
    );
  });

  it('answers 409 for a taken name, email or external id', async () => {
    expect(
      expectProblem(await f.call('POST', '/v1/users', 'user.ursula', { name: 'BOB' }), 409, 'user.exists').detail,
    ).toBe('user "bob" already exists');
    expectProblem(
      await f.call('POST', '/v1/users', 'user.ursula', { name: 'dave', email: 'BOB@example.com' }),
      409,
      'user.email_taken',
    );
    expectProblem(
      await f.call('POST', '/v1/users', 'user.ursula', { name: 'dave', externalIds: ['github|17'] }),
      409,
      'user.external_id_taken',
    );
    expectProblem(
      await f.call('PATCH', '/v1/users/carol', 'user.ursula', { email: 'bob@example.com' }),
      409,
      'user.email_taken',
    );
  });

  it('answers 404 for a user that does not exist (to those who may know)', async () => {
    expectProblem(await f.call('GET', '/v1/users/nobody', 'user.ursula'), 404, 'user.not_found');
    expectProblem(
      await f.call('PATCH', '/v1/users/nobody', 'user.ursula', { displayName: 'x' }),
      404,
      'user.not_found',
    );
    expectProblem(await f.call('DELETE', '/v1/users/nobody', 'user.ursula'), 404, 'user.not_found');
    // Someone without rights learns nothing: 403 whether the user exists or not.
    expectProblem(await f.call('GET', '/v1/users/nobody-else', 'user.bob'), 403, 'management.forbidden');
  });

  it('lets a user change its own display name, and nothing an admin decides', async () => {
    const res = await f.call('PATCH', '/v1/users/bob', 'user.bob', { displayName: 'Bobby' });
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    expect(res.json()).toMatchObject({ displayName: 'Bobby', email: 'bob@example.com', revision: 2 });
    for (const body of [{ email: 'b@example.com' }, { attributes: { department: 'ops' } }, { externalIds: [] }]) {
      const refused = await f.call('PATCH', '/v1/users/bob', 'user.bob', body);
      expectProblem(refused, 403, 'user.self_update_forbidden');
    }
    expectProblem(
      await f.call('PATCH', '/v1/users/carol', 'user.bob', { displayName: 'Caz' }),
      403,
      'management.forbidden',
    );
    expect((await f.call('GET', '/v1/users/bob', 'user.bob')).json().revision).toBe(2);
  });

  it('changes a user’s own password only with the right currentPassword (wrong: 403)', async () => {
    const missing = await f.call('PATCH', '/v1/users/bob', 'user.bob', { password: 'a new password' });
    expectProblem(missing, 400, 'user.current_password_required');
    expectFields(missing, [['/body/currentPassword', 'field.required']]);
    const wrong = await f.call('PATCH', '/v1/users/bob', 'user.bob', {
      password: 'a new password',
      currentPassword: 'not my password',
    });
    expectProblem(wrong, 403, 'user.wrong_password');
    expect(await f.gh.management.users.verifyPassword('bob', BOB_PASSWORD)).toBe(true);
    expect(await f.gh.management.users.verifyPassword('bob', 'a new password')).toBe(false);
    const ok = await f.call('PATCH', '/v1/users/bob', 'user.bob', {
      password: 'a new password',
      currentPassword: BOB_PASSWORD,
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ hasPassword: true, revision: 3 });
    expect(await f.gh.management.users.verifyPassword('bob', 'a new password')).toBe(true);
    expect(await f.gh.management.users.verifyPassword('bob', BOB_PASSWORD)).toBe(false);
    // Carol has no password: she cannot give one herself (nothing to prove it is her).
    expectProblem(
      await f.call('PATCH', '/v1/users/carol', 'user.carol', { password: 'carols password', currentPassword: 'x' }),
      403,
      'user.wrong_password',
    );
  });

  it('lets admins set any field and any password without currentPassword', async () => {
    const res = await f.call('PATCH', '/v1/users/bob', 'user.ursula', {
      password: 'reset by ursula',
      email: 'robert@example.com',
      attributes: { department: 'ops' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ email: 'robert@example.com', attributes: { department: 'ops' }, revision: 4 });
    expect(await f.gh.management.users.verifyPassword('bob', 'reset by ursula')).toBe(true);
    // A currentPassword that is sent is checked, admin or not.
    expectProblem(
      await f.call('PATCH', '/v1/users/bob', 'user.ursula', { password: 'another one!', currentPassword: 'wrong' }),
      403,
      'user.wrong_password',
    );
    const cleared = await f.call('PATCH', '/v1/users/bob', 'user.root', { password: null });
    expect(cleared.json().hasPassword).toBe(false);
    expect(await f.gh.management.users.verifyPassword('bob', 'reset by ursula')).toBe(false);
  });

  it('honours If-Match on PATCH and DELETE (412 when stale)', async () => {
    const current = await f.call('GET', '/v1/users/carol', 'user.ursula');
    const etag = current.headers.etag as string;
    const stale = await f.call('PATCH', '/v1/users/carol', 'user.ursula', { displayName: 'C' }, { 'if-match': '"99"' });
    expect(expectProblem(stale, 412, 'revision.stale').detail).toBe('user "carol" is at revision 1, not 99');
    const ok = await f.call('PATCH', '/v1/users/carol', 'user.ursula', { displayName: 'C' }, { 'if-match': etag });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers.etag).toBe('"2"');
    expectProblem(
      await f.call('DELETE', '/v1/users/carol', 'user.ursula', undefined, { 'if-match': etag }),
      412,
      'revision.stale',
    );
    // A user cannot delete itself; only administrators delete users.
    expectProblem(await f.call('DELETE', '/v1/users/carol', 'user.carol'), 403, 'management.forbidden');
    const deleted = await f.call('DELETE', '/v1/users/carol', 'user.ursula', undefined, { 'if-match': '"2"' });
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe('');
    expectProblem(await f.call('GET', '/v1/users/carol', 'user.ursula'), 404, 'user.not_found');
  });

  it('keeps the decision catalog’s view of users current (conditions see their attributes)', async () => {
    const policy = await f.call('PUT', '/v1/domains/library/policies/eng', 'user.alice', {
      assertions: [
        {
          effect: 'allow',
          action: 'read',
          resource: 'library:doc/*',
          principal: 'user.*',
          condition: 'subject.properties.department == "eng"',
        },
      ],
    });
    expect(policy.statusCode).toBe(200);
    const asks = (principal: string) =>
      decide(f.gh.catalog.catalog, { principal, action: 'read', resource: 'library:doc/1' }, { now: new Date() })
        .decision;
    expect(asks('user.erin')).toBe('deny');
    await f.call('POST', '/v1/users', 'user.ursula', { name: 'erin', attributes: { department: 'eng' } });
    expect(asks('user.erin')).toBe('allow');
    await f.call('PATCH', '/v1/users/erin', 'user.ursula', { attributes: { department: 'ops' } });
    expect(asks('user.erin')).toBe('deny');
    await f.call('PATCH', '/v1/users/erin', 'user.ursula', { attributes: { department: 'eng' } });
    expect(asks('user.erin')).toBe('allow');
    expect((await f.call('DELETE', '/v1/users/erin', 'user.ursula')).statusCode).toBe(204);
    expect(asks('user.erin')).toBe('deny');
  });

  it('audits every user change without a password or its hash', async () => {
    const res = await f.call('GET', '/v1/audit?limit=500', 'user.root');
    expect(res.statusCode).toBe(200);
    const events = res.json().items as { action: string; objectName: string; after: unknown }[];
    const bob = events.filter((e) => e.objectName === 'bob' && e.action.startsWith('user.'));
    expect(bob.map((e) => e.action)).toEqual([
      'user.create',
      'user.update',
      'user.update',
      'user.update',
      'user.update',
    ]);
    expect(bob[2]?.after).toMatchObject({ passwordChanged: true, hasPassword: true });
    for (const secret of [BOB_PASSWORD, 'a new password', 'reset by ursula', '$argon2']) {
      expect(res.body).not.toContain(secret);
    }
  });

  it('publishes the user routes in OpenAPI', async () => {
    const doc = (await f.gh.app.inject({ method: 'GET', url: '/v1/openapi.json' })).json();
    expect(Object.keys(doc.paths['/v1/users/{name}'])).toEqual(['get', 'patch', 'delete']);
    expect(doc.paths['/v1/users/{name}'].patch.responses['412'].content).toHaveProperty(['application/problem+json']);
    expect(doc.paths['/v1/users'].post.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
  });
});
