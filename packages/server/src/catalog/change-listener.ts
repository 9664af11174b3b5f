/**
 * Keeps this node's catalog and directory current with other nodes' writes (docs/scale-out.md).
 * On PostgreSQL every committed write sends a change notice (storage/change-notice.ts); a
 * ChangeListener holds one dedicated session that LISTENs for them, and a ChangeApplier reloads
 * just what each names — one domain, one user, one service — coalescing bursts. When the session
 * drops, the listener reconnects with backoff and reloads everything, since notices sent while
 * nobody listened are lost. SQLite has one node per file: nothing listens there.
 */

import type { PrincipalModel } from '@gatehouse/engine';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import {
  CHANGE_CHANNEL,
  parseChangeNotice,
  type ChangeNotice,
  type ReceivedChangeNotice,
} from '../storage/change-notice.js';
import { NotFoundError } from '../storage/errors.js';
import type { Database } from '../storage/schema.js';
import type { ServiceStore } from '../storage/service-store.js';
import { principalOfUser, type UserRecord, type UserStore } from '../storage/user-store.js';
import type { CatalogHolder, DomainRefresh } from './catalog-holder.js';
import type { Directory } from './directory.js';

/** Where the applier reads the current state of what a notice names. */
export interface ChangeSource {
  /** Loads domain `name` and swaps it into the catalog (CatalogHolder.refreshDomain). */
  refreshDomain(name: string): Promise<DomainRefresh>;
  /** User `name` as stored now; undefined when there is none. */
  findUser(name: string): Promise<UserRecord | undefined>;
  /** Whether a service with principal `principal` exists now. */
  hasService(principal: string): Promise<boolean>;
  /** Reloads the whole catalog and directory from one snapshot. */
  reloadAll(): Promise<void>;
}

/** The log lines the listener writes (the app's pino logger fits). */
export interface ChangeLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Timers, injected by tests (which never wait for time). */
export interface ChangeTimers {
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Limits and delays of the change feed. */
export const CHANGE_FEED_LIMITS = {
  /**
   * Distinct objects waiting to be reloaded; past this, one full reload replaces them all (a
   * burst that large is cheaper to reload whole, and memory stays bounded).
   */
  pending: 10_000,
  /** The first delay before reconnecting or retrying a failed reload, in ms; doubled each time. */
  initialBackoffMs: 100,
  /** The longest such delay, in ms. */
  maxBackoffMs: 10_000,
  /** Malformed notices logged one by one before the log shows only every 1,000th. */
  loggedMalformed: 10,
  /**
   * How often the listening session is asked `select 1`, in ms. TCP keep-alive alone may take
   * many minutes to notice a peer that vanished without closing (a partition, a failover).
   */
  heartbeatMs: 30_000,
  /** How long a heartbeat may take before the session counts as lost, in ms. */
  heartbeatTimeoutMs: 10_000,
} as const;

/** A log that writes nothing. */
export const silentLog: ChangeLog = { info: () => undefined, warn: () => undefined };

/** setTimeout and clearTimeout, unref'd. */
export const realTimers: ChangeTimers = {
  setTimeout: (run, ms) => {
    const t = setTimeout(run, ms);
    // A pending retry alone never keeps the process alive; the server (or a test) does.
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The delay before attempt `attempt` (0-based): doubling, capped, with jitter so that nodes spread out. */
function backoffMs(attempt: number, random: () => number): number {
  const base = Math.min(
    CHANGE_FEED_LIMITS.maxBackoffMs,
    CHANGE_FEED_LIMITS.initialBackoffMs * 2 ** Math.min(attempt, 20),
  );
  return Math.round(base * (0.5 + random() / 2));
}

/** What a notice about a domain or a user asks for, merged over a burst. */
interface PendingObject {
  /** The highest revision announced; undefined when only deletions were. */
  revision: number | undefined;
  /** Whether a deletion was announced (it may have been re-created since). */
  deleted: boolean;
}

/** Notices received and not applied yet, coalesced: one entry per object. */
class Pending {
  all = false;
  readonly domains = new Map<string, PendingObject>();
  readonly users = new Map<string, PendingObject>();
  readonly services = new Set<string>();

  get size(): number {
    return this.domains.size + this.users.size + this.services.size;
  }

  get empty(): boolean {
    return !this.all && this.size === 0;
  }

  add(notice: ChangeNotice): void {
    switch (notice.kind) {
      case 'all':
        this.all = true;
        return;
      case 'service':
        this.services.add(notice.principal.toLowerCase());
        return;
      case 'domain':
      case 'user': {
        const map = notice.kind === 'domain' ? this.domains : this.users;
        const name = notice.name.toLowerCase();
        const p = map.get(name) ?? { revision: undefined, deleted: false };
        if (notice.revision === null) p.deleted = true;
        else p.revision = Math.max(p.revision ?? 0, notice.revision);
        map.set(name, p);
        return;
      }
    }
  }

  /** Adds everything `other` holds (failed entries going back for a retry). */
  merge(other: Pending): void {
    if (other.all) this.all = true;
    for (const [map, from] of [
      [this.domains, other.domains],
      [this.users, other.users],
    ] as const) {
      for (const [name, p] of from) {
        const mine = map.get(name);
        if (mine === undefined) map.set(name, { ...p });
        else {
          mine.deleted ||= p.deleted;
          if (p.revision !== undefined) mine.revision = Math.max(mine.revision ?? 0, p.revision);
        }
      }
    }
    for (const s of other.services) this.services.add(s);
  }
}

/** Counters of a ChangeApplier, for tests and logs. */
export interface ChangeApplierStats {
  /** Notices pushed. */
  notices: number;
  /** Batches applied (each after a burst). */
  batches: number;
  /** Domains loaded from the database. */
  domainLoads: number;
  /** Users loaded. */
  userLoads: number;
  /** Services looked up. */
  serviceLoads: number;
  /** Whole reloads. */
  fullReloads: number;
  /** Loads that failed (and were retried). */
  failures: number;
}

/** Options of ChangeApplier. */
export interface ChangeApplierOptions {
  catalog: CatalogHolder;
  directory: Directory;
  source: ChangeSource;
  log?: ChangeLog;
  timers?: ChangeTimers;
  random?: () => number;
}

/**
 * Applies change notices to the catalog and the directory. Notices that arrive while a batch is
 * being applied wait and are merged: a burst of a hundred notices about one domain costs one
 * load. A notice whose revision this node already holds (its own write) costs nothing. Loads
 * that fail go back into the queue and are retried after a growing delay.
 */
export class ChangeApplier {
  readonly #catalog: CatalogHolder;
  readonly #directory: Directory;
  readonly #source: ChangeSource;
  readonly #log: ChangeLog;
  readonly #timers: ChangeTimers;
  readonly #random: () => number;
  #pending = new Pending();
  #draining: Promise<void> | undefined;
  #paused = 0;
  #closed = false;
  #retryTimer: unknown;
  #retryAttempt = 0;
  readonly #stats: ChangeApplierStats = {
    notices: 0,
    batches: 0,
    domainLoads: 0,
    userLoads: 0,
    serviceLoads: 0,
    fullReloads: 0,
    failures: 0,
  };

  constructor(options: ChangeApplierOptions) {
    this.#catalog = options.catalog;
    this.#directory = options.directory;
    this.#source = options.source;
    this.#log = options.log ?? silentLog;
    this.#timers = options.timers ?? realTimers;
    this.#random = options.random ?? Math.random;
  }

  /** A copy of the counters. */
  get stats(): ChangeApplierStats {
    return { ...this.#stats };
  }

  /** Queues a notice; it is applied right after the current batch (or at once when none runs). */
  push(notice: ChangeNotice): void {
    if (this.#closed) return;
    this.#stats.notices++;
    this.#pending.add(notice);
    if (this.#pending.size > CHANGE_FEED_LIMITS.pending) {
      this.#pending = new Pending();
      this.#pending.all = true;
    }
    this.#schedule();
  }

  /** Resolves once nothing is being applied (notices waiting for a retry's delay stay waiting). */
  async idle(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  /**
   * Runs `fn` (a whole reload) with no batch running: notices that arrive meanwhile wait and are
   * applied after it, so that they land on top of the reload rather than under it. Throws what
   * `fn` throws.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.#paused++;
    try {
      await this.idle();
      return await fn();
    } finally {
      this.#paused--;
      this.#schedule();
    }
  }

  /** Stops: drops what is waiting, waits for the batch in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retryTimer !== undefined) this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#pending = new Pending();
    await this.idle();
  }

  #schedule(): void {
    if (this.#draining !== undefined || this.#paused > 0 || this.#closed || this.#retryTimer !== undefined) return;
    if (this.#pending.empty) return;
    // Started from a microtask: every notice of the network read that delivered this one is
    // queued first, and lands in the same batch.
    this.#draining = Promise.resolve()
      .then(() => this.#drain())
      // #apply catches what loads throw; anything else is a bug, logged rather than left to
      // crash the process as an unhandled rejection.
      .catch((err: unknown) => this.#log.warn({ err }, 'change feed: applying notices failed'))
      .finally(() => {
        this.#draining = undefined;
        this.#schedule();
      });
  }

  async #drain(): Promise<void> {
    while (!this.#pending.empty && this.#paused === 0 && !this.#closed) {
      const batch = this.#pending;
      this.#pending = new Pending();
      this.#stats.batches++;
      const failed = await this.#apply(batch);
      if (failed.empty) {
        this.#retryAttempt = 0;
        continue;
      }
      // The database did not answer: try again later, with whatever arrives meanwhile.
      failed.merge(this.#pending);
      this.#pending = failed;
      if (this.#closed) return;
      const delay = backoffMs(this.#retryAttempt++, this.#random);
      this.#log.warn({ delayMs: delay, waiting: failed.size }, 'change feed: reloading failed; retrying');
      this.#retryTimer = this.#timers.setTimeout(() => {
        this.#retryTimer = undefined;
        this.#schedule();
      }, delay);
      return;
    }
  }

  /** Applies one batch; returns what failed. */
  async #apply(batch: Pending): Promise<Pending> {
    const failed = new Pending();
    const fail = (err: unknown, what: Record<string, unknown>, put: () => void): void => {
      this.#stats.failures++;
      this.#log.warn({ ...what, err }, 'change feed: could not reload');
      put();
    };
    if (batch.all) {
      try {
        this.#stats.fullReloads++;
        await this.#source.reloadAll();
        this.#log.info({}, 'change feed: reloaded everything');
      } catch (err) {
        fail(err, { all: true }, () => failed.merge(batch));
      }
      return failed;
    }
    for (const [name, p] of batch.domains) {
      try {
        await this.#applyDomain(name, p);
      } catch (err) {
        fail(err, { domain: name }, () => failed.domains.set(name, p));
      }
    }
    const principals: PrincipalModel[] = [];
    const removed: string[] = [];
    try {
      for (const [name, p] of batch.users) {
        try {
          await this.#applyUser(name, p, principals, removed);
        } catch (err) {
          fail(err, { user: name }, () => failed.users.set(name, p));
        }
      }
    } finally {
      // One copy of the principals map for the whole batch, not one per user.
      if (principals.length > 0 || removed.length > 0) this.#catalog.updatePrincipals(principals, removed);
    }
    for (const principal of batch.services) {
      try {
        this.#stats.serviceLoads++;
        if (await this.#source.hasService(principal)) this.#directory.addService(principal);
        else this.#directory.removeService(principal);
      } catch (err) {
        fail(err, { service: principal }, () => failed.services.add(principal));
      }
    }
    return failed;
  }

  async #applyDomain(name: string, p: PendingObject): Promise<void> {
    if (p.deleted) this.#dropDomain(name);
    // This node's own writes come back as notices too: held already, nothing to load.
    else if (p.revision !== undefined && (this.#catalog.revisionOf(name) ?? 0) >= p.revision) return;
    this.#stats.domainLoads++;
    const r = await this.#source.refreshDomain(name);
    if (r.outcome === 'missing') this.#dropDomain(name);
    else if (r.outcome === 'invalid') {
      this.#log.warn({ domain: name, ...r }, 'change feed: the stored domain does not compile; keeping the one held');
    }
  }

  #dropDomain(name: string): void {
    this.#catalog.remove([name]);
    // Its services were deleted with it (on delete cascade).
    this.#directory.removeServicesOf(name);
  }

  async #applyUser(name: string, p: PendingObject, principals: PrincipalModel[], removed: string[]): Promise<void> {
    if (p.deleted) {
      this.#directory.removeUser(name);
      removed.push(`user.${name}`);
    } else if (p.revision !== undefined && (this.#directory.findUserRevision(name) ?? 0) >= p.revision) return;
    this.#stats.userLoads++;
    const user = await this.#source.findUser(name);
    if (user === undefined) {
      this.#directory.removeUser(name);
      removed.push(`user.${name}`);
      // The directory's revision guards the catalog too: a load older than what a local write
      // put there changes neither.
    } else if (this.#directory.setUser(user)) principals.push(principalOfUser(user));
  }
}

/** The session the listener LISTENs on (a pg.Client of its own, not one of the pool's). */
export interface ListenClient {
  /** The server process of the session once connected (pg sets it; pg_stat_activity.pid). */
  readonly processID?: number | null;
  connect(): Promise<unknown>;
  query(text: string): Promise<unknown>;
  end(): Promise<unknown>;
  on(event: 'notification', listener: (message: { channel: string; payload?: string | undefined }) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  removeAllListeners(): unknown;
}

/** A listening session to the PostgreSQL database at `url`, with TCP keep-alive (a dead peer is noticed). */
export function pgListenClient(url: string): ListenClient {
  return new pg.Client({
    connectionString: url,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: 'gatehouse-change-listener',
  });
}

/** Counters of a ChangeListener. */
export interface ChangeListenerStats {
  /** Notices received on the channel. */
  received: number;
  /** Notices of other schemas, ignored. */
  foreign: number;
  /** Payloads that were not change notices, ignored. */
  malformed: number;
  /** Successful reconnections. */
  reconnects: number;
}

/** Options of ChangeListener. */
export interface ChangeListenerOptions {
  /** Makes a new, unconnected session (one per connection attempt). */
  newClient: () => ListenClient;
  /** This node's schema (`current_schema()`, `''` for none): notices of other schemas are ignored. */
  schema: string;
  applier: ChangeApplier;
  /** Reloads everything (on connecting: notices sent while nobody listened are lost). */
  reloadAll: () => Promise<void>;
  log?: ChangeLog;
  timers?: ChangeTimers;
  random?: () => number;
}

/** Thrown by ChangeListener.start when the first connection or load fails. */
export class ChangeFeedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChangeFeedError';
  }
}

/**
 * One LISTEN session on CHANGE_CHANNEL feeding a ChangeApplier. `start` connects, listens and
 * reloads everything; a heartbeat (`select 1` every 30 s, 10 s to answer) notices a session that
 * died silently; after a drop it reconnects with backoff (100 ms doubling to 10 s, with jitter)
 * and reloads everything again; `stop` closes it all.
 */
export class ChangeListener {
  readonly #options: ChangeListenerOptions;
  readonly #log: ChangeLog;
  readonly #timers: ChangeTimers;
  #client: ListenClient | undefined;
  #connecting: Promise<void> | undefined;
  #timer: unknown;
  #heartbeat: unknown;
  #attempt = 0;
  #started = false;
  #stopped = false;
  readonly #stats: ChangeListenerStats = { received: 0, foreign: 0, malformed: 0, reconnects: 0 };

  constructor(options: ChangeListenerOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLog;
    this.#timers = options.timers ?? realTimers;
  }

  /** Whether a session is listening now. */
  get listening(): boolean {
    return this.#client !== undefined;
  }

  /** The PostgreSQL backend pid of the listening session (`pg_stat_activity.pid`); undefined when none. */
  get backendPid(): number | undefined {
    return this.#client?.processID ?? undefined;
  }

  /** A copy of the counters. */
  get stats(): ChangeListenerStats {
    return { ...this.#stats };
  }

  /**
   * Connects, LISTENs, then reloads everything (notices that arrive meanwhile are applied
   * after it). Throws ChangeFeedError (the cause chained) when that fails: a node that cannot
   * follow changes should not start. Call once.
   */
  async start(): Promise<void> {
    if (this.#started) throw new ChangeFeedError('the change listener was started already');
    this.#started = true;
    this.#connecting = this.#connect();
    try {
      await this.#connecting;
    } catch (err) {
      this.#connecting = undefined;
      await this.stop();
      throw err;
    } finally {
      this.#connecting = undefined;
    }
  }

  /** Closes the session, cancels a pending reconnect, waits for the batch in flight. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stopHeartbeat();
    await this.#connecting?.catch(() => undefined);
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) await this.#close(client);
    await this.#options.applier.close();
  }

  async #connect(): Promise<void> {
    const client = this.#options.newClient();
    client.on('notification', (m) => this.#receive(m.channel, m.payload));
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, undefined));
    try {
      await client.connect();
      // A fixed identifier: nothing of the caller's is in this statement.
      await client.query(`listen ${CHANGE_CHANNEL}`);
    } catch (err) {
      await this.#close(client);
      throw new ChangeFeedError(`could not listen on ${CHANGE_CHANNEL}: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
    }
    if (this.#stopped) {
      await this.#close(client);
      return;
    }
    this.#client = client;
    this.#beat(client);
    try {
      // Listening first, loading second: a change committed in between is both in the load
      // and in a notice, never in neither.
      await this.#options.applier.exclusive(() => this.#options.reloadAll());
    } catch (err) {
      if (this.#client === client) {
        this.#client = undefined;
        this.#stopHeartbeat();
      }
      await this.#close(client);
      throw new ChangeFeedError(`could not reload after listening: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
    }
  }

  #receive(channel: string, payload: string | undefined): void {
    if (channel !== CHANGE_CHANNEL || this.#stopped) return;
    this.#stats.received++;
    let received: ReceivedChangeNotice;
    try {
      received = parseChangeNotice(payload ?? '');
    } catch (err) {
      const n = ++this.#stats.malformed;
      if (n <= CHANGE_FEED_LIMITS.loggedMalformed || n % 1000 === 0) {
        this.#log.warn({ err, malformed: n, payload: (payload ?? '').slice(0, 200) }, 'change feed: ignored a notice');
      }
      return;
    }
    // Channels are per database; other Gatehouse schemas in it send on the same one.
    if (received.schema !== this.#options.schema) {
      this.#stats.foreign++;
      return;
    }
    this.#options.applier.push(received.notice);
  }

  /** Schedules the next heartbeat of `client`: `select 1`, lost when it fails or takes too long. */
  #beat(client: ListenClient): void {
    this.#heartbeat = this.#timers.setTimeout(() => {
      if (client !== this.#client) return;
      let answered = false;
      this.#heartbeat = this.#timers.setTimeout(() => {
        if (!answered)
          this.#lost(client, new Error(`no answer to a heartbeat in ${CHANGE_FEED_LIMITS.heartbeatTimeoutMs} ms`));
      }, CHANGE_FEED_LIMITS.heartbeatTimeoutMs);
      client.query('select 1').then(
        () => {
          answered = true;
          if (client !== this.#client) return;
          this.#stopHeartbeat();
          this.#beat(client);
        },
        (err: unknown) => {
          answered = true;
          this.#lost(client, err instanceof Error ? err : new Error(String(err)));
        },
      );
    }, CHANGE_FEED_LIMITS.heartbeatMs);
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat !== undefined) this.#timers.clearTimeout(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  #lost(client: ListenClient, err: Error | undefined): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    this.#stopHeartbeat();
    void this.#close(client);
    if (this.#stopped) return;
    this.#log.warn({ err }, 'change feed: lost the listening session; reconnecting');
    this.#retry();
  }

  #retry(): void {
    // One reconnection at a time: a drop noticed while reconnecting schedules nothing more.
    if (this.#timer !== undefined || this.#stopped) return;
    const delay = backoffMs(this.#attempt++, this.#options.random ?? Math.random);
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      void this.#reconnect();
    }, delay);
  }

  async #reconnect(): Promise<void> {
    if (this.#stopped) return;
    this.#connecting = this.#connect();
    try {
      await this.#connecting;
      if (this.#stopped) return;
      this.#stats.reconnects++;
      this.#log.info({ attempts: this.#attempt }, 'change feed: listening again; reloaded everything');
      this.#attempt = 0;
    } catch (err) {
      if (this.#stopped) return;
      this.#log.warn({ err, attempt: this.#attempt }, 'change feed: reconnecting failed');
      this.#retry();
    } finally {
      this.#connecting = undefined;
    }
  }

  /** Ends a session for good: its events no longer reach the listener, its errors are swallowed. */
  async #close(client: ListenClient): Promise<void> {
    client.removeAllListeners();
    // An error after this (a reset while ending) must not become an uncaught 'error' event.
    client.on('error', () => undefined);
    await client.end().catch(() => undefined);
  }
}

/** Options of startChangeListener. */
export interface StartChangeListenerOptions {
  /** The PostgreSQL URL of the node's database. */
  url: string;
  /** The node's pool (with its schema): where reloads read. */
  db: Kysely<Database>;
  catalog: CatalogHolder;
  directory: Directory;
  users: Pick<UserStore, 'getUser'>;
  services: Pick<ServiceStore, 'findServiceByPrincipal'>;
  log?: ChangeLog;
  /** Default: pgListenClient(url). */
  newClient?: () => ListenClient;
  timers?: ChangeTimers;
}

/**
 * Reloads the catalog and the directory from one snapshot of the database. Throws what the
 * database throws (each of the two is replaced whole or not at all).
 */
export async function reloadEverything(
  db: Kysely<Database>,
  catalog: CatalogHolder,
  directory: Directory,
  log: ChangeLog = silentLog,
): Promise<void> {
  await db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute(async (tx) => {
      const { invalid } = await catalog.reload(tx);
      if (invalid.length > 0)
        log.warn({ domains: invalid.slice(0, 20) }, 'stored domains that do not compile were left out');
      await directory.reload(tx);
    });
}

/** The ChangeSource over a node's database and stores. */
export function storeChangeSource(
  options: Pick<StartChangeListenerOptions, 'db' | 'catalog' | 'directory' | 'users' | 'services' | 'log'>,
): ChangeSource {
  const { db, catalog, directory, users, services, log } = options;
  return {
    refreshDomain: (name) => catalog.refreshDomain(db, name),
    async findUser(name) {
      try {
        return await users.getUser(name);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    },
    hasService: async (principal) => (await services.findServiceByPrincipal(principal)) !== undefined,
    reloadAll: () => reloadEverything(db, catalog, directory, log),
  };
}

/**
 * Starts following other nodes' changes on PostgreSQL: learns the node's schema, connects a
 * dedicated session, LISTENs, and loads the catalog and the directory whole. Throws
 * ChangeFeedError when that fails. Stop it with `stop()` before closing the database.
 */
export async function startChangeListener(options: StartChangeListenerOptions): Promise<ChangeListener> {
  const { rows } = await sql<{ schema: string }>`select coalesce(current_schema(), '') as schema`.execute(options.db);
  const log = options.log ?? silentLog;
  const applier = new ChangeApplier({
    catalog: options.catalog,
    directory: options.directory,
    source: storeChangeSource(options),
    log,
    ...(options.timers !== undefined ? { timers: options.timers } : {}),
  });
  const listener = new ChangeListener({
    newClient: options.newClient ?? (() => pgListenClient(options.url)),
    schema: rows[0]?.schema ?? '',
    applier,
    reloadAll: () => reloadEverything(options.db, options.catalog, options.directory, log),
    log,
    ...(options.timers !== undefined ? { timers: options.timers } : {}),
  });
  await listener.start();
  return listener;
}
