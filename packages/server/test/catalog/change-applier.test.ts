import { compileDomain } from '@gatehouse/engine';
import { describe, expect, it, vi } from 'vitest';
import { CatalogHolder } from '../../src/catalog/catalog-holder.js';
import { ChangeApplier, CHANGE_FEED_LIMITS } from '../../src/catalog/change-listener.js';
import { Directory } from '../../src/catalog/directory.js';
import { deferred, FakeSource, ManualTimers, MemoryLog, userRecord } from './change-feed-fakes.js';

// docs/scale-out.md "What a node does with a notice": reload just what changed, once per burst.

/** Lets every pending callback run (no time passes). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setUp() {
  const catalog = new CatalogHolder();
  const directory = new Directory();
  const source = new FakeSource(catalog);
  const timers = new ManualTimers();
  const log = new MemoryLog();
  const applier = new ChangeApplier({ catalog, directory, source, timers, log, random: () => 1 });
  return { catalog, directory, source, timers, log, applier };
}

describe('ChangeApplier', () => {
  it('reloads a domain once for a burst of notices that arrive together', async () => {
    const { catalog, source, applier } = setUp();
    source.domains.set('library', 50).set('shop', 3);
    for (let r = 1; r <= 50; r++) applier.push({ kind: 'domain', name: 'library', revision: r });
    applier.push({ kind: 'domain', name: 'Shop', revision: 3 });
    await applier.idle();
    expect(source.loads).toEqual(['domain library', 'domain shop']);
    expect(applier.stats).toMatchObject({ notices: 51, batches: 1, domainLoads: 2 });
    expect([catalog.revisionOf('library'), catalog.revisionOf('shop')]).toEqual([50, 3]);
  });

  it('merges the notices that arrive during a reload into one more reload', async () => {
    const { catalog, source, applier } = setUp();
    source.domains.set('library', 1);
    const gate = deferred();
    source.gate = gate.promise;
    applier.push({ kind: 'domain', name: 'library', revision: 1 });
    await flush();
    expect(source.loads).toHaveLength(1);
    // A hundred writes commit while the first reload is under way.
    for (let r = 2; r <= 101; r++) applier.push({ kind: 'domain', name: 'library', revision: r });
    source.domains.set('library', 101);
    source.gate = undefined;
    gate.resolve();
    await applier.idle();
    expect(source.loads).toEqual(['domain library', 'domain library']);
    expect(applier.stats.batches).toBe(2);
    expect(catalog.revisionOf('library')).toBe(101);
  });

  it('loads nothing for a revision the catalog holds already (this node’s own write)', async () => {
    const { catalog, source, applier } = setUp();
    catalog.update([compileDomain({ name: 'library', revision: 7 })]);
    applier.push({ kind: 'domain', name: 'library', revision: 6 });
    applier.push({ kind: 'domain', name: 'library', revision: 7 });
    await applier.idle();
    expect(source.loads).toEqual([]);
    source.domains.set('library', 8);
    applier.push({ kind: 'domain', name: 'library', revision: 8 });
    await applier.idle();
    expect(source.loads).toEqual(['domain library']);
    expect(catalog.revisionOf('library')).toBe(8);
  });

  it('drops a deleted domain and its services, and takes a re-created one at its lower revision', async () => {
    const { catalog, directory, source, applier } = setUp();
    catalog.update([compileDomain({ name: 'library', revision: 9 }), compileDomain({ name: 'shop', revision: 2 })]);
    directory.addService('library.gateway');
    directory.addService('shop.till');
    applier.push({ kind: 'domain', name: 'library', revision: null });
    await applier.idle();
    expect(catalog.revisionOf('library')).toBeUndefined();
    expect([directory.hasService('library.gateway'), directory.hasService('shop.till')]).toEqual([false, true]);
    // Deleted and created again within one burst: the new domain starts at revision 1, below the
    // old one — still swapped in.
    catalog.update([compileDomain({ name: 'library', revision: 9 })]);
    source.domains.set('library', 1);
    applier.push({ kind: 'domain', name: 'library', revision: null });
    applier.push({ kind: 'domain', name: 'library', revision: 1 });
    await applier.idle();
    expect(catalog.revisionOf('library')).toBe(1);
  });

  it('drops a domain the database no longer has, though its deletion was not heard', async () => {
    const { catalog, source, applier } = setUp();
    catalog.update([compileDomain({ name: 'library', revision: 3 })]);
    applier.push({ kind: 'domain', name: 'library', revision: 4 });
    await applier.idle();
    expect(source.loads).toEqual(['domain library']);
    expect(catalog.revisionOf('library')).toBeUndefined();
  });

  it('applies user changes to the directory and the catalog’s principals, in one swap per batch', async () => {
    const { catalog, directory, source, applier } = setUp();
    source.users.set('alice', userRecord('alice', 2, { email: 'alice@x.org', attributes: { level: 3 } }));
    source.users.set('bob', userRecord('bob', 1, { externalIds: ['idp|b'] }));
    directory.setUser(userRecord('carol', 1));
    catalog.updatePrincipals([{ name: 'user.carol' }]);
    const swaps = vi.spyOn(catalog, 'updatePrincipals');
    applier.push({ kind: 'user', name: 'alice', revision: 2 });
    applier.push({ kind: 'user', name: 'bob', revision: 1 });
    applier.push({ kind: 'user', name: 'carol', revision: null });
    await applier.idle();
    expect(swaps).toHaveBeenCalledTimes(1);
    expect(catalog.catalog.principals.get('user.alice')).toEqual({ level: 3, email: 'alice@x.org' });
    expect(catalog.catalog.principals.has('user.carol')).toBe(false);
    expect([directory.findUser('alice@x.org'), directory.findUser('idp|b'), directory.findUser('carol')]).toEqual([
      'alice',
      'bob',
      undefined,
    ]);
    expect(source.loads).toEqual(['user alice', 'user bob', 'user carol']);
  });

  it('keeps a newer user that a local write put there over an older load', async () => {
    const { catalog, directory, source, applier } = setUp();
    directory.setUser(userRecord('alice', 5, { email: 'new@x.org' }));
    catalog.updatePrincipals([{ name: 'user.alice', attributes: { v: 'new' } }]);
    source.users.set('alice', userRecord('alice', 4, { email: 'old@x.org', attributes: { v: 'old' } }));
    applier.push({ kind: 'user', name: 'alice', revision: 6 });
    await applier.idle();
    expect(directory.findUser('new@x.org')).toBe('alice');
    expect(catalog.catalog.principals.get('user.alice')).toEqual({ v: 'new' });
    // A notice for what the directory holds loads nothing.
    applier.push({ kind: 'user', name: 'alice', revision: 5 });
    await applier.idle();
    expect(source.loads).toEqual(['user alice']);
  });

  it('adds and drops services as the database has them', async () => {
    const { directory, source, applier } = setUp();
    directory.addService('library.old');
    source.services.add('library.gateway');
    applier.push({ kind: 'service', principal: 'Library.Gateway' });
    applier.push({ kind: 'service', principal: 'library.old' });
    await applier.idle();
    expect([directory.hasService('library.gateway'), directory.hasService('library.old')]).toEqual([true, false]);
  });

  it('reloads everything for "all", and for a burst larger than its limit', async () => {
    const { source, applier } = setUp();
    applier.push({ kind: 'domain', name: 'library', revision: 1 });
    applier.push({ kind: 'all' });
    await applier.idle();
    expect(source.loads).toEqual(['all']);
    for (let i = 0; i <= CHANGE_FEED_LIMITS.pending; i++) applier.push({ kind: 'service', principal: `d.s${i}` });
    await applier.idle();
    expect(source.loads).toEqual(['all', 'all']);
    expect(applier.stats.serviceLoads).toBe(0);
  });

  it('retries a failed reload after a growing delay, with what arrived meanwhile', async () => {
    const { catalog, source, timers, log, applier } = setUp();
    source.domains.set('library', 2);
    source.failures = 2;
    applier.push({ kind: 'domain', name: 'library', revision: 2 });
    await applier.idle();
    expect(timers.pending).toEqual([CHANGE_FEED_LIMITS.initialBackoffMs]);
    expect(log.lines.map((l) => l.level)).toContain('warn');
    // Waits for the retry, even with new notices.
    applier.push({ kind: 'domain', name: 'library', revision: 3 });
    source.domains.set('library', 3);
    await applier.idle();
    expect(source.loads).toHaveLength(1);
    timers.fire();
    await applier.idle();
    expect(timers.pending).toEqual([2 * CHANGE_FEED_LIMITS.initialBackoffMs]);
    timers.fire();
    await applier.idle();
    expect(timers.pending).toEqual([]);
    expect(catalog.revisionOf('library')).toBe(3);
    expect(applier.stats).toMatchObject({ failures: 2, domainLoads: 3 });
  });

  it('holds notices back while a whole reload runs exclusively, and applies them after it', async () => {
    const { catalog, source, applier } = setUp();
    source.domains.set('library', 4);
    const reload = deferred();
    const running = applier.exclusive(() => reload.promise);
    applier.push({ kind: 'domain', name: 'library', revision: 4 });
    await flush();
    expect(source.loads).toEqual([]);
    reload.resolve();
    await running;
    await applier.idle();
    expect(source.loads).toEqual(['domain library']);
    expect(catalog.revisionOf('library')).toBe(4);
  });

  it('drops what waits and cancels a retry when closed', async () => {
    const { source, timers, applier } = setUp();
    source.failures = 1;
    applier.push({ kind: 'domain', name: 'library', revision: 1 });
    await applier.idle();
    expect(timers.pending).toHaveLength(1);
    await applier.close();
    expect(timers.pending).toEqual([]);
    applier.push({ kind: 'domain', name: 'library', revision: 2 });
    await applier.idle();
    expect(source.loads).toHaveLength(1);
  });
});
