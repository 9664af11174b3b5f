import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { onServer, pgUrl } from '../freshness/freshness-fixture.js';
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
