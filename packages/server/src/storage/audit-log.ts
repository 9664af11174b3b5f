/**
 * The audit trail: every control-plane change appends an event in the same transaction as the
 * change. Events are numbered without gaps and hash-chained (each hash covers the event and the
 * previous hash), so an edited, inserted or deleted event is detected by verifyAuditChain.
 */

import { createHash } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { canonicalJson } from './canonical-json.js';
import { GENESIS_HASH } from './migrations.js';
import type { AuditEventsTable, Database } from './schema.js';

/** What a change says about itself. */
export interface AuditEntry {
  actor: string;
  action: string;
  domain: string | null;
  objectType: string;
  objectName: string;
  before: unknown;
  after: unknown;
  requestId: string | undefined;
  at: Date;
}

/** An event as read back. */
export interface AuditEvent {
  seq: number;
  at: string;
  actor: string;
  action: string;
  domain: string | null;
  objectType: string;
  objectName: string;
  before: unknown;
  after: unknown;
  requestId: string | null;
  hash: string;
}

function eventHash(row: Omit<AuditEventsTable, 'hash'>): string {
  const body = canonicalJson({
    seq: Number(row.seq),
    at: row.at,
    actor: row.actor,
    action: row.action,
    domain: row.domain,
    objectType: row.object_type,
    objectName: row.object_name,
    before: row.before,
    after: row.after,
    requestId: row.request_id,
    prevHash: row.prev_hash,
  });
  return createHash('sha256').update(body).digest('hex');
}

/**
 * Appends an event inside `tx`. Taking the next number updates the chain's head row, which
 * serialises concurrent appends (a row lock on PostgreSQL, the single writer on SQLite).
 */
export async function appendAudit(tx: Transaction<Database> | Kysely<Database>, entry: AuditEntry): Promise<number> {
  const head = await tx
    .updateTable('audit_head')
    .set({ seq: sql`seq + 1` })
    .where('id', '=', 1)
    .returning(['seq', 'hash'])
    .executeTakeFirstOrThrow();
  const row: Omit<AuditEventsTable, 'hash'> = {
    seq: Number(head.seq),
    at: entry.at.toISOString(),
    actor: entry.actor,
    action: entry.action,
    domain: entry.domain,
    object_type: entry.objectType,
    object_name: entry.objectName,
    before: entry.before === undefined ? null : canonicalJson(entry.before),
    after: entry.after === undefined ? null : canonicalJson(entry.after),
    request_id: entry.requestId ?? null,
    prev_hash: head.hash,
  };
  const hash = eventHash(row);
  await tx
    .insertInto('audit_events')
    .values({ ...row, hash })
    .execute();
  await tx.updateTable('audit_head').set({ hash }).where('id', '=', 1).execute();
  return Number(row.seq);
}

/** The outcome of verifying the chain. */
export type AuditVerification =
  { ok: true; events: number; headHash: string } | { ok: false; events: number; seq: number; problem: string };

/** Walks the whole chain in order and reports the first event that does not fit. */
export async function verifyAuditChain(db: Kysely<Database>, pageSize = 1000): Promise<AuditVerification> {
  let expectedSeq = 1;
  let prev = GENESIS_HASH;
  let after = 0;
  for (;;) {
    const rows = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(pageSize)
      .execute();
    for (const r of rows) {
      const seq = Number(r.seq);
      if (seq !== expectedSeq) {
        return {
          ok: false,
          events: expectedSeq - 1,
          seq: expectedSeq,
          problem: `event ${expectedSeq} is missing (next is ${seq})`,
        };
      }
      if (r.prev_hash !== prev)
        return { ok: false, events: seq - 1, seq, problem: `event ${seq} does not link to event ${seq - 1}` };
      const { hash, ...rest } = r;
      if (eventHash(rest) !== hash)
        return { ok: false, events: seq - 1, seq, problem: `event ${seq} was changed after it was written` };
      prev = hash;
      expectedSeq++;
      after = seq;
    }
    if (rows.length < pageSize) break;
  }
  const head = await db.selectFrom('audit_head').selectAll().where('id', '=', 1).executeTakeFirstOrThrow();
  const last = expectedSeq - 1;
  if (Number(head.seq) !== last) {
    return {
      ok: false,
      events: last,
      seq: Number(head.seq),
      problem: `events after ${last} are missing (the chain's head is at ${Number(head.seq)})`,
    };
  }
  if (head.hash !== prev)
    return { ok: false, events: last, seq: last, problem: `the chain's head does not match event ${last}` };
  return { ok: true, events: last, headHash: prev };
}

/** Filters and page of listAudit. */
export interface AuditQuery {
  domain?: string | undefined;
  actor?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Events after this sequence number (the previous page's cursor). */
  afterSeq?: number | undefined;
  limit: number;
}

/** Lists events oldest first, filtered; returns the cursor of the next page when there is one. */
export async function listAudit(
  db: Kysely<Database>,
  q: AuditQuery,
): Promise<{ items: AuditEvent[]; nextSeq?: number }> {
  let query = db
    .selectFrom('audit_events')
    .selectAll()
    .orderBy('seq')
    .limit(q.limit + 1);
  if (q.domain !== undefined) query = query.where('domain', '=', q.domain);
  if (q.actor !== undefined) query = query.where('actor', '=', q.actor);
  if (q.since !== undefined) query = query.where('at', '>=', q.since.toISOString());
  if (q.until !== undefined) query = query.where('at', '<', q.until.toISOString());
  if (q.afterSeq !== undefined) query = query.where('seq', '>', q.afterSeq);
  const rows = await query.execute();
  const items = rows.slice(0, q.limit).map((r) => ({
    seq: Number(r.seq),
    at: r.at,
    actor: r.actor,
    action: r.action,
    domain: r.domain,
    objectType: r.object_type,
    objectName: r.object_name,
    before: r.before === null ? null : (JSON.parse(r.before) as unknown),
    after: r.after === null ? null : (JSON.parse(r.after) as unknown),
    requestId: r.request_id,
    hash: r.hash,
  }));
  const last = items[items.length - 1];
  return rows.length > q.limit && last ? { items, nextSeq: last.seq } : { items };
}
