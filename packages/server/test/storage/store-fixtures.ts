import { expect } from 'vitest';
import { listAudit, type AuditEvent } from '../../src/storage/audit-log.js';
import { PreconditionFailedError } from '../../src/storage/errors.js';
import { SecretHasher } from '../../src/storage/secret-hasher.js';
import { ValidationError, type Store, type WriteContext } from '../../src/storage/store.js';

/** Who makes the changes in the storage tests. */
export const ctx: WriteContext = { actor: 'user.root', requestId: 'req-1' };

/** The clock of the storage tests. */
export const NOW = new Date('2026-06-01T00:00:00Z');

/** argon2id at the cheapest cost: the tests check behaviour, not strength. */
export const cheapHasher = (): SecretHasher => new SecretHasher({ memoryCost: 64, timeCost: 1, parallelism: 1 });

/** The `[path, code]` pairs of the ValidationError `promise` rejects with (fails otherwise). */
export async function issuesOf(promise: Promise<unknown>): Promise<[string, string][]> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return (err as ValidationError).issues.map((i) => [i.path, i.code]);
}

/** Every audit event, oldest first. */
export async function auditEvents(store: Store): Promise<AuditEvent[]> {
  return (await listAudit(store.db, { limit: 1000 })).items;
}

/**
 * Runs `count` writes at once (all from the same expected revision) and checks that exactly one
 * wins and every other one fails with PreconditionFailedError. Returns the winner's index.
 */
export async function expectOneWinner(count: number, write: (i: number) => Promise<unknown>): Promise<number> {
  const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => write(i)));
  const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
  expect(won).toHaveLength(1);
  for (const r of results) {
    if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(PreconditionFailedError);
  }
  return won[0] as number;
}
