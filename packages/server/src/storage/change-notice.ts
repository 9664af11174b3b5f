/**
 * Change notices: how one node tells the others that a committed write changed what their
 * in-memory catalog and directory hold (docs/scale-out.md). On PostgreSQL a write sends
 * `pg_notify('gatehouse_changes', payload)` inside its own transaction: PostgreSQL delivers it to
 * every listening session when — and only if — the transaction commits. SQLite has one node per
 * file, so nothing is sent there.
 *
 * The payload is a small JSON object; `s` is the schema the write went to (`current_schema()`),
 * because NOTIFY channels are per database and several Gatehouse schemas may share one database:
 *
 * ```text
 * {"s":"public","d":"library","r":12}          domain library is at revision 12
 * {"s":"public","d":"library","deleted":true}  domain library was deleted (with its services)
 * {"s":"public","u":"alice","r":3}             user alice is at revision 3
 * {"s":"public","u":"alice","deleted":true}    user alice was deleted
 * {"s":"public","svc":"library.gateway"}       service library.gateway was created or deleted
 * {"s":"public","all":true}                    reload everything
 * ```
 */

import { sql, type Transaction } from 'kysely';
import type { OpenDatabase } from './open-database.js';
import type { Database } from './schema.js';

/** The PostgreSQL NOTIFY channel of change notices (one per database; the schema is in the payload). */
export const CHANGE_CHANNEL = 'gatehouse_changes';

/** Limits on change notices, in characters. */
export const CHANGE_NOTICE_LIMITS = {
  /**
   * The longest name a notice carries; a longer one is sent as `all`. Names are far shorter
   * (principals: 384 characters), and even escaped six-fold this keeps the payload under
   * PostgreSQL's 8,000-byte limit.
   */
  name: 1024,
  /** PostgreSQL refuses longer payloads; a listener ignores them unread. */
  payload: 8000,
} as const;

/** What a committed write changed, as far as other nodes' memory is concerned. */
export type ChangeNotice =
  /** Domain `name` is at `revision`, or was deleted (`revision` null). */
  | { readonly kind: 'domain'; readonly name: string; readonly revision: number | null }
  /** User `name` is at `revision`, or was deleted (`revision` null). */
  | { readonly kind: 'user'; readonly name: string; readonly revision: number | null }
  /** The service whose principal is `principal` was created or deleted. */
  | { readonly kind: 'service'; readonly principal: string }
  /** Anything may have changed: reload everything. */
  | { readonly kind: 'all' };

/** A change notice as received, with the schema it came from. */
export interface ReceivedChangeNotice {
  /** The schema the write went to (`''` when it had none). */
  readonly schema: string;
  readonly notice: ChangeNotice;
}

/** A payload that is not a change notice of this version. */
export class ChangeNoticeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChangeNoticeError';
  }
}

/** The notice's payload without the schema (which the database adds), as a JSON object. */
export function changeNoticeBody(notice: ChangeNotice): Record<string, string | number | boolean> {
  const tooLong = (name: string): boolean => name.length > CHANGE_NOTICE_LIMITS.name;
  switch (notice.kind) {
    case 'domain':
      if (tooLong(notice.name)) return { all: true };
      return notice.revision === null ? { d: notice.name, deleted: true } : { d: notice.name, r: notice.revision };
    case 'user':
      if (tooLong(notice.name)) return { all: true };
      return notice.revision === null ? { u: notice.name, deleted: true } : { u: notice.name, r: notice.revision };
    case 'service':
      return tooLong(notice.principal) ? { all: true } : { svc: notice.principal };
    case 'all':
      return { all: true };
  }
}

/**
 * Sends `notice` from inside transaction `tx` on PostgreSQL (delivered on commit, never on
 * rollback); does nothing on SQLite. Throws what the driver throws (the write then fails too,
 * as any statement of its transaction would make it).
 */
export async function notifyChange(
  tx: Transaction<Database>,
  kind: OpenDatabase['kind'],
  notice: ChangeNotice,
): Promise<void> {
  if (kind !== 'postgres') return;
  // The schema comes from the session itself: whatever search_path the pool was given, it is
  // the schema this transaction's tables are in.
  const body = JSON.stringify(changeNoticeBody(notice));
  await sql`select pg_notify(${CHANGE_CHANNEL}, (jsonb_build_object('s', coalesce(current_schema(), '')) || ${body}::jsonb)::text)`.execute(
    tx,
  );
}

const isName = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= CHANGE_NOTICE_LIMITS.name;
const isRevision = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;

/**
 * Reads a notice's payload. Throws ChangeNoticeError (with the JSON error as its cause) when
 * the payload is too long, not JSON, or not one of the forms above; members it does not know
 * are ignored, so that a newer node's notices still read.
 */
export function parseChangeNotice(payload: string): ReceivedChangeNotice {
  if (payload.length > CHANGE_NOTICE_LIMITS.payload) {
    throw new ChangeNoticeError(`a change notice is at most ${CHANGE_NOTICE_LIMITS.payload} characters`);
  }
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch (err) {
    throw new ChangeNoticeError('a change notice is not JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ChangeNoticeError('a change notice is a JSON object');
  }
  const o = value as Record<string, unknown>;
  if (typeof o.s !== 'string') throw new ChangeNoticeError('a change notice names its schema (s)');
  const schema = o.s;
  const deleted = o.deleted === true;
  if (o.all === true) return { schema, notice: { kind: 'all' } };
  if (o.d !== undefined || o.u !== undefined) {
    const kind = o.d !== undefined ? 'domain' : 'user';
    const name = o.d ?? o.u;
    if (!isName(name)) throw new ChangeNoticeError(`the ${kind} of a change notice is not a name`);
    if (deleted) return { schema, notice: { kind, name, revision: null } };
    if (!isRevision(o.r)) throw new ChangeNoticeError(`a ${kind} change notice carries a revision (r) or deleted`);
    return { schema, notice: { kind, name, revision: o.r } };
  }
  if (o.svc !== undefined) {
    if (!isName(o.svc)) throw new ChangeNoticeError('the service of a change notice is not a name');
    return { schema, notice: { kind: 'service', principal: o.svc } };
  }
  throw new ChangeNoticeError('a change notice names a domain (d), a user (u), a service (svc) or all');
}
