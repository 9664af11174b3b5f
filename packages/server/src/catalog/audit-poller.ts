/**
 * The change feed of a SQLite node (docs/scale-out.md "One SQLite file"): SQLite has no
 * NOTIFY, but every write — the node's own, and those of operator commands run against the same
 * file (`gatehouse apply`, `keys rotate`…) — appends an event to the audit trail in its own
 * transaction. The poller reads the events appended since the last one it saw, every
 * `intervalMs`, and turns each into the change notice the PostgreSQL listener would have
 * received: the same ChangeApplier reloads just what changed. Reading the trail's tail is one
 * indexed query a second; nothing is read when nothing was written.
 */

import type { Kysely } from 'kysely';
import type { ChangeNotice } from '../storage/change-notice.js';
import type { Database } from '../storage/schema.js';
import { realTimers, silentLog, type ChangeApplier, type ChangeLog, type ChangeTimers } from './change-listener.js';

/** How often the audit trail is read, and how many events one read takes at most. */
export const AUDIT_POLL = { intervalMs: 1000, batch: 1000 } as const;

/**
 * A revision newer than any a domain or user can have: a notice made from an audit event does not
 * know the revision the write produced, so the object is always loaded (a load of what is held
 * already keeps it).
 */
const UNKNOWN_REVISION = Number.MAX_SAFE_INTEGER;

/** One audit event's part that says what changed. */
interface AuditRow {
  seq: number | string;
  domain: string | null;
  object_type: string;
  object_name: string;
  action: string;
}

/** The notices an audit event stands for (the object it changed, and its domain's revision). */
export function noticesOfAuditEvent(row: Omit<AuditRow, 'seq'>): ChangeNotice[] {
  const deleted = row.action.endsWith('.delete');
  if (row.object_type === 'user') {
    return [{ kind: 'user', name: row.object_name, revision: deleted ? null : UNKNOWN_REVISION }];
  }
  if (row.object_type === 'key') return [];
  if (row.object_type === 'domain') {
    return [{ kind: 'domain', name: row.object_name, revision: deleted ? null : UNKNOWN_REVISION }];
  }
  if (row.domain === null) return [{ kind: 'all' }];
  const notices: ChangeNotice[] = [{ kind: 'domain', name: row.domain, revision: UNKNOWN_REVISION }];
  if (row.object_type === 'service') notices.push({ kind: 'service', principal: `${row.domain}.${row.object_name}` });
  return notices;
}

/** Options of AuditPoller. */
export interface AuditPollerOptions {
  db: Kysely<Database>;
  applier: ChangeApplier;
  intervalMs?: number;
  log?: ChangeLog;
  timers?: ChangeTimers;
}

/** Follows the audit trail of a SQLite file; `stop()` before closing the database. */
export class AuditPoller {
  readonly #db: Kysely<Database>;
  readonly #applier: ChangeApplier;
  readonly #intervalMs: number;
  readonly #log: ChangeLog;
  readonly #timers: ChangeTimers;
  /** The last event seen. */
  #seq = 0;
  #timer: unknown;
  #polling: Promise<void> | undefined;
  #stopped = false;

  constructor(options: AuditPollerOptions) {
    this.#db = options.db;
    this.#applier = options.applier;
    this.#intervalMs = options.intervalMs ?? AUDIT_POLL.intervalMs;
    this.#log = options.log ?? silentLog;
    this.#timers = options.timers ?? realTimers;
  }

  /**
   * Starts from the trail's current end (call it before loading everything, so that nothing
   * written in between is missed: it is then read twice at worst). Throws what the query throws.
   */
  async start(): Promise<void> {
    const head = await this.#db
      .selectFrom('audit_events')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .executeTakeFirst();
    this.#seq = Number(head?.seq ?? 0);
    this.#arm();
  }

  /** Reads the events appended since the last poll and queues their notices; resolves when read. */
  poll(): Promise<void> {
    this.#polling ??= this.#read().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  /** Stops polling; waits for a read in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#polling;
    await this.#applier.close();
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      void this.poll().finally(() => this.#arm());
    }, this.#intervalMs);
  }

  async #read(): Promise<void> {
    try {
      const rows: AuditRow[] = await this.#db
        .selectFrom('audit_events')
        .select(['seq', 'domain', 'object_type', 'object_name', 'action'])
        .where('seq', '>', this.#seq)
        .orderBy('seq')
        .limit(AUDIT_POLL.batch + 1)
        .execute();
      if (rows.length === 0) return;
      this.#seq = Number((rows.at(-1) as AuditRow).seq);
      if (rows.length > AUDIT_POLL.batch) {
        // Far behind (a large apply): cheaper to reload whole than object by object.
        this.#applier.push({ kind: 'all' });
        const head = await this.#db
          .selectFrom('audit_events')
          .select((eb) => eb.fn.max('seq').as('seq'))
          .executeTakeFirst();
        this.#seq = Math.max(this.#seq, Number(head?.seq ?? 0));
        return;
      }
      for (const row of rows) for (const notice of noticesOfAuditEvent(row)) this.#applier.push(notice);
    } catch (err) {
      // The next poll tries again from the same event.
      this.#log.warn({ err }, 'change feed: could not read the audit trail');
    }
  }
}
