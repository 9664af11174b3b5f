/**
 * The decision benchmark's server under test, in a process of its own (started by run.ts): a
 * Gatehouse node over a fresh SQLite file with production settings (pino at `warn`, the argon2id
 * hasher, a master key), the benchmark domain applied, listening on 127.0.0.1 at a free port.
 * Sends the port and a decision API token for the PEP service to the parent, then serves until
 * the parent says `stop` (or goes away).
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseConfigFile } from '@gatehouse/engine';
import { applyConfig, createGatehouse, loadConfig, mintAccessToken, OPERATOR } from '@gatehouse/server';
import { DOMAIN, domainConfig, PEP_PRINCIPAL } from './domain.js';
import { send, serveParent } from './protocol.js';

/** Long enough for any run: a refused token would turn every request into a 401. */
const TOKEN_TTL_SECONDS = 12 * 3600;

async function main(): Promise<void> {
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-pdp-'));
  let cleanup = async (): Promise<void> => rmSync(dir, { recursive: true, force: true });
  try {
    const config = loadConfig({
      GATEHOUSE_DATABASE_URL: `sqlite:${join(dir, 'gatehouse.db')}`,
      GATEHOUSE_LOG_LEVEL: process.env.GATEHOUSE_LOG_LEVEL ?? 'warn',
      GATEHOUSE_MASTER_KEY: randomBytes(32).toString('hex'),
    });
    const gh = await createGatehouse(config);
    cleanup = async () => {
      await gh.close();
      rmSync(dir, { recursive: true, force: true });
    };
    const parsed = parseConfigFile('bench-pdp.json', domainConfig(randomBytes(24).toString('base64url')));
    if (parsed.issues.length > 0) {
      throw new Error(
        `the benchmark config is invalid:\n${parsed.issues.map((i) => `${i.line}: ${i.message}`).join('\n')}`,
      );
    }
    await applyConfig(gh.store, parsed, { ctx: { actor: OPERATOR } });
    await gh.reload();
    const domain = gh.catalog.catalog.domains.get(DOMAIN);
    if (domain === undefined) throw new Error(`domain ${DOMAIN} is not in the catalog after apply`);
    await gh.app.listen({ host: '127.0.0.1', port: 0 });
    const token = await mintAccessToken(gh.keys, {
      issuer: gh.issuer,
      subject: PEP_PRINCIPAL,
      audience: gh.pdpAudience,
      ttlSeconds: TOKEN_TTL_SECONDS,
    });
    serveParent(cleanup);
    await send({
      type: 'ready',
      port: (gh.app.server.address() as AddressInfo).port,
      token,
      revision: domain.revision,
      setupMs: performance.now() - started,
      assertions: domain.assertions.length,
    });
  } catch (err) {
    await send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    await cleanup().catch(() => undefined);
    process.exit(1);
  }
}

await main();
