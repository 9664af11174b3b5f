/**
 * Opens the database named by GATEHOUSE_DATABASE_URL — embedded SQLite (better-sqlite3, WAL) or
 * PostgreSQL (pg) — as one Kysely instance, and runs the migrations.
 */

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  Kysely,
  Migrator,
  PostgresDialect,
  sql,
  SqliteDialect,
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type SchemaMetadata,
  type TableMetadata,
} from 'kysely';
import pg from 'pg';
import { migrationProvider } from './migrations.js';
import type { Database } from './schema.js';

/**
 * What Kysely's migrator asks of PostgreSQL (does the migrations table exist?), answered from
 * the session's search path only. Kysely's own introspector lists every table of every schema,
 * calling has_schema_privilege() and pg_get_serial_sequence() on each: slow on a database with
 * many schemas, and failing ("schema … does not exist") when another schema is dropped while it
 * reads — which made concurrent test suites, or installations sharing a database, fail to start.
 */
class SearchPathIntrospector implements DatabaseIntrospector {
  constructor(private readonly db: Kysely<unknown>) {}

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`select nspname as name from pg_catalog.pg_namespace`.execute(this.db);
    return rows;
  }

  async getTables(): Promise<TableMetadata[]> {
    const { rows } = await sql<{ name: string; schema: string; kind: string }>`
      select c.relname as name, n.nspname as schema, c.relkind as kind
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p', 'v', 'm') and n.nspname = any (current_schemas(false))`.execute(this.db);
    // The migrator needs names only; columns are not read.
    return rows.map((r) => ({ name: r.name, schema: r.schema, isView: r.kind === 'v' || r.kind === 'm', columns: [] }));
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() };
  }
}

/** PostgreSQL with the SearchPathIntrospector. */
class GatehousePostgresDialect extends PostgresDialect {
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SearchPathIntrospector(db);
  }
}

/** Where the database is. */
export type DatabaseLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; schema?: string };

/** An open database. */
export interface OpenDatabase {
  readonly db: Kysely<Database>;
  readonly kind: DatabaseLocation['kind'];
  /** Closes every connection. */
  close(): Promise<void>;
}

/** Options of openDatabase. */
export interface OpenDatabaseOptions {
  /** Run the migrations (default true). */
  migrate?: boolean;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
  /** PostgreSQL: told when an idle pooled connection dies (it is dropped; the node goes on). */
  onIdleConnectionError?: (err: Error) => void;
}

/** Thrown when the migrations fail; the database is left as the last successful one left it. */
export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

// PostgreSQL bigint (int8) comes back as a string by default; every bigint here (audit sequence
// numbers) fits in a double.
pg.types.setTypeParser(20, (v) => Number(v));

/** Opens the database and, unless told not to, brings its schema up to date. */
export async function openDatabase(
  location: DatabaseLocation,
  options: OpenDatabaseOptions = {},
): Promise<OpenDatabase> {
  let db: Kysely<Database>;
  if (location.kind === 'sqlite') {
    if (location.path !== ':memory:') mkdirSync(dirname(location.path), { recursive: true });
    const sqlite = new BetterSqlite3(location.path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('synchronous = NORMAL');
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  } else {
    const pool = new pg.Pool({
      connectionString: location.url,
      max: options.poolSize ?? 10,
      ...(location.schema ? { options: `-c search_path=${location.schema}` } : {}),
    });
    // An idle pooled connection that dies (a server restart, a failover, pg_terminate_backend)
    // is reported as an 'error' event on the pool; without a listener Node ends the process. The
    // pool has dropped that client already, and the next query opens a fresh connection.
    pool.on('error', (err) => options.onIdleConnectionError?.(err));
    db = new Kysely<Database>({ dialect: new GatehousePostgresDialect({ pool }) });
  }
  const open: OpenDatabase = { db, kind: location.kind, close: () => db.destroy() };
  if (options.migrate !== false) {
    try {
      await migrateToLatest(db, location.kind === 'postgres' ? location.schema : undefined);
    } catch (err) {
      await open.close();
      throw err;
    }
  }
  return open;
}

/**
 * Runs every pending migration; throws MigrationError naming the one that failed. `schema` (for
 * PostgreSQL) keeps the migration bookkeeping tables in that schema: Kysely otherwise looks for
 * them in every schema it can see.
 */
export async function migrateToLatest(db: Kysely<Database>, schema?: string): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    ...(schema !== undefined ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error !== undefined) {
    throw new MigrationError(
      `migration ${failed?.migrationName ?? '(unknown)'} failed: ${String((error as Error)?.message ?? error)}`,
      {
        cause: error,
      },
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
