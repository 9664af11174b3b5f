import { decide, createCatalog } from '@gatehouse/engine';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listAudit, verifyAuditChain } from '../../src/storage/audit-log.js';
import { ConflictError, NotFoundError, PreconditionFailedError } from '../../src/storage/errors.js';
import { loadDomainModel } from '../../src/storage/load-domain-model.js';
import { Store, ValidationError, type WriteContext } from '../../src/storage/store.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from './test-databases.js';

const ctx: WriteContext = { actor: 'user.root', requestId: 'req-1' };
const NOW = new Date('2026-06-01T00:00:00Z');

// The storage contract (architecture.md "Storage"), on SQLite and PostgreSQL alike.
describe.each(TEST_DATABASE_KINDS)('store on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
  });
  afterEach(async () => {
    await t.dispose();
  });

  async function library(): Promise<void> {
    await store.createDomain({ name: 'library', admins: [{ name: 'user.alice' }] }, ctx);
    await store.createRole(
      'library',
      { name: 'readers', members: [{ name: 'user.bob', expires: '2027-01-01T00:00:00Z' }] },
      ctx,
    );
  }

  it('creates a domain with its built-in admin role and policy, and decides from what it stored', async () => {
    const w = await store.createDomain(
      { name: 'Library', description: 'Public library', admins: [{ name: 'user.alice' }] },
      ctx,
    );
    expect(w.record).toMatchObject({
      name: 'library',
      description: 'Public library',
      enabled: true,
      revision: 1,
      createdAt: NOW.toISOString(),
    });
    const catalog = createCatalog([w.compiled!]);
    expect(
      decide(catalog, { principal: 'user.alice', action: 'anything', resource: 'library:x' }, { now: NOW }).decision,
    ).toBe('allow');
    const admin = await store.getRole('library', 'admin');
    expect(admin.members).toEqual([{ name: 'user.alice' }]);
    await expect(store.createDomain({ name: 'library' }, ctx)).rejects.toBeInstanceOf(ConflictError);
    await expect(store.createDomain({ name: 'library.archive.x' }, ctx)).rejects.toMatchObject({
      code: 'domain.parent_not_found',
    });
    await expect(store.createDomain({ name: 'Bad Name' }, ctx)).rejects.toThrow(/domain name "bad name"/);
  });

  it('bumps the domain revision with every change inside it', async () => {
    await library();
    expect((await store.getDomain('library')).revision).toBe(2);
    const w = await store.replaceRole('library', 'readers', { members: [{ name: 'user.carol' }] }, undefined, ctx);
    expect(w.revision).toBe(3);
    expect(w.record.revision).toBe(2);
    expect((await loadDomainModel(store.db, 'library'))?.revision).toBe(3);
  });

  it('refuses a stale If-Match revision, and exactly one of many concurrent updates wins', async () => {
    await library();
    await expect(store.replaceRole('library', 'readers', { members: [] }, 7, ctx)).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        store.replaceRole('library', 'readers', { members: [{ name: `user.u${i}` }] }, 1, ctx),
      ),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    for (const r of lost) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(PreconditionFailedError);
    const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<Store['replaceRole']>>>).value.record.members;
    expect((await store.getRole('library', 'readers')).members).toEqual(winner);
  });

  it('never stores an invalid domain and reports every issue with its path', async () => {
    await library();
    const err = await store
      .putPolicy(
        'library',
        {
          name: 'books',
          assertions: [
            { effect: 'allow', action: 'read', resource: 'library:book/*', role: 'librarians' },
            { effect: 'allow', action: 'read', resource: 'library:x', role: 'readers', condition: 'subject.id ==' },
          ],
        },
        undefined,
        ctx,
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues.map((i) => [i.path, i.code])).toEqual([
      ['assertions[0].role', 'role.not_found'],
      ['assertions[1].condition', 'policy.invalid_condition'],
    ]);
    await expect(store.getPolicy('library', 'books')).rejects.toBeInstanceOf(NotFoundError);
    expect((await store.getDomain('library')).revision).toBe(2);
    await expect(
      store.createRole('library', { name: 'a', members: [{ name: 'library:role.a' }] }, ctx),
    ).rejects.toMatchObject({ issues: [expect.objectContaining({ code: 'role.cycle' })] });
  });

  it('keeps policy versions with one active', async () => {
    await library();
    const a = { effect: 'allow' as const, action: 'read', resource: 'library:book/*', role: 'readers' };
    await store.putPolicy('library', { name: 'books', version: '1', assertions: [a] }, undefined, ctx);
    const v2 = await store.putPolicy(
      'library',
      { name: 'books', version: '2', assertions: [{ ...a, action: 'write' }] },
      undefined,
      ctx,
    );
    const versions = await store.getPolicy('library', 'books');
    expect(versions.map((v) => [v.version, v.active])).toEqual([
      ['2', true],
      ['1', false],
    ]);
    const catalog = createCatalog([v2.compiled!]);
    const ask = (action: string) =>
      decide(catalog, { principal: 'user.bob', action, resource: 'library:book/1' }, { now: NOW }).decision;
    expect([ask('read'), ask('write')]).toEqual(['deny', 'allow']);
    await expect(store.putPolicy('library', { name: 'admin', assertions: [] }, undefined, ctx)).rejects.toMatchObject({
      code: 'policy.builtin',
    });
    await store.deletePolicy('library', 'books', '1', undefined, ctx);
    expect((await store.listPolicies('library')).items.map((p) => `${p.name}@${p.version ?? ''}`)).toEqual([
      'admin@',
      'books@2',
    ]);
  });

  it('checks references across domains and refuses deletions that would break them', async () => {
    await library();
    await store.createDomain({ name: 'partner' }, ctx);
    await store.createGroup('partner', { name: 'staff', members: [{ name: 'user.pat' }] }, ctx);
    await expect(
      store.createRole('library', { name: 'x', members: [{ name: 'partner:group.nope' }] }, ctx),
    ).rejects.toMatchObject({
      issues: [expect.objectContaining({ code: 'group.not_found' })],
    });
    await store.createRole('library', { name: 'partners', members: [{ name: 'partner:group.staff' }] }, ctx);
    await store.createRole('library', { name: 'delegated', trust: 'partner' }, ctx);
    await expect(store.deleteGroup('partner', 'staff', undefined, ctx)).rejects.toMatchObject({
      code: 'group.referenced',
    });
    await expect(store.deleteDomain('partner', undefined, ctx)).rejects.toMatchObject({ code: 'domain.referenced' });
    await store.deleteRole('library', 'partners', undefined, ctx);
    await store.deleteRole('library', 'delegated', undefined, ctx);
    await store.deleteDomain('partner', undefined, ctx);
    await expect(store.getDomain('partner')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('protects reserved domains, the admin role and subdomains', async () => {
    await library();
    await store.createDomain({ name: 'library.archive' }, ctx);
    await expect(store.deleteDomain('library', undefined, ctx)).rejects.toMatchObject({
      code: 'domain.has_subdomains',
    });
    await expect(store.deleteRole('library', 'admin', undefined, ctx)).rejects.toMatchObject({ code: 'role.builtin' });
    await store.createDomain({ name: 'sys' }, ctx);
    await expect(store.deleteDomain('sys', undefined, ctx)).rejects.toMatchObject({ code: 'domain.reserved' });
  });

  it('pages through lists with a cursor', async () => {
    for (const n of ['d1', 'd2', 'd3', 'd1.a', 'd1.b']) await store.createDomain({ name: n }, ctx);
    const names: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await store.listDomains({ cursor, limit: 2 });
      names.push(...page.items.map((d) => d.name));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(names).toEqual(['d1', 'd1.a', 'd1.b', 'd2', 'd3']);
    expect((await store.listDomains({ parent: 'd1' })).items.map((d) => d.name)).toEqual(['d1.a', 'd1.b']);
  });

  it('audits every change in the same transaction, before and after included', async () => {
    await library();
    await store.updateDomain('library', { enabled: false }, 2, ctx);
    await expect(store.updateDomain('library', { enabled: true }, 2, ctx)).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    await expect(
      store.createRole('library', { name: 'bad', members: [{ name: 'no principal' }] }, ctx),
    ).rejects.toBeInstanceOf(ValidationError);
    const events = (await listAudit(store.db, { limit: 10 })).items;
    expect(events.map((e) => e.action)).toEqual(['domain.create', 'role.create', 'domain.update']);
    expect(events[2]).toMatchObject({
      actor: 'user.root',
      requestId: 'req-1',
      domain: 'library',
      before: { enabled: true },
      after: { enabled: false },
    });
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, events: 3 });
  });
});

describe.each(TEST_DATABASE_KINDS)('store transactions on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('composes several writes into one atomic change', async () => {
    const { compiled } = await store.transaction(async (s) => {
      await s.createDomain({ name: 'library' }, ctx);
      await s.createRole('library', { name: 'readers', members: [{ name: 'user.bob' }] }, ctx);
      await s.putPolicy(
        'library',
        { name: 'p', assertions: [{ effect: 'allow', action: 'read', resource: 'library:*', role: 'readers' }] },
        undefined,
        ctx,
      );
    });
    expect(compiled.size).toBe(0);
    expect((await store.getDomain('library')).revision).toBe(3);
    await expect(
      store.transaction(async (s) => {
        await s.createRole('library', { name: 'writers' }, ctx);
        await s.createRole('library', { name: 'readers' }, ctx);
      }),
    ).rejects.toBeInstanceOf(ConflictError);
    await expect(store.getRole('library', 'writers')).rejects.toBeInstanceOf(NotFoundError);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, events: 3 });
  });

  it('validates each domain once at the end when asked to, and rolls everything back when invalid', async () => {
    const { compiled } = await store.transaction(
      async (s) => {
        await s.createDomain({ name: 'library' }, ctx);
        // Refers to a role created only later in the same change: fine, validation waits.
        await s.putPolicy(
          'library',
          { name: 'p', assertions: [{ effect: 'allow', action: 'read', resource: 'library:*', role: 'readers' }] },
          undefined,
          ctx,
        );
        await s.createRole('library', { name: 'readers' }, ctx);
      },
      { deferValidation: true },
    );
    expect([...compiled.keys()]).toEqual(['library']);
    await expect(
      store.transaction(
        async (s) => {
          await s.createDomain({ name: 'shop' }, ctx);
          await s.putPolicy(
            'shop',
            { name: 'p', assertions: [{ effect: 'allow', action: 'read', resource: 'shop:*', role: 'ghosts' }] },
            undefined,
            ctx,
          );
        },
        { deferValidation: true },
      ),
    ).rejects.toMatchObject({
      issues: [expect.objectContaining({ path: 'policies[p].assertions[0].role', code: 'role.not_found' })],
    });
    await expect(store.getDomain('shop')).rejects.toBeInstanceOf(NotFoundError);
  });
});
