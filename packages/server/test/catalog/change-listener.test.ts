import { describe, expect, it } from 'vitest';
import { CatalogHolder } from '../../src/catalog/catalog-holder.js';
import {
  CHANGE_FEED_LIMITS,
  ChangeApplier,
  ChangeFeedError,
  ChangeListener,
} from '../../src/catalog/change-listener.js';
import { Directory } from '../../src/catalog/directory.js';
import { CHANGE_CHANNEL } from '../../src/storage/change-notice.js';
import { deferred, FakeClient, FakeSource, ManualTimers, MemoryLog } from './change-feed-fakes.js';

// docs/scale-out.md "When the connection drops": the listening session, its schema filter, and
// what happens when it is lost. A fake session stands in for PostgreSQL; timers fire by hand.

const SCHEMA = 'gh_node';

/** Whether a timer's delay is a reconnection's (not a heartbeat's). */
const reconnection = (ms: number): boolean =>
  ms !== CHANGE_FEED_LIMITS.heartbeatMs && ms !== CHANGE_FEED_LIMITS.heartbeatTimeoutMs;

/** Lets every pending callback run (no time passes). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setUp() {
  const catalog = new CatalogHolder();
  const directory = new Directory();
  const source = new FakeSource(catalog);
  const timers = new ManualTimers();
  const log = new MemoryLog();
  const applier = new ChangeApplier({ catalog, directory, source, timers, log, random: () => 1 });
  const clients: FakeClient[] = [];
  /** What the next new session does when connecting. */
  const nextConnectErrors: (Error | undefined)[] = [];
  const listener = new ChangeListener({
    newClient: () => {
      const c = new FakeClient();
      c.connectError = nextConnectErrors.shift();
      clients.push(c);
      return c;
    },
    schema: SCHEMA,
    applier,
    reloadAll: () => source.reloadAll(),
    log,
    timers,
    random: () => 1,
  });
  const current = (): FakeClient => clients[clients.length - 1] as FakeClient;
  return { catalog, source, timers, log, applier, listener, clients, current, nextConnectErrors };
}

describe('ChangeListener', () => {
  it('listens, then reloads everything, when started', async () => {
    const { source, listener, current } = setUp();
    await listener.start();
    expect(current().queries).toEqual([`listen ${CHANGE_CHANNEL}`]);
    expect(source.reloads).toBe(1);
    expect(listener.listening).toBe(true);
    await listener.stop();
  });

  it('applies the notices of its schema and ignores those of other schemas and channels', async () => {
    const { source, applier, listener, current } = setUp();
    await listener.start();
    source.domains.set('library', 2);
    current().notify({ kind: 'domain', name: 'library', revision: 2 }, 'gh_other');
    current().notify({ kind: 'domain', name: 'library', revision: 2 }, '');
    current().deliver('{"s":"gh_node","d":"library","r":2}', 'another_channel');
    await applier.idle();
    expect(source.loads).toEqual(['all']);
    current().notify({ kind: 'domain', name: 'library', revision: 2 }, SCHEMA);
    await applier.idle();
    expect(source.loads).toEqual(['all', 'domain library']);
    expect(listener.stats).toEqual({ received: 3, foreign: 2, malformed: 0, reconnects: 0 });
    await listener.stop();
  });

  it('ignores malformed payloads without throwing, and logs only the first ones of a flood', async () => {
    const { applier, listener, current, log } = setUp();
    await listener.start();
    const bad = ['', 'library:12', '{"s":"gh_node"}', 'x'.repeat(9000), undefined];
    for (const payload of bad) expect(() => current().deliver(payload)).not.toThrow();
    for (let i = 0; i < 2000; i++) current().deliver('nope');
    await applier.idle();
    expect(listener.stats.malformed).toBe(2005);
    const warned = log.lines.filter((l) => l.message.includes('ignored a notice'));
    expect(warned).toHaveLength(CHANGE_FEED_LIMITS.loggedMalformed + 2);
    // A logged payload is cut short.
    expect(warned.every((l) => String(l.fields.payload).length <= 200)).toBe(true);
    await listener.stop();
  });

  it('applies the notices that arrive during the first reload after it, not under it', async () => {
    const { source, listener, clients } = setUp();
    const gate = deferred();
    source.gate = gate.promise;
    const starting = listener.start();
    await flush();
    source.domains.set('library', 1);
    clients[0]!.notify({ kind: 'domain', name: 'library', revision: 1 }, SCHEMA);
    await flush();
    expect(source.loads).toEqual(['all']);
    source.gate = undefined;
    gate.resolve();
    await starting;
    await flush();
    expect(source.loads).toEqual(['all', 'domain library']);
    await listener.stop();
  });

  it.each(['error', 'end'] as const)(
    'reconnects with backoff after the session reports %s, and reloads everything',
    async (event) => {
      const { source, timers, log, listener, clients, nextConnectErrors } = setUp();
      await listener.start();
      const first = clients[0]!;
      if (event === 'error') first.emit('error', new Error('terminating connection due to administrator command'));
      else first.emit('end');
      expect(listener.listening).toBe(false);
      expect(first.ended).toBe(true);
      expect(timers.pending.filter(reconnection)).toEqual([CHANGE_FEED_LIMITS.initialBackoffMs]);
      expect(log.lines.some((l) => l.level === 'warn' && l.message.includes('lost'))).toBe(true);
      // The server is still down at the first attempt: the delay doubles.
      nextConnectErrors.push(new Error('connect ECONNREFUSED'));
      timers.fire(reconnection);
      await flush();
      expect(clients).toHaveLength(2);
      expect(clients[1]!.ended).toBe(true);
      expect(timers.pending.filter(reconnection)).toEqual([2 * CHANGE_FEED_LIMITS.initialBackoffMs]);
      timers.fire(reconnection);
      await flush();
      expect(clients).toHaveLength(3);
      expect(clients[2]!.queries).toEqual([`listen ${CHANGE_CHANNEL}`]);
      expect(listener.listening).toBe(true);
      // Notices sent while nobody listened are lost: everything was reloaded again.
      expect(source.reloads).toBe(2);
      expect(listener.stats.reconnects).toBe(1);
      // The old session's late events change nothing; an error there does not throw.
      expect(() => first.emit('error', new Error('late'))).not.toThrow();
      first.notify({ kind: 'all' }, SCHEMA);
      expect(timers.pending.filter(reconnection)).toEqual([]);
      await listener.stop();
    },
  );

  it('starts the delay again from the first step after a successful reconnection', async () => {
    const { timers, listener, clients } = setUp();
    await listener.start();
    clients[0]!.emit('end');
    timers.fire(reconnection);
    await flush();
    clients[1]!.emit('end');
    expect(timers.pending.filter(reconnection)).toEqual([CHANGE_FEED_LIMITS.initialBackoffMs]);
    await listener.stop();
  });

  it('reconnects when the reload after reconnecting fails', async () => {
    const { source, timers, listener, clients } = setUp();
    await listener.start();
    clients[0]!.emit('end');
    source.failures = 1;
    timers.fire(reconnection);
    await flush();
    expect(clients[1]!.ended).toBe(true);
    expect(timers.pending.filter(reconnection)).toHaveLength(1);
    timers.fire(reconnection);
    await flush();
    expect(listener.listening).toBe(true);
    expect(source.reloads).toBe(2);
    await listener.stop();
  });

  it('asks the session for a heartbeat every 30 s and keeps listening while it answers', async () => {
    const { timers, listener, current } = setUp();
    await listener.start();
    expect(timers.pending).toEqual([CHANGE_FEED_LIMITS.heartbeatMs]);
    timers.fire();
    await flush();
    expect(current().queries).toEqual([`listen ${CHANGE_CHANNEL}`, 'select 1']);
    expect(timers.pending).toEqual([CHANGE_FEED_LIMITS.heartbeatMs]);
    expect(listener.listening).toBe(true);
    await listener.stop();
  });

  it.each(['hang', 'fail'] as const)(
    'counts a session whose heartbeat does not answer (%s) as lost, and reconnects',
    async (heartbeat) => {
      const { timers, listener, clients, source } = setUp();
      await listener.start();
      clients[0]!.heartbeat = heartbeat;
      timers.fire();
      await flush();
      if (heartbeat === 'hang') {
        expect(timers.pending).toEqual([CHANGE_FEED_LIMITS.heartbeatTimeoutMs]);
        timers.fire();
      }
      expect(listener.listening).toBe(false);
      expect(clients[0]!.ended).toBe(true);
      expect(timers.pending).toEqual([CHANGE_FEED_LIMITS.initialBackoffMs]);
      timers.fire();
      await flush();
      expect(listener.listening).toBe(true);
      expect(source.reloads).toBe(2);
      await listener.stop();
    },
  );

  it('stops: closes the session, cancels a pending reconnection, and hears nothing more', async () => {
    const { source, timers, listener, clients } = setUp();
    await listener.start();
    clients[0]!.emit('end');
    expect(timers.pending.filter(reconnection)).toHaveLength(1);
    await listener.stop();
    // Nothing left scheduled: no reconnection, no heartbeat.
    expect(timers.pending).toEqual([]);
    await listener.stop();
    expect(clients).toHaveLength(1);
    clients[0]!.notify({ kind: 'all' }, SCHEMA);
    expect(source.reloads).toBe(1);

    const other = setUp();
    await other.listener.start();
    await other.listener.stop();
    expect(other.clients[0]!.ended).toBe(true);
    expect(other.listener.listening).toBe(false);
  });

  it('fails to start with ChangeFeedError, the cause chained, when it cannot listen or load', async () => {
    const a = setUp();
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    a.nextConnectErrors.push(refused);
    const err = await a.listener.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChangeFeedError);
    expect((err as Error).cause).toBe(refused);
    expect(a.clients[0]!.ended).toBe(true);
    expect(a.timers.pending).toEqual([]);

    const b = setUp();
    b.source.failures = 1;
    const failed = await b.listener.start().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(ChangeFeedError);
    expect((failed as Error).message).toContain('could not reload');
    expect(b.clients[0]!.ended).toBe(true);
    await expect(b.listener.start()).rejects.toThrow('started already');
  });
});
