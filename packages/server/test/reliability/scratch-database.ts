import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { DatabaseLocation } from '../../src/storage/open-database.js';

/**
 * An empty database that a whole process can be pointed at by URL (GATEHOUSE_DATABASE_URL): an
 * SQLite file in a temporary folder, or — since a URL cannot name a schema — a PostgreSQL database
 * of its own, created on the server of GATEHOUSE_TEST_DATABASE_URL and dropped by `dispose`.
 */
export interface ScratchDatabase {
  /** For GATEHOUSE_DATABASE_URL. */
  url: string;
  /** For openDatabase in the test process. */
  location: DatabaseLocation;
  dispose(): Promise<void>;
}

/** A kind of scratch database. */
export type ScratchKind = 'sqlite' | 'postgres';

const pgUrl = process.env.GATEHOUSE_TEST_DATABASE_URL;

/** SQLite always; PostgreSQL when GATEHOUSE_TEST_DATABASE_URL is set (with a visible notice when not). */
export const SCRATCH_KINDS: readonly ScratchKind[] = pgUrl ? ['sqlite', 'postgres'] : ['sqlite'];
if (!pgUrl) console.warn('GATEHOUSE_TEST_DATABASE_URL is not set: the PostgreSQL reliability tests are skipped');

async function onServer<T extends pg.QueryResultRow>(statement: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    return (await client.query<T>(statement, values)).rows;
  } finally {
    await client.end();
  }
}

/**
 * Drops database `name` once its sessions are gone. A pool's end() resolves before its sessions
 * have closed, and a killed process's session lingers a moment; forcing them out at once would
 * hit a client of ours that is still closing, which then throws outside any test.
 */
async function dropDatabase(name: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const [row] = await onServer<{ n: string }>('select count(*) as n from pg_stat_activity where datname = $1', [
      name,
    ]);
    if (Number(row?.n) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await onServer(`drop database if exists ${name} with (force)`);
}

/** Creates an empty database of `kind`. */
export async function createScratchDatabase(kind: ScratchKind, label: string): Promise<ScratchDatabase> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), `gatehouse-${label}-`));
    const path = join(dir, 'gatehouse.db');
    return {
      url: `sqlite:${path}`,
      location: { kind: 'sqlite', path },
      async dispose() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (!pgUrl) throw new Error('GATEHOUSE_TEST_DATABASE_URL is not set');
  const name = `gh_${label}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await onServer(`create database ${name}`);
  const url = new URL(pgUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    location: { kind: 'postgres', url: url.href },
    dispose: () => dropDatabase(name),
  };
}
