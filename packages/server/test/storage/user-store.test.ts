import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/storage/audit-log.js';
import { ConflictError, NotFoundError, PreconditionFailedError } from '../../src/storage/errors.js';
import { loadPrincipals } from '../../src/storage/load-domain-model.js';
import { Store } from '../../src/storage/store.js';
import { ServiceStore } from '../../src/storage/service-store.js';
import { principalOfUser, USER_LIMITS, UserStore, type UserInput } from '../../src/storage/user-store.js';
import { auditEvents, cheapHasher, ctx, expectOneWinner, issuesOf, NOW } from './store-fixtures.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from './test-databases.js';

const PASSWORD = 'correct horse battery';

// The storage contract for users (config-format.md `users`, api.md §2), on SQLite and PostgreSQL.
describe.each(TEST_DATABASE_KINDS)('user store on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  let users: UserStore;
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
    users = new UserStore(store, { hasher: cheapHasher() });
  });
  afterEach(async () => {
    await t.dispose();
  });

  const alice: UserInput = {
    name: 'Alice',
    email: 'Alice@Example.com',
    displayName: 'Alice Liddell',
    password: PASSWORD,
    externalIds: ['CiRmZDA2MTRk', 'okta|123'],
    attributes: { department: 'eng', clearance: 3 },
  };

  it('creates a user: name and email lower-cased, the password only as hasPassword', async () => {
    const record = await users.createUser(alice, ctx);
    expect(record).toEqual({
      name: 'alice',
      email: 'alice@example.com',
      displayName: 'Alice Liddell',
      externalIds: ['CiRmZDA2MTRk', 'okta|123'],
      attributes: { department: 'eng', clearance: 3 },
      hasPassword: true,
      revision: 1,
      createdAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    });
    expect(await users.getUser('ALICE')).toEqual(record);
    const row = await store.db.selectFrom('users').select('password_hash').executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=64,t=1,p=1\$/);
    expect(principalOfUser(record)).toEqual((await loadPrincipals(store.db))[0]);
    const bare = await users.createUser({ name: 'bob' }, ctx);
    expect(bare).toMatchObject({ email: null, displayName: null, externalIds: [], attributes: {}, hasPassword: false });
  });

  it('verifies passwords: right, wrong, unknown user, user without a password', async () => {
    await users.createUser(alice, ctx);
    await users.createUser({ name: 'nopass' }, ctx);
    expect(await users.verifyPassword('alice', PASSWORD)).toBe(true);
    expect(await users.verifyPassword('ALICE', PASSWORD)).toBe(true);
    expect(await users.verifyPassword('alice', 'correct horse batterY')).toBe(false);
    expect(await users.verifyPassword('alice', '')).toBe(false);
    expect(await users.verifyPassword('nobody', PASSWORD)).toBe(false);
    expect(await users.verifyPassword('not a name!', PASSWORD)).toBe(false);
    expect(await users.verifyPassword('nopass', PASSWORD)).toBe(false);
  });

  it('spends a real check on unknown users (a dummy hash), so timing does not tell', async () => {
    const hasher = cheapHasher();
    const calls: (string | null | undefined)[] = [];
    const verify = hasher.verify.bind(hasher);
    hasher.verify = (hashed, secret) => {
      calls.push(hashed);
      return verify(hashed, secret);
    };
    const timed = new UserStore(store, { hasher });
    expect(await timed.verifyPassword('nobody', PASSWORD)).toBe(false);
    expect(calls).toEqual([undefined]);
  });

  it('accepts an argon2id passwordHash as is and refuses any other hash', async () => {
    const hash = await cheapHasher().hash('imported secret');
    const r = await users.createUser({ name: 'imported', passwordHash: hash }, ctx);
    expect(r.hasPassword).toBe(true);
    expect(await users.verifyPassword('imported', 'imported secret')).toBe(true);
    const bad = [
      '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy', // bcrypt
      hash.replace('$argon2id$', '$argon2i$'),
      hash.replace('m=64', 'm=4194304'), // 4 GiB per check: refused
      'plain text',
    ];
    for (const passwordHash of bad) {
      expect(await issuesOf(users.createUser({ name: 'x', passwordHash }, ctx))).toEqual([
        ['passwordHash', 'user.invalid_password_hash'],
      ]);
    }
  });

  it.each<[string, Partial<UserInput>, [string, string][]]>([
    ['a name with a space', { name: 'Bad Name' }, [['name', 'user.invalid_name']]],
    ['an empty name', { name: '' }, [['name', 'user.invalid_name']]],
    ['a name too long', { name: 'a'.repeat(400) }, [['name', 'user.invalid_name']]],
    ['an email without @', { email: 'alice.example.com' }, [['email', 'user.invalid_email']]],
    ['an email with two @', { email: 'a@b@example.com' }, [['email', 'user.invalid_email']]],
    ['an email with a space', { email: 'al ice@example.com' }, [['email', 'user.invalid_email']]],
    ['an email ending in a dot', { email: 'alice@example.' }, [['email', 'user.invalid_email']]],
    ['an email too long', { email: `a@${'b'.repeat(260)}.com` }, [['email', 'user.invalid_email']]],
    ['a local part too long', { email: `${'a'.repeat(65)}@example.com` }, [['email', 'user.invalid_email']]],
    ['a display name too long', { displayName: 'x'.repeat(257) }, [['displayName', 'user.invalid_display_name']]],
    ['a display name with a newline', { displayName: 'a\nb' }, [['displayName', 'user.invalid_display_name']]],
    ['a password too short', { password: 'short' }, [['password', 'user.invalid_password']]],
    ['a password too long', { password: 'x'.repeat(1025) }, [['password', 'user.invalid_password']]],
    [
      'password and passwordHash',
      { password: PASSWORD, passwordHash: '$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA' },
      [['passwordHash', 'user.invalid_password']],
    ],
    ['an empty external id', { externalIds: [''] }, [['externalIds[0]', 'user.invalid_external_id']]],
    [
      'an external id too long',
      { externalIds: ['a', 'x'.repeat(257)] },
      [['externalIds[1]', 'user.invalid_external_id']],
    ],
    ['an external id twice', { externalIds: ['a', 'b', 'a'] }, [['externalIds[2]', 'user.duplicate_external_id']]],
    [
      'too many external ids',
      { externalIds: Array.from({ length: USER_LIMITS.externalIds + 1 }, (_, i) => `id${i}`) },
      [['externalIds', 'user.invalid_external_id']],
    ],
    [
      'attributes that are a list',
      { attributes: [] as unknown as Record<string, unknown> },
      [['attributes', 'user.invalid_attributes']],
    ],
    ['attributes too large', { attributes: { big: 'x'.repeat(70_000) } }, [['attributes', 'user.invalid_attributes']]],
    ['attributes JSON cannot hold', { attributes: { n: Number.NaN } }, [['attributes', 'user.invalid_attributes']]],
    [
      'several problems at once',
      { name: 'a b', email: 'nope', password: 'short' },
      [
        ['name', 'user.invalid_name'],
        ['email', 'user.invalid_email'],
        ['password', 'user.invalid_password'],
      ],
    ],
  ])('refuses %s with every issue and its path', async (_, over, expected) => {
    expect(await issuesOf(users.createUser({ name: 'valid', ...over }, ctx))).toEqual(expected);
    expect((await users.listUsers()).items).toEqual([]);
  });

  it('keeps names, emails (case-insensitively) and external ids unique', async () => {
    await users.createUser(alice, ctx);
    await expect(users.createUser({ name: 'ALICE' }, ctx)).rejects.toMatchObject({
      constructor: ConflictError,
      code: 'user.exists',
      message: expect.stringContaining('"alice"'),
    });
    await expect(users.createUser({ name: 'bob', email: 'ALICE@example.COM' }, ctx)).rejects.toMatchObject({
      code: 'user.email_taken',
      message: expect.stringContaining('alice@example.com'),
    });
    await expect(users.createUser({ name: 'bob', externalIds: ['x', 'okta|123'] }, ctx)).rejects.toMatchObject({
      code: 'user.external_id_taken',
      message: expect.stringContaining('"okta|123"'),
    });
    // External ids are opaque: another case is another id.
    await users.createUser({ name: 'bob', email: 'bob@example.com', externalIds: ['OKTA|123'] }, ctx);
    await expect(users.updateUser('bob', { email: 'alice@EXAMPLE.com' }, undefined, ctx)).rejects.toMatchObject({
      code: 'user.email_taken',
    });
    await expect(users.updateUser('bob', { externalIds: ['CiRmZDA2MTRk'] }, undefined, ctx)).rejects.toMatchObject({
      code: 'user.external_id_taken',
    });
    // A user keeps its own email and external ids through an update.
    const same = await users.updateUser('alice', { email: 'alice@example.com', externalIds: ['okta|123'] }, 1, ctx);
    expect(same).toMatchObject({ email: 'alice@example.com', externalIds: ['okta|123'], revision: 2 });
  });

  it('lets the database decide races on a unique key, and says which key lost', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        users.createUser({ name: `u${i}`, email: 'same@example.com', externalIds: [`e${i}`] }, ctx),
      ),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'user.email_taken' });
    }
    expect((await users.listUsers()).items).toHaveLength(1);
  });

  it('updates the fields present, with If-Match on the user revision', async () => {
    await users.createUser(alice, ctx);
    const r = await users.updateUser(
      'alice',
      { displayName: null, attributes: { clearance: 4 }, externalIds: ['new-id'] },
      1,
      ctx,
    );
    expect(r).toMatchObject({
      email: 'alice@example.com',
      displayName: null,
      attributes: { clearance: 4 },
      externalIds: ['new-id'],
      hasPassword: true,
      revision: 2,
    });
    // The old external ids are free again.
    await users.createUser({ name: 'carol', externalIds: ['okta|123'] }, ctx);
    const stale = await users.updateUser('alice', { email: null }, 1, ctx).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(PreconditionFailedError);
    expect(stale).toMatchObject({ code: 'revision.stale', currentRevision: 2 });
    await expect(users.updateUser('nobody', {}, undefined, ctx)).rejects.toMatchObject({
      constructor: NotFoundError,
      code: 'user.not_found',
    });
    expect(await issuesOf(users.updateUser('alice', { email: 'bad' }, 2, ctx))).toEqual([
      ['email', 'user.invalid_email'],
    ]);
    // Changing the password; then removing it.
    await users.updateUser('alice', { password: 'a brand new password' }, 2, ctx);
    expect(await users.verifyPassword('alice', PASSWORD)).toBe(false);
    expect(await users.verifyPassword('alice', 'a brand new password')).toBe(true);
    const removed = await users.updateUser('alice', { password: null }, 3, ctx);
    expect(removed.hasPassword).toBe(false);
    expect(await users.verifyPassword('alice', 'a brand new password')).toBe(false);
  });

  it('lets exactly one of concurrent updates from the same revision win', async () => {
    await users.createUser({ name: 'alice' }, ctx);
    const winner = await expectOneWinner(10, (i) => users.updateUser('alice', { displayName: `Alice ${i}` }, 1, ctx));
    expect(await users.getUser('alice')).toMatchObject({ displayName: `Alice ${winner}`, revision: 2 });
  });

  it('deletes a user with its external ids', async () => {
    await users.createUser(alice, ctx);
    await expect(users.deleteUser('alice', 5, ctx)).rejects.toMatchObject({
      code: 'revision.stale',
      currentRevision: 1,
    });
    await users.deleteUser('Alice', 1, ctx);
    await expect(users.getUser('alice')).rejects.toMatchObject({ code: 'user.not_found' });
    await expect(users.deleteUser('alice', undefined, ctx)).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.db.selectFrom('user_external_ids').selectAll().execute()).toEqual([]);
    await users.createUser(alice, ctx);
  });

  it('finds the user of a subject id by name, then external id, then email (api.md §2)', async () => {
    await users.createUser({ name: 'bob', email: 'bob@example.com' }, ctx);
    await users.createUser({ name: 'carol', externalIds: ['bob', 'dave@example.com'] }, ctx);
    await users.createUser({ name: 'dave', email: 'dave@example.com' }, ctx);
    expect((await users.findUserBySubject('bob'))?.name).toBe('bob');
    expect((await users.findUserBySubject('BOB'))?.name).toBe('bob');
    expect((await users.findUserBySubject('dave@example.com'))?.name).toBe('carol');
    expect((await users.findUserBySubject('BOB@example.com'))?.name).toBe('bob');
    expect((await users.findUserBySubject('Dave@Example.com'))?.name).toBe('dave');
    expect(await users.findUserBySubject('nobody')).toBeUndefined();
    expect(await users.findUserBySubject('')).toBeUndefined();
  });

  it('pages through users by name', async () => {
    for (const n of ['erin', 'bob', 'alice', 'dave', 'carol']) {
      await users.createUser({ name: n, externalIds: [`${n}-ext`] }, ctx);
    }
    const names: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await users.listUsers({ cursor, limit: 2 });
      expect(page.items.length).toBeLessThanOrEqual(2);
      for (const u of page.items) expect(u.externalIds).toEqual([`${u.name}-ext`]);
      names.push(...page.items.map((u) => u.name));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(names).toEqual(['alice', 'bob', 'carol', 'dave', 'erin']);
  });

  it('audits every user change with domain null, and never a password or its hash', async () => {
    await users.createUser(alice, ctx);
    await users.updateUser('alice', { password: 'another password here' }, 1, ctx);
    await users.updateUser('alice', { displayName: 'A.' }, 2, ctx);
    await users.deleteUser('alice', 3, ctx);
    await expect(users.createUser({ name: 'x', password: 'short' }, ctx)).rejects.toThrow();
    const events = await auditEvents(store);
    expect(events.map((e) => [e.action, e.domain, e.objectType, e.objectName, e.actor, e.requestId])).toEqual([
      ['user.create', null, 'user', 'alice', 'user.root', 'req-1'],
      ['user.update', null, 'user', 'alice', 'user.root', 'req-1'],
      ['user.update', null, 'user', 'alice', 'user.root', 'req-1'],
      ['user.delete', null, 'user', 'alice', 'user.root', 'req-1'],
    ]);
    expect(events[1]).toMatchObject({ before: { revision: 1 }, after: { revision: 2, passwordChanged: true } });
    expect(events[2]?.after).not.toHaveProperty('passwordChanged');
    expect(events[3]).toMatchObject({ before: { name: 'alice', revision: 3 }, after: null });
    const json = JSON.stringify(events);
    expect(json).not.toContain(PASSWORD);
    expect(json).not.toContain('another password here');
    expect(json).not.toContain('$argon2');
    expect(json).not.toMatch(/password_?hash/i);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, events: 4 });
  });

  it('composes with Store.transaction: users and domain objects commit together or not at all', async () => {
    await store.createDomain({ name: 'library' }, ctx);
    await expect(
      store.transaction(async (tx) => {
        await new UserStore(tx, { hasher: cheapHasher() }).createUser({ name: 'alice', email: 'a@example.com' }, ctx);
        await new ServiceStore(tx, { hasher: cheapHasher() }).createService('library', { name: 'indexer' }, ctx);
        await new UserStore(tx, { hasher: cheapHasher() }).createUser({ name: 'bob', email: 'A@example.com' }, ctx);
      }),
    ).rejects.toMatchObject({ code: 'user.email_taken' });
    expect((await users.listUsers()).items).toEqual([]);
    expect((await store.getDomain('library')).revision).toBe(1);
    await store.transaction(async (tx) => {
      await new UserStore(tx, { hasher: cheapHasher() }).createUser({ name: 'alice', password: PASSWORD }, ctx);
      await new ServiceStore(tx, { hasher: cheapHasher() }).createService('library', { name: 'indexer' }, ctx);
    });
    expect(await users.verifyPassword('alice', PASSWORD)).toBe(true);
    expect((await store.getDomain('library')).revision).toBe(2);
  });
});
