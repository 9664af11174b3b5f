import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../src/keys/access-tokens.js';
import { KeyService } from '../../src/keys/key-service.js';
import { ensureReservedDomains } from '../../src/runtime/ensure-reserved-domains.js';
import { openDatabase } from '../../src/storage/open-database.js';
import { Store } from '../../src/storage/store.js';
import { UserStore } from '../../src/storage/user-store.js';
import { cheapHasher, ctx } from '../storage/store-fixtures.js';
import { createSchema, pgUrl, seenWithin, summary } from './freshness-fixture.js';

// docs/scale-out.md: two real `gatehouse serve` processes on one PostgreSQL schema
// (GATEHOUSE_DATABASE_SCHEMA). A role member added or removed through node A's management API
// is answered by node B's AuthZEN evaluation endpoint within 1 s.

if (!pgUrl) console.warn('GATEHOUSE_TEST_DATABASE_URL is not set: the two-process freshness test is skipped');

const BIN = resolve(import.meta.dirname, '../../bin/gatehouse.js');
/** What both nodes call themselves, as nodes behind one load balancer do: tokens work on either. */
const PUBLIC_URL = 'http://gatehouse.test';

/** A running `gatehouse serve`. */
interface ServeProcess {
  url: string;
  child: ChildProcessWithoutNullStreams;
  output(): string;
  exited: Promise<number | null>;
}

/** An AuthZEN evaluation request (authzen.md "One decision"). */
interface EvaluationBody {
  subject: { type: string; id: string; properties?: Record<string, unknown> };
  action: { name: string };
  resource: { type: string; id: string };
  context?: Record<string, unknown>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

/** The environment of a child `gatehouse`: ours without GATEHOUSE_* (loadConfig refuses unknown ones), plus `vars`. */
function childEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_')));
  return { ...env, ...vars };
}

/** Starts `gatehouse serve` with `vars` and resolves once it listens (rejects after 30 s or when it ends). */
async function serve(vars: Record<string, string>): Promise<ServeProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: childEnv({ ...vars, GATEHOUSE_PORT: String(port) }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve did not start:\n${output}`)), 30_000);
    const check = (): void => {
      if (!output.includes('is listening on')) return;
      clearTimeout(timer);
      done();
    };
    child.stderr.on('data', check);
    void exited.then((code) => fail(new Error(`serve ended (${code}) before listening:\n${output}`)));
  });
  return { url: `http://127.0.0.1:${port}`, child, output: () => output, exited };
}

/** Ends a node as an operator would (SIGTERM: graceful shutdown) and resolves to its exit code. */
async function stop(node: ServeProcess): Promise<number | null> {
  if (node.child.exitCode !== null) return node.child.exitCode;
  node.child.kill('SIGTERM');
  const timer = setTimeout(() => node.child.kill('SIGKILL'), 15_000);
  try {
    return await node.exited;
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(!pgUrl)('two gatehouse serve processes on one PostgreSQL schema', () => {
  let drop: (() => Promise<void>) | undefined;
  let a: ServeProcess | undefined;
  let b: ServeProcess | undefined;
  let managementToken: string;
  let pdpToken: string;
  const latencies: number[] = [];

  beforeAll(async () => {
    const schema = await createSchema('procs');
    drop = schema.drop;
    const masterKey = randomBytes(32);
    // The fixture, and the signing keys both nodes will find in the database.
    const open = await openDatabase({ kind: 'postgres', url: pgUrl as string, schema: schema.name });
    try {
      const store = new Store(open);
      await ensureReservedDomains(store);
      await store.replaceRole('sys.auth', 'admin', { members: [{ name: 'user.root' }] }, undefined, ctx);
      await store.createDomain({ name: 'library' }, ctx);
      await store.createRole('library', { name: 'readers', members: [{ name: 'user.alice' }] }, ctx);
      await store.putPolicy(
        'library',
        {
          name: 'books',
          assertions: [{ effect: 'allow', action: 'read', resource: 'library:book/*', role: 'readers' }],
        },
        undefined,
        ctx,
      );
      const users = new UserStore(store, { hasher: cheapHasher() });
      for (const name of ['root', 'alice', 'dave']) await users.createUser({ name }, ctx);
      const keys = new KeyService({ db: open.db, masterKey, maxTokenTtlSeconds: 604_800 });
      await keys.ensureKeys({ actor: 'operator' });
      const mint = (audience: string): Promise<string> =>
        mintAccessToken(keys, { issuer: `${PUBLIC_URL}/oidc`, subject: 'user.root', audience, ttlSeconds: 600 });
      managementToken = await mint(`${PUBLIC_URL}/v1`);
      pdpToken = await mint(`${PUBLIC_URL}/pdp`);
    } finally {
      await open.close();
    }
    const vars = {
      GATEHOUSE_DATABASE_URL: pgUrl as string,
      GATEHOUSE_DATABASE_SCHEMA: schema.name,
      GATEHOUSE_PUBLIC_URL: PUBLIC_URL,
      GATEHOUSE_MASTER_KEY: masterKey.toString('hex'),
      GATEHOUSE_LOG_LEVEL: 'warn',
    };
    // One after the other: two cold starts at once on two cores only make both slower.
    a = await serve(vars);
    b = await serve(vars);
  }, 90_000);

  afterAll(async () => {
    if (latencies.length > 0) console.info(`change made on process A answered by process B: ${summary(latencies)}`);
    const codes = await Promise.all([a, b].map((n) => (n === undefined ? Promise.resolve(0) : stop(n))));
    await drop?.();
    // A graceful shutdown stops the change listener too: both exit 0, nothing left hanging.
    expect(codes, `${a?.output()}\n${b?.output()}`).toEqual([0, 0]);
  }, 40_000);

  /** POSTs an AuthZEN evaluation to `node` (as user.root, a super admin: it may ask about anyone). */
  async function evaluateOn(node: ServeProcess, body: EvaluationBody): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${node.url}/pdp/library/access/v1/evaluation`, {
      method: 'POST',
      headers: { authorization: `Bearer ${pdpToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }

  /** Whether `node` lets user `id` read book 1 of library. */
  async function mayReadOn(node: ServeProcess, id: string): Promise<boolean> {
    const { status, body } = await evaluateOn(node, {
      subject: { type: 'user', id },
      action: { name: 'read' },
      resource: { type: 'book', id: '1' },
    });
    expect(status, JSON.stringify(body)).toBe(200);
    return (body as { decision: boolean }).decision;
  }

  /** Calls node `node`'s management API as user.root. */
  async function manage(node: ServeProcess, method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<number> {
    const res = await fetch(`${node.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${managementToken}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    await res.arrayBuffer();
    return res.status;
  }

  it('answers on B a role member added or removed through A’s API within 1 s', async () => {
    expect(await mayReadOn(b!, 'dave')).toBe(false);
    for (let i = 0; i < 6; i++) {
      const add = i % 2 === 0;
      const status = add
        ? await manage(a!, 'POST', '/v1/domains/library/roles/readers/members', { name: 'user.dave' })
        : await manage(a!, 'DELETE', '/v1/domains/library/roles/readers/members/user.dave');
      expect(status).toBe(200);
      const { latencyMs } = await seenWithin(`dave ${add ? 'added' : 'removed'} (#${i}) on B`, async () => {
        return (await mayReadOn(b!, 'dave')) === add;
      });
      latencies.push(latencyMs);
    }
  });

  /** library's revision as node `node` reads it from the database (GET /v1/domains/library). */
  async function revisionOn(node: ServeProcess): Promise<number> {
    const res = await fetch(`${node.url}/v1/domains/library`, {
      headers: { authorization: `Bearer ${managementToken}` },
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { revision: number }).revision;
  }

  // Read-your-writes across nodes: a request to B carrying the revision A's write made is answered
  // on that revision at once, whether or not B has had the notice yet — no waiting, no retry.
  it('answers at once on B a request whose context.min_revision is the revision of A’s write', async () => {
    for (let i = 0; i < 6; i++) {
      const add = i % 2 === 0;
      const status = add
        ? await manage(a!, 'POST', '/v1/domains/library/roles/readers/members', { name: 'user.dave' })
        : await manage(a!, 'DELETE', '/v1/domains/library/roles/readers/members/user.dave');
      expect(status).toBe(200);
      const revision = await revisionOn(a!);
      const { status: answered, body } = await evaluateOn(b!, {
        subject: { type: 'user', id: 'dave' },
        action: { name: 'read' },
        resource: { type: 'book', id: '1' },
        context: { min_revision: revision },
      });
      expect(answered, JSON.stringify(body)).toBe(200);
      expect(body).toEqual({ decision: add, context: { revision } });
    }
  });
});
