/**
 * Unique keys are enforced by the database (architecture.md "Storage"); the stores check them
 * first inside the write's transaction to say which key is taken. When a concurrent write takes
 * a key between that check and the insert, the database refuses the insert and Store.translate
 * reports a generic ConflictError `conflict`: explainConflict asks again, after the fact, and
 * gives the same specific error the check would have given.
 */

import { ConflictError } from './errors.js';

/**
 * Runs `write`; when it fails with the generic ConflictError `conflict`, throws the error
 * `explain` finds instead (with the original as its cause), else the original.
 */
export async function explainConflict<T>(
  write: () => Promise<T>,
  explain: () => Promise<ConflictError | undefined>,
): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof ConflictError && err.code === 'conflict') {
      // Inside Store.transaction() on PostgreSQL the failed statement aborted the transaction,
      // so asking fails too: then the generic error is all there is to say.
      const specific = await explain().catch(() => undefined);
      if (specific) throw new ConflictError(specific.code, specific.message, { cause: err });
    }
    throw err;
  }
}
