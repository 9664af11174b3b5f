import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, PreconditionFailedError } from '../../src/storage/errors.js';
import { loadDomainModel } from '../../src/storage/load-domain-model.js';
import { ResourceStore, type ResourceInput } from '../../src/storage/resource-store.js';
import { Store } from '../../src/storage/store.js';
import { auditEvents, ctx, expectOneWinner, issuesOf, NOW } from './store-fixtures.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from './test-databases.js';

// The storage contract for registered resources (config-format.md `resources`), on both databases.
describe.each(TEST_DATABASE_KINDS)('resource store on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  let resources: ResourceStore;
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
    resources = new ResourceStore(store);
    await store.createDomain({ name: 'library' }, ctx);
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('creates and replaces a resource; each write bumps the domain revision and recompiles it', async () => {
    const w = await resources.putResource(
      'Library',
      { type: 'Book', id: 'Moby-Dick', properties: { owner: 'user.alice' } },
      undefined,
      ctx,
    );
    expect(w.record).toEqual({
      domain: 'library',
      type: 'book',
      id: 'moby-dick',
      properties: { owner: 'user.alice' },
      revision: 1,
      createdAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    });
    expect(w.revision).toBe(2);
    expect(w.compiled?.resources.get('book/moby-dick')).toEqual({ owner: 'user.alice' });
    const r = await resources.putResource('library', { type: 'book', id: 'MOBY-DICK' }, 1, ctx);
    expect(r.record).toMatchObject({ properties: {}, revision: 2 });
    expect(r.revision).toBe(3);
    expect((await loadDomainModel(store.db, 'library'))?.resources).toEqual([
      { type: 'book', id: 'moby-dick', properties: {} },
    ]);
    expect(await resources.getResource('library', 'BOOK', 'moby-dick')).toEqual(r.record);
  });

  it('honours If-Match: a stale revision, or one for a resource that does not exist, is refused', async () => {
    await resources.putResource('library', { type: 'book', id: '1' }, undefined, ctx);
    const stale = await resources.putResource('library', { type: 'book', id: '1' }, 7, ctx).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(PreconditionFailedError);
    expect(stale).toMatchObject({ code: 'revision.stale', currentRevision: 1 });
    await expect(resources.putResource('library', { type: 'book', id: '2' }, 1, ctx)).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect((await store.getDomain('library')).revision).toBe(2);
  });

  it('lets exactly one of concurrent replacements from the same revision win', async () => {
    await resources.putResource('library', { type: 'book', id: '1' }, undefined, ctx);
    const winner = await expectOneWinner(10, (i) =>
      resources.putResource('library', { type: 'book', id: '1', properties: { n: i } }, 1, ctx),
    );
    expect(await resources.getResource('library', 'book', '1')).toMatchObject({
      properties: { n: winner },
      revision: 2,
    });
  });

  it.each<[string, ResourceInput, [string, string][]]>([
    ['a type with a space', { type: 'rare book', id: '1' }, [['type', 'resource.invalid_type']]],
    ['a type with a slash', { type: 'book/x', id: '1' }, [['type', 'resource.invalid_type']]],
    ['a dotted type', { type: 'book.v2', id: '1' }, [['type', 'resource.invalid_type']]],
    ['an empty type', { type: '', id: '1' }, [['type', 'resource.invalid_type']]],
    ['a type too long', { type: 'b'.repeat(65), id: '1' }, [['type', 'resource.invalid_type']]],
    ['an empty id', { type: 'book', id: '' }, [['id', 'resource.invalid_id']]],
    ['an id with a space', { type: 'book', id: 'a b' }, [['id', 'resource.invalid_id']]],
    ['an id with a glob character', { type: 'book', id: 'rare-*' }, [['id', 'resource.invalid_id']]],
    ['a name longer than a resource may be', { type: 'book', id: 'x'.repeat(1020) }, [['id', 'resource.invalid_id']]],
    [
      'properties that are not an object',
      { type: 'book', id: '1', properties: 'x' as unknown as Record<string, unknown> },
      [['properties', 'resource.invalid_properties']],
    ],
    [
      'properties too large',
      { type: 'book', id: '1', properties: { x: 'y'.repeat(70_000) } },
      [['properties', 'resource.invalid_properties']],
    ],
    [
      'several problems',
      { type: 'a b', id: 'c d' },
      [
        ['type', 'resource.invalid_type'],
        ['id', 'resource.invalid_id'],
      ],
    ],
  ])('refuses %s', async (_, input, expected) => {
    expect(await issuesOf(resources.putResource('library', input, undefined, ctx))).toEqual(expected);
    expect((await store.getDomain('library')).revision).toBe(1);
  });

  it('lists by type and id, optionally of one type, a page at a time', async () => {
    for (const [type, id] of [
      ['shelf', 'a'],
      ['book', '2'],
      ['book', '1'],
      ['book', '10'],
      ['loan', 'x'],
    ] as const) {
      await resources.putResource('library', { type, id }, undefined, ctx);
    }
    const keys: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await resources.listResources('library', { cursor, limit: 2 });
      keys.push(...page.items.map((r) => `${r.type}/${r.id}`));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(keys).toEqual(['book/1', 'book/10', 'book/2', 'loan/x', 'shelf/a']);
    const books = await resources.listResources('library', { type: 'BOOK', limit: 2 });
    expect(books.items.map((r) => r.id)).toEqual(['1', '10']);
    const rest = await resources.listResources('library', { type: 'book', cursor: books.nextCursor });
    expect(rest.items.map((r) => r.id)).toEqual(['2']);
    expect(rest.nextCursor).toBeUndefined();
  });

  it('deletes a resource, with If-Match', async () => {
    await resources.putResource('library', { type: 'book', id: '1' }, undefined, ctx);
    await expect(resources.deleteResource('library', 'book', '1', 2, ctx)).rejects.toMatchObject({
      code: 'revision.stale',
    });
    const w = await resources.deleteResource('library', 'Book', '1', 1, ctx);
    expect(w).toMatchObject({ record: null, revision: 3 });
    expect(w.compiled?.resources.size).toBe(0);
    await expect(resources.getResource('library', 'book', '1')).rejects.toMatchObject({
      constructor: NotFoundError,
      code: 'resource.not_found',
    });
    await expect(resources.deleteResource('library', 'book', '1', undefined, ctx)).rejects.toMatchObject({
      code: 'resource.not_found',
    });
  });

  it('answers domain.not_found for a domain that does not exist', async () => {
    await expect(resources.putResource('nope', { type: 'book', id: '1' }, undefined, ctx)).rejects.toMatchObject({
      code: 'domain.not_found',
    });
    await expect(resources.getResource('nope', 'book', '1')).rejects.toMatchObject({ code: 'domain.not_found' });
    await expect(resources.listResources('nope')).rejects.toMatchObject({ code: 'domain.not_found' });
    await expect(resources.deleteResource('nope', 'book', '1', undefined, ctx)).rejects.toMatchObject({
      code: 'domain.not_found',
    });
  });

  it('audits every write in the domain with before and after', async () => {
    await resources.putResource('library', { type: 'book', id: '1', properties: { a: 1 } }, undefined, ctx);
    await resources.putResource('library', { type: 'book', id: '1', properties: { a: 2 } }, 1, ctx);
    await resources.deleteResource('library', 'book', '1', 2, ctx);
    const events = (await auditEvents(store)).slice(1);
    expect(events.map((e) => [e.action, e.domain, e.objectType, e.objectName])).toEqual([
      ['resource.create', 'library', 'resource', 'book/1'],
      ['resource.update', 'library', 'resource', 'book/1'],
      ['resource.delete', 'library', 'resource', 'book/1'],
    ]);
    expect(events[1]).toMatchObject({ before: { properties: { a: 1 } }, after: { properties: { a: 2 } } });
    expect(events[2]).toMatchObject({ before: { revision: 2 }, after: null });
  });
});
