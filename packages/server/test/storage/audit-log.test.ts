import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendAudit, listAudit, verifyAuditChain, type AuditEntry } from '../../src/storage/audit-log.js';
import { migrateToLatest } from '../../src/storage/open-database.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from './test-databases.js';

const entry = (i: number, over: Partial<AuditEntry> = {}): AuditEntry => ({
  actor: 'user.alice',
  action: 'role.update',
  domain: i % 2 === 0 ? 'library' : 'shop',
  objectType: 'role',
  objectName: `r${i}`,
  before: { members: [] },
  after: { members: [`user.u${i}`] },
  requestId: `req-${i}`,
  at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
  ...over,
});

// architecture.md "Audit": append-only, hash-chained, tampering detected.
describe.each(TEST_DATABASE_KINDS)('audit log on $name', (kind) => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await kind.create();
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('migrations are idempotent', async () => {
    expect(await migrateToLatest(t.open.db)).toEqual([]);
  });

  it('chains events and verifies an untouched chain', async () => {
    for (let i = 1; i <= 5; i++) await t.open.db.transaction().execute((tx) => appendAudit(tx, entry(i)));
    const v = await verifyAuditChain(t.open.db, 2);
    expect(v).toMatchObject({ ok: true, events: 5 });
    const page = await listAudit(t.open.db, { limit: 2, domain: 'shop' });
    expect(page.items.map((e) => e.seq)).toEqual([1, 3]);
    expect(page.nextSeq).toBe(3);
    const next = await listAudit(t.open.db, { limit: 2, domain: 'shop', afterSeq: page.nextSeq });
    expect(next.items.map((e) => e.seq)).toEqual([5]);
    expect(next.nextSeq).toBeUndefined();
    expect(next.items[0]).toMatchObject({ actor: 'user.alice', after: { members: ['user.u5'] }, requestId: 'req-5' });
  });

  it('detects an edited, a deleted and a truncated event', async () => {
    for (let i = 1; i <= 4; i++) await appendAudit(t.open.db, entry(i));
    await sql`update audit_events set actor = 'user.mallory' where seq = 2`.execute(t.open.db);
    expect(await verifyAuditChain(t.open.db)).toMatchObject({
      ok: false,
      seq: 2,
      problem: 'event 2 was changed after it was written',
    });
    await sql`delete from audit_events where seq = 2`.execute(t.open.db);
    expect(await verifyAuditChain(t.open.db)).toMatchObject({
      ok: false,
      seq: 2,
      problem: 'event 2 is missing (next is 3)',
    });
  });

  it('detects the removal of the newest events', async () => {
    for (let i = 1; i <= 3; i++) await appendAudit(t.open.db, entry(i));
    await sql`delete from audit_events where seq = 3`.execute(t.open.db);
    expect(await verifyAuditChain(t.open.db)).toMatchObject({
      ok: false,
      problem: expect.stringContaining('events after 2 are missing'),
    });
  });

  it('keeps one chain under concurrent transactions', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.open.db.transaction().execute((tx) => appendAudit(tx, entry(i + 1)))),
    );
    expect(await verifyAuditChain(t.open.db)).toMatchObject({ ok: true, events: 20 });
  });

  it('rolls back with its transaction', async () => {
    await appendAudit(t.open.db, entry(1));
    await expect(
      t.open.db.transaction().execute(async (tx) => {
        await appendAudit(tx, entry(2));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await appendAudit(t.open.db, entry(3));
    expect(await verifyAuditChain(t.open.db)).toMatchObject({ ok: true, events: 2 });
  });
});
