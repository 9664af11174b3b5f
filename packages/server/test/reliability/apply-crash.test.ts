import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ADMIN_POLICY, ADMIN_ROLE } from '@gatehouse/engine';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../src/keys/access-tokens.js';
import { KeyService } from '../../src/keys/key-service.js';
import { ensureReservedDomains } from '../../src/runtime/ensure-reserved-domains.js';
import { verifyAuditChain } from '../../src/storage/audit-log.js';
import { openDatabase } from '../../src/storage/open-database.js';
import type { Database } from '../../src/storage/schema.js';
import { Store } from '../../src/storage/store.js';
import { createScratchDatabase, SCRATCH_KINDS, type ScratchDatabase, type ScratchKind } from './scratch-database.js';

// targets.md "Reliability figures": a killed `gatehouse apply` leaves all or nothing. The real CLI
// runs as a child process and is SIGKILLed at a random moment after it says it is applying; the
// database must then hold either the whole file or exactly what it held before, the audit chain
// must verify, and the next apply must plan the same change again and complete it.

const BIN = resolve(import.meta.dirname, '../../bin/gatehouse.js');

/** A seeded PRNG (mulberry32): a failing run names its seed, RELIABILITY_SEED replays it. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
const SEED = Number(process.env.RELIABILITY_SEED ?? Date.now() % 1_000_000);

/** How large a file makes `apply` last at least a second or so on each kind of database. */
interface CrashTarget {
  kind: ScratchKind;
  /** Roles in the file: each has three members and one assertion in the policy. */
  roles: number;
  /** Roughly how long applying takes, as a share of planning (a dry run of the same change after more reads). */
  applyShare: number;
}

const TARGETS: readonly CrashTarget[] = SCRATCH_KINDS.map((kind) =>
  kind === 'sqlite' ? { kind, roles: 1500, applyShare: 0.7 } : { kind, roles: 400, applyShare: 0.5 },
);

/** A config file with one domain: `roles` roles of three members each and a policy with one assertion per role. */
function configText(domain: string, roles: number): string {
  const lines = ['domains:', `  - name: ${domain}`, '    roles:'];
  for (let i = 0; i < roles; i++) lines.push(`      - { name: r${i}, members: [user.a${i}, user.b${i}, user.c${i}] }`);
  lines.push('    policies:', '      - name: docs', '        assertions:');
  for (let i = 0; i < roles; i++) {
    lines.push(`          - { effect: allow, action: read, resource: "${domain}:doc/${i}", role: r${i} }`);
  }
  return `${lines.join('\n')}\n`;
}

/** The changes of applying configText to a database without the domain: the domain, each role, the policy. */
const changeCount = (roles: number): number => roles + 2;

interface ApplyRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Whether the kill was sent before the process ended on its own. */
  killed: boolean;
  /** How long planning took (a dry run of the same change): the scale of the kill delay. */
  planMs: number;
  delayMs: number;
}

const APPLYING = /Applying (\d+) change\(s\) in one transaction/;

/** The environment of a child `gatehouse`: ours without GATEHOUSE_* (loadConfig refuses unknown ones), plus `vars`. */
function childEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_')));
  return { ...env, ...vars };
}

/**
 * Runs `gatehouse apply -f file`; when it says it is applying, waits `delay(planMs)` ms and
 * SIGKILLs it (unless `delay` is undefined). Rejects when it does not get that far in time.
 */
function runApply(url: string, file: string, delay?: (planMs: number) => number): Promise<ApplyRun> {
  const child = spawn(process.execPath, [BIN, 'apply', '-f', file], {
    env: childEnv({ GATEHOUSE_DATABASE_URL: url }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let planningAt: number | undefined;
  let planMs = 0;
  let delayMs = 0;
  let killed = false;
  let timer: NodeJS.Timeout | undefined;
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (planningAt === undefined && stderr.includes('Planning…')) planningAt = performance.now();
    if (delay !== undefined && timer === undefined && APPLYING.test(stderr)) {
      planMs = performance.now() - (planningAt ?? performance.now());
      delayMs = Math.round(delay(planMs));
      timer = setTimeout(() => {
        killed = child.exitCode === null && child.signalCode === null && child.kill('SIGKILL');
      }, delayMs);
    }
  });
  const deadline = setTimeout(() => child.kill('SIGKILL'), 40_000);
  return new Promise((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      clearTimeout(timer);
      if (delay !== undefined && planningAt === undefined) {
        reject(new Error(`apply ended before planning (code ${code}, signal ${signal}):\n${stderr}${stdout}`));
      } else {
        resolvePromise({ code, signal, stdout, stderr, killed, planMs, delayMs });
      }
    });
  });
}

/** Every row of every table, sorted: two snapshots are equal when the database did not change. */
async function snapshot(db: Kysely<Database>): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of await db.introspection.getTables()) {
    const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(table.name)}`.execute(db);
    out[table.name] = rows.map((r) => JSON.stringify(r)).sort();
  }
  return out;
}

/** Whether the domain is absent, or present exactly as configText describes it (throws on anything between). */
async function domainState(db: Kysely<Database>, domain: string, roles: number): Promise<'absent' | 'complete'> {
  const found = await db.selectFrom('domains').select('name').where('name', '=', domain).execute();
  const roleRows = await db.selectFrom('roles').select('name').where('domain', '=', domain).execute();
  const memberRows = await db
    .selectFrom('members')
    .select(['owner_name', 'member'])
    .where('domain', '=', domain)
    .execute();
  const policyRows = await db
    .selectFrom('policies')
    .select(['name', 'assertions'])
    .where('domain', '=', domain)
    .execute();
  if (found.length === 0 && roleRows.length + memberRows.length + policyRows.length === 0) return 'absent';
  // Every domain also has its built-in admin role and policy (semantics.md "Names").
  expect(found).toHaveLength(1);
  expect(roleRows.map((r) => r.name).sort()).toEqual(
    [ADMIN_ROLE, ...Array.from({ length: roles }, (_, i) => `r${i}`)].sort(),
  );
  expect(memberRows.map((m) => `${m.owner_name} ${m.member}`).sort()).toEqual(
    Array.from({ length: roles }, (_, i) => [`r${i} user.a${i}`, `r${i} user.b${i}`, `r${i} user.c${i}`])
      .flat()
      .sort(),
  );
  expect(policyRows.map((p) => p.name).sort()).toEqual([ADMIN_POLICY, 'docs'].sort());
  const docs = policyRows.find((p) => p.name === 'docs')!;
  const assertions = JSON.parse(docs.assertions) as { role?: string; resource: string }[];
  expect(assertions.map((a) => `${a.role} ${a.resource}`)).toEqual(
    Array.from({ length: roles }, (_, i) => `r${i} ${domain}:doc/${i}`),
  );
  return 'complete';
}

const auditCount = async (db: Kysely<Database>): Promise<number> =>
  Number(
    (
      await db
        .selectFrom('audit_events')
        .select((e) => e.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

const KILLS = 3;

async function crashRepeatedly(target: CrashTarget, database: ScratchDatabase, dir: string): Promise<void> {
  const next = random(SEED + (target.kind === 'sqlite' ? 0 : 1));
  const context = `seed ${SEED} (RELIABILITY_SEED replays it)`;
  const { roles } = target;
  let fileIndex = 0;
  const fileOf = (i: number): { domain: string; file: string } => {
    const domain = `crash${i}`;
    const file = join(dir, `${domain}.yaml`);
    writeFileSync(file, configText(domain, roles));
    return { domain, file };
  };
  let current = fileOf(fileIndex);
  const outcomes: string[] = [];

  for (let trial = 0; trial < KILLS; trial++) {
    const open = await openDatabase(database.location, { migrate: false });
    let before: Record<string, string[]>;
    try {
      before = await snapshot(open.db);
    } finally {
      await open.close();
    }
    // Stratified: trial k kills somewhere in the k-th slice of the expected apply time.
    const run = await runApply(
      database.url,
      current.file,
      (planMs) => ((trial + next()) / KILLS) * target.applyShare * planMs,
    );
    // The previous crash left nothing of this file: the plan is the whole change again.
    expect(run.stdout, context).toContain(`Plan: ${changeCount(roles)} to create, 0 to change, 0 to delete.`);
    expect(run.stderr, context).toMatch(APPLYING);
    if (run.killed) expect(run.signal, context).toBe('SIGKILL');
    else expect(run.code, `${context}\n${run.stderr}`).toBe(0);

    const after = await openDatabase(database.location, { migrate: false });
    try {
      const state = await domainState(after.db, current.domain, roles);
      const audit = await verifyAuditChain(after.db);
      expect(audit, context).toMatchObject({ ok: true });
      if (state === 'absent') {
        // None of it: every table exactly as before, the audit trail included.
        expect(run.killed, `${context}: apply exited ${run.code} without applying`).toBe(true);
        expect(await snapshot(after.db), context).toEqual(before);
      } else {
        // All of it: one audit event per change.
        expect(await auditCount(after.db), context).toBe(before.audit_events!.length + changeCount(roles));
      }
      outcomes.push(`${run.delayMs}/${Math.round(run.planMs)} ms → ${run.killed ? state : 'finished first'}`);
      if (state === 'complete') current = fileOf(++fileIndex);
    } finally {
      await after.close();
    }
  }

  // An apply that is left alone completes the change the crashes interrupted.
  const last = await runApply(database.url, current.file);
  expect(last.code, `${context}\n${last.stderr}`).toBe(0);
  expect(last.stdout).toContain(`Plan: ${changeCount(roles)} to create, 0 to change, 0 to delete.`);
  expect(last.stdout).toContain(`Applied: ${changeCount(roles)} created, 0 changed, 0 deleted.`);
  const final = await openDatabase(database.location, { migrate: false });
  try {
    expect(await domainState(final.db, current.domain, roles)).toBe('complete');
    expect(await verifyAuditChain(final.db)).toMatchObject({ ok: true });
  } finally {
    await final.close();
  }
  // At least one kill landed inside the transaction (the first slice is well before the commit).
  expect(
    outcomes.some((o) => o.endsWith('absent')),
    `${context}: ${outcomes.join('; ')}`,
  ).toBe(true);
  console.info(`apply crash on ${target.kind} (${context}): ${outcomes.join('; ')}`);
}

// The kinds run side by side: each kill is timed against its own run's planning time, so load
// from the other slows both alike.
describe('a killed gatehouse apply', () => {
  it.concurrent.each(TARGETS)(
    'leaves all of the file or none of it on $kind, and the next apply completes it',
    { timeout: 50_000 },
    async (target) => {
      const dir = mkdtempSync(join(tmpdir(), 'gatehouse-crash-files-'));
      const database = await createScratchDatabase(target.kind, 'crash');
      try {
        // Migrated and with its reserved domains, so that the child writes nothing before applying.
        const open = await openDatabase(database.location);
        try {
          await ensureReservedDomains(new Store(open));
        } finally {
          await open.close();
        }
        await crashRepeatedly(target, database, dir);
      } finally {
        await database.dispose();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolvePromise) => server.listen(0, '127.0.0.1', resolvePromise));
  const { port } = server.address() as { port: number };
  await new Promise((resolvePromise) => server.close(resolvePromise));
  return port;
}

/**
 * A write burst against `gatehouse serve`, SIGKILLed in the middle: every write the server
 * acknowledged (201) is in the database, whole; no other change is half made; the audit chain
 * verifies and holds one event per role.
 */
async function killServeDuringBurst(kind: ScratchKind): Promise<string> {
  const next = random(SEED + (kind === 'sqlite' ? 2 : 3));
  const database = await createScratchDatabase(kind, 'serve');
  const masterKey = randomBytes(32);
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  try {
    // A super admin and a domain to write in; the signing keys made here are the server's too.
    const open = await openDatabase(database.location);
    let token: string;
    try {
      const store = new Store(open);
      await ensureReservedDomains(store);
      await store.replaceRole('sys.auth', ADMIN_ROLE, { members: [{ name: 'user.root' }] }, undefined, {
        actor: 'operator',
      });
      await store.createDomain({ name: 'burst' }, { actor: 'operator' });
      const keys = new KeyService({ db: open.db, masterKey, maxTokenTtlSeconds: 3600 });
      await keys.ensureKeys({ actor: 'operator' });
      token = await mintAccessToken(keys, {
        issuer: `${publicUrl}/oidc`,
        subject: 'user.root',
        audience: `${publicUrl}/v1`,
        ttlSeconds: 600,
      });
    } finally {
      await open.close();
    }

    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: childEnv({
        GATEHOUSE_DATABASE_URL: database.url,
        GATEHOUSE_PORT: String(port),
        GATEHOUSE_MASTER_KEY: masterKey.toString('hex'),
        GATEHOUSE_LOG_LEVEL: 'error',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = new Promise<void>((resolvePromise) => child.on('close', () => resolvePromise()));
    await new Promise<void>((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 30_000);
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        output += d;
        if (output.includes('is listening on')) {
          clearTimeout(timer);
          resolvePromise();
        }
      });
      child.on('close', () => reject(new Error(`serve ended before listening:\n${output}`)));
    });

    // Eight writers create roles as fast as the server answers until it is killed.
    const acknowledged: string[] = [];
    const refused: string[] = [];
    let killed = false;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !killed; i++) {
        const name = `w${w}-${i}`;
        try {
          const res = await fetch(`${publicUrl}/v1/domains/burst/roles`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ name, members: [{ name: `user.${name}` }, { name: 'user.shared' }] }),
          });
          await res.arrayBuffer();
          if (res.status === 201) acknowledged.push(name);
          else refused.push(`${name}: ${res.status}`);
        } catch {
          return; // the server is gone
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    // Kill once writes are flowing, at a moment that varies from run to run.
    while (acknowledged.length < 20 && refused.length === 0) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100 + Math.floor(next() * 400)));
    killed = child.kill('SIGKILL');
    await Promise.all(writers);
    await exited;
    expect(refused, `${output}\nseed ${SEED}`).toEqual([]);

    const after = await openDatabase(database.location, { migrate: false });
    try {
      const roles = await after.db.selectFrom('roles').select('name').where('domain', '=', 'burst').execute();
      const stored = new Set(roles.map((r) => r.name).filter((n) => n !== ADMIN_ROLE));
      for (const name of acknowledged) expect(stored.has(name), `acknowledged ${name} is missing`).toBe(true);
      const members = await after.db
        .selectFrom('members')
        .select(['owner_name', 'member'])
        .where('domain', '=', 'burst')
        .execute();
      // Each stored role has both its members: no write is half made.
      expect(members.map((m) => `${m.owner_name} ${m.member}`).sort()).toEqual(
        [...stored].flatMap((n) => [`${n} user.${n}`, `${n} user.shared`]).sort(),
      );
      expect(await verifyAuditChain(after.db)).toMatchObject({ ok: true });
      const events = await after.db
        .selectFrom('audit_events')
        .select('object_name')
        .where('domain', '=', 'burst')
        .where('object_type', '=', 'role')
        .execute();
      expect(events.map((e) => e.object_name).sort()).toEqual([...stored].sort());
      return `${acknowledged.length} acknowledged, ${stored.size - acknowledged.length} more committed before the kill`;
    } finally {
      await after.close();
    }
  } finally {
    await database.dispose();
  }
}

describe('a killed gatehouse serve', () => {
  it.concurrent.each(SCRATCH_KINDS)(
    'keeps every acknowledged write on %s, whole',
    { timeout: 45_000 },
    async (kind) => {
      console.info(`serve burst on ${kind}: ${await killServeDuringBurst(kind)}`);
    },
  );
});
