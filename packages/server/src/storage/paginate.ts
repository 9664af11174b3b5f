/**
 * Cursor pagination for every store's lists:
 * rows in key order, `limit` clamped to PAGE_LIMITS, and an opaque cursor (the base64url of the
 * last key of the page) that the next call passes back. Composite keys join their parts with NUL.
 */

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
