import { EventEmitter } from 'node:events';
import { compileDomain } from '@gatehouse/engine';
import type { CatalogHolder, DomainRefresh } from '../../src/catalog/catalog-holder.js';
import type { ChangeLog, ChangeSource, ChangeTimers, ListenClient } from '../../src/catalog/change-listener.js';
import { CHANGE_CHANNEL, changeNoticeBody, type ChangeNotice } from '../../src/storage/change-notice.js';
import type { UserRecord } from '../../src/storage/user-store.js';

/** A promise and the functions that settle it. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

/** A promise settled by the test. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A stored user as UserStore returns it. */
export function userRecord(name: string, revision: number, extra: Partial<UserRecord> = {}): UserRecord {
  return {
    name,
    email: null,
    displayName: null,
    externalIds: [],
    attributes: {},
    hasPassword: false,
    revision,
    createdAt: '2026-06-01T00:00:00.000Z',
    updatedAt: '2026-06-01T00:00:00.000Z',
    ...extra,
  };
}

/**
 * A ChangeSource over an in-memory "database" (what the test says is stored), counting what is
 * loaded. Each load reads the state when it starts; `gate`, when set, holds its answer until
 * the test releases it; `failures` makes the next loads throw.
 */
export class FakeSource implements ChangeSource {
  readonly domains = new Map<string, number>();
  readonly users = new Map<string, UserRecord>();
  readonly services = new Set<string>();
  readonly loads: string[] = [];
  reloads = 0;
  failures = 0;
  gate: Promise<void> | undefined;

  constructor(private readonly catalog: CatalogHolder) {}

  async #enter(what: string): Promise<void> {
    this.loads.push(what);
    if (this.gate !== undefined) await this.gate;
    if (this.failures > 0) {
      this.failures--;
      throw new Error(`the database is down (loading ${what})`);
    }
  }

  async refreshDomain(name: string): Promise<DomainRefresh> {
    // Read first, answer later: what a load that is slow to return saw.
    const revision = this.domains.get(name);
    await this.#enter(`domain ${name}`);
    if (revision === undefined) return { outcome: 'missing' };
    this.catalog.update([compileDomain({ name, revision })]);
    return { outcome: 'swapped', revision };
  }

  async findUser(name: string): Promise<UserRecord | undefined> {
    const user = this.users.get(name);
    await this.#enter(`user ${name}`);
    return user;
  }

  async hasService(principal: string): Promise<boolean> {
    const has = this.services.has(principal);
    await this.#enter(`service ${principal}`);
    return has;
  }

  async reloadAll(): Promise<void> {
    await this.#enter('all');
    this.reloads++;
  }
}

/** Timers the test fires by hand: nothing waits for time. */
export class ManualTimers implements ChangeTimers {
  #scheduled: { run: () => void; ms: number; cancelled: boolean }[] = [];

  setTimeout(run: () => void, ms: number): unknown {
    const t = { run, ms, cancelled: false };
    this.#scheduled.push(t);
    return t;
  }

  clearTimeout(handle: unknown): void {
    (handle as { cancelled: boolean }).cancelled = true;
  }

  /** The delays of the timers not fired or cancelled yet. */
  get pending(): number[] {
    return this.#scheduled.filter((t) => !t.cancelled).map((t) => t.ms);
  }

  /** Fires every pending timer (of the delays `which` accepts; all by default). */
  fire(which: (ms: number) => boolean = () => true): void {
    const due = this.#scheduled.filter((t) => !t.cancelled && which(t.ms));
    this.#scheduled = this.#scheduled.filter((t) => !t.cancelled && !which(t.ms));
    for (const t of due) t.run();
  }
}

/** A log that keeps its lines. */
export class MemoryLog implements ChangeLog {
  readonly lines: { level: 'info' | 'warn'; message: string; fields: Record<string, unknown> }[] = [];
  info(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'info', message, fields });
  }
  warn(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'warn', message, fields });
  }
}

/** A listening session without a server: the test delivers notifications and drops the connection. */
export class FakeClient extends EventEmitter implements ListenClient {
  readonly queries: string[] = [];
  ended = false;
  connectError: Error | undefined;
  /** What a heartbeat (`select 1`) does: answer, never answer, or fail. */
  heartbeat: 'answer' | 'hang' | 'fail' = 'answer';

  async connect(): Promise<void> {
    if (this.connectError !== undefined) throw this.connectError;
  }

  query(text: string): Promise<void> {
    this.queries.push(text);
    if (text !== 'select 1' || this.heartbeat === 'answer') return Promise.resolve();
    if (this.heartbeat === 'fail') return Promise.reject(new Error('Connection terminated unexpectedly'));
    return new Promise(() => undefined);
  }

  async end(): Promise<void> {
    this.ended = true;
  }

  /** Delivers a raw payload on `channel`. */
  deliver(payload: string | undefined, channel = CHANGE_CHANNEL): void {
    this.emit('notification', { channel, payload });
  }

  /** Delivers `notice` as sent from `schema`. */
  notify(notice: ChangeNotice, schema: string): void {
    this.deliver(JSON.stringify({ ...changeNoticeBody(notice), s: schema }));
  }
}
