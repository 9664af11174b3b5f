import { sql } from 'kysely';
import { openDatabase, type OpenDatabase } from '../../src/storage/open-database.js';

/**
 * Another connection (its own SQLite handle or PostgreSQL pool) to the database of `open`, as a
 * second server process would have. The caller closes it.
 */
export async function openSecondConnection(open: OpenDatabase): Promise<OpenDatabase> {
  if (open.kind === 'sqlite') {
    const { rows } = await sql<{ name: string; file: string }>`pragma database_list`.execute(open.db);
    const main = rows.find((r) => r.name === 'main');
    if (main === undefined || main.file === '') throw new Error('the test database is not a file');
    return openDatabase({ kind: 'sqlite', path: main.file }, { migrate: false });
  }
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(open.db);
  return openDatabase(
    { kind: 'postgres', url: process.env.GATEHOUSE_TEST_DATABASE_URL as string, schema: rows[0]!.schema },
    { migrate: false, poolSize: 4 },
  );
}
