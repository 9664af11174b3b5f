import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { createSchema, onServer, pgUrl } from '../freshness/freshness-fixture.js';
import { openDatabase } from '../../src/storage/open-database.js';

// A killed PostgreSQL connection (a restart, a failover, an administrator's pg_terminate_backend)
// must not end the process: pg reports a dead idle client as an 'error' event on the pool, which
// Node turns into a crash when nobody listens.
const describePg = pgUrl ? describe : describe.skip;
if (!pgUrl) console.warn('GATEHOUSE_TEST_DATABASE_URL is not set: the PostgreSQL connection test is skipped');

describePg('a PostgreSQL database whose idle connections are killed', () => {
  it('reports the loss, keeps the process alive, and answers the next query on a new connection', async () => {
    const errors: Error[] = [];
    const open = await openDatabase(
      { kind: 'postgres', url: pgUrl as string },
      { migrate: false, poolSize: 2, onIdleConnectionError: (err) => errors.push(err) },
    );
    try {
      const before = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(open.db);
      const pid = before.rows[0]?.pid;
      expect(pid).toEqual(expect.any(Number));
      await onServer('select pg_terminate_backend($1)', [pid]);
      // The idle client's socket closes; wait for the pool to hear of it.
      for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(errors).toHaveLength(1);
      const after = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(open.db);
      expect(after.rows[0]?.pid).not.toBe(pid);
    } finally {
      await open.close();
    }
  });
});

describePg('migrations on a PostgreSQL database shared by several schemas', () => {
  it('look only at the schema they run in, so other schemas coming and going never disturb them', async () => {
    const mine = await createSchema('introspect');
    // Schemas created and dropped all the while, as concurrent test suites (or other
    // installations in the same database) do.
    let churning = true;
    const churn = (async () => {
      for (let i = 0; churning; i++) {
        const other = await createSchema(`churn${i}`);
        await onServer(`create table ${other.name}.t (id serial primary key)`);
        await other.drop();
      }
    })();
    try {
      const open = await openDatabase({ kind: 'postgres', url: pgUrl as string, schema: mine.name });
      try {
        const tables = await open.db.introspection.getTables();
        expect(new Set(tables.map((t) => t.schema))).toEqual(new Set([mine.name]));
        expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['domains', 'kysely_migration']));
      } finally {
        await open.close();
      }
    } finally {
      churning = false;
      await churn;
      await mine.drop();
    }
  });
});
