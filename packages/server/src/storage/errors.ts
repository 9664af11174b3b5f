/**
 * Storage errors. No driver error crosses the storage boundary: unique and foreign-key
 * violations become ConflictError / ReferenceError, stale revisions PreconditionFailedError.
 */

/** Something with that key already exists (a unique constraint held). */
export class ConflictError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConflictError';
    this.code = code;
  }
}

/** The object does not exist. */
export class NotFoundError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'NotFoundError';
    this.code = code;
  }
}

/** The caller's expected revision is not the current one (optimistic concurrency). */
export class PreconditionFailedError extends Error {
  readonly code: string;
  readonly currentRevision: number | undefined;
  constructor(code: string, message: string, currentRevision?: number) {
    super(message);
    this.name = 'PreconditionFailedError';
    this.code = code;
    this.currentRevision = currentRevision;
  }
}

/** A row refers to something that does not exist (a foreign key failed). */
export class MissingReferenceError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MissingReferenceError';
    this.code = code;
  }
}

/** The kind of constraint a driver error reports, if it is one. */
export function constraintKind(err: unknown): 'unique' | 'foreign_key' | undefined {
  const e = err as { code?: unknown; message?: unknown };
  // PostgreSQL SQLSTATE codes (Appendix A); better-sqlite3 extended result codes.
  if (e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return 'unique';
  }
  if (e?.code === '23503' || e?.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return 'foreign_key';
  return undefined;
}
