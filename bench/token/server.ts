/**
 * The token benchmark's server under test, in a process of its own (started by run.ts): a
 * Gatehouse node from `createGatehouse` with production settings (pino at `warn`, the argon2id
 * hasher, a master key) over a fresh database — a SQLite file in the temp directory, or with
 * `--database postgres` a new schema in GATEHOUSE_TEST_DATABASE_URL's database, dropped on exit —
 * with the benchmark domain applied (domain.ts), listening on 127.0.0.1 at a free port. Sends the
 * port, the issuer and the service's credentials to the parent, then serves until the parent says
 * `stop` (or goes away).
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfigFile } from '@gatehouse/engine';
import { applyConfig, createGatehouse, loadConfig, OPERATOR } from '@gatehouse/server';
import { CLIENT_ID, domainConfig } from './domain.js';
import { send, serveParent } from './protocol.js';

const { values } = parseArgs({ options: { database: { type: 'string', default: 'sqlite' } }, strict: true });
const kind = values.database;

/** A port nobody listens on now: the issuer (`{PUBLIC_URL}/oidc`) names the port the node serves. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function providerVersion(): string {
  const url = new URL('../package.json', import.meta.resolve('oidc-provider'));
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/** Creates a fresh schema in the PostgreSQL database at `url`; returns its name and how to drop it. */
async function freshSchema(url: string): Promise<{ schema: string; drop: () => Promise<void> }> {
  const { default: pg } = await import('pg');
  const schema = `gh_bench_token_${process.pid}_${randomBytes(4).toString('hex')}`;
  const run = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`create schema ${schema}`);
  return { schema, drop: () => run(`drop schema if exists ${schema} cascade`) };
}

async function main(): Promise<void> {
  const started = performance.now();
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };
  try {
    if (kind !== 'sqlite' && kind !== 'postgres') throw new Error(`--database: sqlite or postgres, not "${kind}"`);
    const env: Record<string, string> = {
      GATEHOUSE_LOG_LEVEL: process.env.GATEHOUSE_LOG_LEVEL ?? 'warn',
      GATEHOUSE_MASTER_KEY: randomBytes(32).toString('hex'),
    };
    if (kind === 'sqlite') {
      const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-token-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      env.GATEHOUSE_DATABASE_URL = `sqlite:${join(dir, 'gatehouse.db')}`;
    } else {
      const url = process.env.GATEHOUSE_TEST_DATABASE_URL;
      if (url === undefined || url === '') {
        throw new Error('--database postgres needs GATEHOUSE_TEST_DATABASE_URL (postgres://user@host:port/database)');
      }
      const { schema, drop } = await freshSchema(url);
      cleanups.push(drop);
      env.GATEHOUSE_DATABASE_URL = url;
      env.GATEHOUSE_DATABASE_SCHEMA = schema;
    }
    const port = await freePort();
    env.GATEHOUSE_PORT = String(port);
    const config = loadConfig(env);
    const gh = await createGatehouse(config);
    cleanups.push(() => gh.close());
    const secret = randomBytes(24).toString('base64url');
    const parsed = parseConfigFile('bench-token.json', domainConfig(secret));
    if (parsed.issues.length > 0) {
      throw new Error(
        `the benchmark config is invalid:\n${parsed.issues.map((i) => `${i.line}: ${i.message}`).join('\n')}`,
      );
    }
    // The stores' default hasher: argon2id with the OWASP parameters, as in production.
    await applyConfig(gh.store, parsed, { ctx: { actor: OPERATOR } });
    await gh.reload();
    await gh.app.listen({ host: '127.0.0.1', port });
    serveParent(cleanup);
    await send({
      type: 'ready',
      port: (gh.app.server.address() as AddressInfo).port,
      issuer: gh.issuer,
      tokenPath: '/oidc/token',
      clientId: CLIENT_ID,
      clientSecret: secret,
      storage: kind,
      setupMs: performance.now() - started,
      providerVersion: providerVersion(),
    });
  } catch (err) {
    await send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    await cleanup().catch(() => undefined);
    process.exit(1);
  }
}

await main();
