/**
 * Cursor pagination for every store's lists:
 * rows in key order, `limit` clamped to PAGE_LIMITS, and an opaque cursor (the base64url of the
 * last key of the page) that the next call passes back. Composite keys join their parts with NUL.
 */

import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** A page of a list and the cursor of the next one. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** Options of a list call. */
export interface ListOptions {
  cursor?: string | undefined;
  limit?: number | undefined;
}

/** Limits on list pages. */
export const PAGE_LIMITS = { default: 50, max: 500 } as const;

/** The opaque cursor of a key. */
export function cursorOf(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

/** A cursor this server did not hand out. */
export class InvalidCursorError extends Error {
  readonly code = 'request.invalid_cursor';
  constructor() {
    super('the cursor is not one this server handed out');
    this.name = 'InvalidCursorError';
  }
}

/**
 * The key a cursor stands for; undefined when there is no cursor. A key of `parts` parts (joined
 * with NUL) must have exactly that many; anything else throws InvalidCursorError.
 */
export function keyOfCursor(cursor: string | undefined, parts = 1): string | undefined {
  if (cursor === undefined) return undefined;
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  if (key.split('\u0000').length !== parts || key.includes('\uFFFD')) throw new InvalidCursorError();
  return key;
}

/** The page size to ask for: the default when absent, clamped to 1..PAGE_LIMITS.max. */
export function pageLimit(limit: number | undefined): number {
  const n = Number.isFinite(limit) ? Math.floor(limit as number) : PAGE_LIMITS.default;
  return Math.min(Math.max(1, n), PAGE_LIMITS.max);
}

/** Cuts `rows` (fetched with `limit + 1`) to a page, with the cursor of the next one when there is more. */
export function paginate<T>(rows: T[], limit: number, keyOf: (row: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows };
  const items = rows.slice(0, limit);
  return { items, nextCursor: cursorOf(keyOf(items[items.length - 1] as T)) };
}

/** Joins the parts of a composite key (NUL sorts before every other character). */
export function compositeKey(...parts: string[]): string {
  return parts.join('\u0000');
}

/** Splits a composite key back into `count` parts (missing parts are ''). */
export function splitCompositeKey(key: string, count: number): string[] {
  const parts = key.split('\u0000');
  return Array.from({ length: count }, (_, i) => parts[i] ?? '');
}

/** The tables whose rows are listed per domain by a single text key. */
type DomainListTable = 'services' | 'apis' | 'clients';

/**
 * One page of a domain's rows of `table`, ordered by `key` (`name`, or `client_id` for clients),
 * after the cursor's key. The caller checks that the domain exists.
 */
export async function listInDomain<T extends DomainListTable>(
  db: Kysely<Database>,
  table: T,
  key: 'name' | 'client_id',
  domain: string,
  options: ListOptions,
): Promise<Page<Database[T]>> {
  const limit = pageLimit(options.limit);
  const column = key as 'name';
  let q = db
    .selectFrom(table as 'services')
    .selectAll()
    .where('domain', '=', domain)
    .orderBy(column)
    .limit(limit + 1);
  const after = keyOfCursor(options.cursor);
  if (after !== undefined) q = q.where(column, '>', after);
  const rows = (await q.execute()) as unknown as Database[T][];
  return paginate(rows, limit, (r) => String((r as unknown as Record<string, unknown>)[key]));
}
