import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CatalogHolder, type DomainRefresh } from '../../src/catalog/catalog-holder.js';
import { openDatabase } from '../../src/storage/open-database.js';
import { Store } from '../../src/storage/store.js';
import { ctx } from '../storage/store-fixtures.js';
import { deferred } from './change-feed-fakes.js';

// docs/scale-out.md "min_revision": a node whose index of a domain is older than a revision the
// client has seen loads that domain first. Here the "other node" is a second Store over the same
// file that writes without telling this node's catalog.

let dir: string;
let store: Store;
let catalog: CatalogHolder;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-ensure-'));
  store = new Store(await openDatabase({ kind: 'sqlite', path: join(dir, 'g.db') }));
  await store.createDomain({ name: 'library' }, ctx);
  catalog = new CatalogHolder();
  await catalog.reload(store.db);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Adds a role to `library` behind the catalog's back; returns the domain's new revision. */
async function writeElsewhere(role: string): Promise<number> {
  return (await store.createRole('library', { name: role, members: [{ name: 'user.alice' }] }, ctx)).revision;
}

describe('CatalogHolder.ensureRevision', () => {
  it('loads the domain when it holds an older revision, and only then', async () => {
    expect(catalog.revisionOf('library')).toBe(1);
    const r = await writeElsewhere('readers');
    expect(r).toBe(2);
    const refresh = vi.spyOn(catalog, 'refreshDomain');
    expect(await catalog.ensureRevision(store.db, 'Library', 2)).toBe(2);
    expect(catalog.catalog.domains.get('library')?.roles.has('readers')).toBe(true);
    expect(await catalog.ensureRevision(store.db, 'library', 1)).toBe(2);
    expect(await catalog.ensureRevision(store.db, 'library', 2)).toBe(2);
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it('keeps what it has when the database itself is older than asked', async () => {
    expect(await catalog.ensureRevision(store.db, 'library', 99)).toBe(1);
    expect(catalog.revisionOf('library')).toBe(1);
  });

  it('loads a domain it does not hold yet, and answers undefined for one that exists nowhere', async () => {
    const other = new Store(store.database);
    await other.createDomain({ name: 'shop' }, ctx);
    expect(catalog.revisionOf('shop')).toBeUndefined();
    expect(await catalog.ensureRevision(store.db, 'shop', 1)).toBe(1);
    expect(await catalog.ensureRevision(store.db, 'nowhere', 1)).toBeUndefined();
    expect(await catalog.ensureRevision(store.db, 'x'.repeat(300), 1)).toBeUndefined();
  });

  it('keeps a domain the database no longer has (its deletion notice drops it)', async () => {
    await store.deleteDomain('library', undefined, ctx);
    expect(await catalog.ensureRevision(store.db, 'library', 5)).toBe(1);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])('refuses min revision %s', async (n) => {
    await expect(catalog.ensureRevision(store.db, 'library', n)).rejects.toThrow(RangeError);
  });

  it('shares one load among concurrent callers', async () => {
    await writeElsewhere('readers');
    const refresh = vi.spyOn(catalog, 'refreshDomain');
    const results = await Promise.all(Array.from({ length: 20 }, () => catalog.ensureRevision(store.db, 'library', 2)));
    expect(results).toEqual(Array.from({ length: 20 }, () => 2));
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it('does not take an answer from a load that started before it was asked', async () => {
    await writeElsewhere('readers');
    const original = catalog.refreshDomain.bind(catalog);
    const gate = deferred();
    let calls = 0;
    vi.spyOn(catalog, 'refreshDomain').mockImplementation(async (db, name): Promise<DomainRefresh> => {
      calls++;
      if (calls > 1) return original(db, name);
      // The first load reads revision 2, then is slow to come back.
      const seen = await original(db, name);
      await gate.promise;
      return seen;
    });
    const first = catalog.ensureRevision(store.db, 'library', 2);
    await new Promise((resolve) => setImmediate(resolve));
    // A write commits on another node, and its client asks this node for it at once.
    expect(await writeElsewhere('writers')).toBe(3);
    const second = catalog.ensureRevision(store.db, 'library', 3);
    gate.resolve();
    expect(await first).toBeGreaterThanOrEqual(2);
    expect(await second).toBe(3);
    expect(calls).toBe(2);
  });

  it('loads one at a time for a stream of requests naming a revision nobody has', async () => {
    const refresh = vi.spyOn(catalog, 'refreshDomain');
    const asks = Array.from({ length: 50 }, () => catalog.ensureRevision(store.db, 'library', 1000));
    expect(new Set(await Promise.all(asks))).toEqual(new Set([1]));
    // The first caller's load, and one more for everyone who arrived while it ran.
    expect(refresh.mock.calls.length).toBeLessThanOrEqual(2);
  });

  it('fails with the database’s error, and leaves the catalog as it was', async () => {
    await writeElsewhere('readers');
    const broken = vi.spyOn(catalog, 'refreshDomain').mockRejectedValueOnce(new Error('connection terminated'));
    await expect(catalog.ensureRevision(store.db, 'library', 2)).rejects.toThrow('connection terminated');
    expect(catalog.revisionOf('library')).toBe(1);
    broken.mockRestore();
    expect(await catalog.ensureRevision(store.db, 'library', 2)).toBe(2);
  });
});

describe('CatalogHolder.refreshDomain', () => {
  it('swaps in the stored domain, keeps a newer one it holds, and drops nothing itself', async () => {
    await writeElsewhere('readers');
    expect(await catalog.refreshDomain(store.db, 'LIBRARY')).toEqual({ outcome: 'swapped', revision: 2 });
    expect(catalog.catalog.domains.get('library')?.roles.has('readers')).toBe(true);
    // A local write swapped in a revision the load did not see: the load's older one is not swapped in.
    const held = catalog.catalog.domains.get('library')!;
    catalog.update([{ ...held, revision: 10 }]);
    expect(await catalog.refreshDomain(store.db, 'library')).toEqual({ outcome: 'kept', revision: 10, stored: 2 });
    expect(catalog.revisionOf('library')).toBe(10);
    await store.deleteDomain('library', undefined, ctx);
    expect(await catalog.refreshDomain(store.db, 'library')).toEqual({ outcome: 'missing' });
    expect(catalog.revisionOf('library')).toBe(10);
  });
});
