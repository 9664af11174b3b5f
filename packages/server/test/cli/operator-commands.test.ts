import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAuditVerify, runKeysRotate, runMigrate } from '../../src/cli/admin-commands.js';
import { runApply, runExport } from '../../src/cli/apply-command.js';
import { runInit, runToken } from '../../src/cli/init-command.js';
import type { CommandOutput } from '../../src/cli/run-operator-command.js';
import { runServe } from '../../src/cli/serve-command.js';
import { openDatabase } from '../../src/storage/open-database.js';

const example = fileURLToPath(new URL('../../../../examples/library/library.yaml', import.meta.url));
let dir: string;

function capture(): CommandOutput & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t) };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-'));
  process.env.GATEHOUSE_DATABASE_URL = `sqlite:${join(dir, 'g.db')}`;
});
afterAll(() => {
  delete process.env.GATEHOUSE_DATABASE_URL;
  rmSync(dir, { recursive: true, force: true });
});

// issue 3 "Config files and CLI": init, migrate, apply (plan first, idempotent, errors with line
// and column), export (round trip), audit verify, keys rotate, token.
describe('operator commands', () => {
  it('migrates, then finds nothing to do', async () => {
    const first = capture();
    await runMigrate(first);
    expect(first.stdout[0]).toMatch(/^Ran 3 migration\(s\): 0001_initial, 0002_keys_one_current, 0003_oidc_payloads$/);
    const second = capture();
    await runMigrate(second);
    expect(second.stdout).toEqual(['The database schema is up to date.']);
  });

  it('initialises once, with the password from the environment', async () => {
    const o = capture();
    await runInit({ admin: 'admin' }, o, { ...process.env, GATEHOUSE_ADMIN_PASSWORD: 'a-very-long-admin-password' });
    expect(o.stdout).toEqual(['Created the super admin user.admin with the password from GATEHOUSE_ADMIN_PASSWORD.']);
    const again = capture();
    await runInit({ admin: 'admin' }, again);
    expect(again.stdout).toEqual(['Gatehouse is initialised: super admins are user.admin.']);
  });

  it('applies with the plan first, then says "no changes"; export round-trips', async () => {
    const o = capture();
    await runApply({ file: example }, o);
    expect(o.stdout[0]).toContain('  + domain library');
    expect(o.stdout[o.stdout.length - 1]).toMatch(/^Applied: \d+ created, 0 changed, 0 deleted\.$/);
    const again = capture();
    await runApply({ file: example }, again);
    expect(again.stdout).toEqual(['No changes. The store already matches the file.']);
    const exported = capture();
    await runExport([], {}, exported);
    const file = join(dir, 'export.yaml');
    writeFileSync(file, exported.stdout.join('\n'));
    const roundTrip = capture();
    await runApply({ file }, roundTrip);
    expect(roundTrip.stdout).toEqual(['No changes. The store already matches the file.']);
  });

  it('reports every error in the file with line and column, and changes nothing', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'domains:\n  - name: library\n    rolez: []\n    policies:\n      - { name: p, assertions: [{ effect: allow, action: read, resource: "library:x", role: ghost }] }\n',
    );
    await expect(runApply({ file }, capture())).rejects.toThrow(
      new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:5: domains\\[0\\]\\.rolez: unknown field "rolez"`),
    );
    await expect(runApply({ file: join(dir, 'missing.yaml') }, capture())).rejects.toThrow(
      /cannot read .*missing\.yaml/,
    );
  });

  it('verifies the audit trail and detects tampering', async () => {
    const ok = capture();
    await runAuditVerify(ok);
    expect(ok.stdout[0]).toMatch(/^The audit trail is intact: \d+ event\(s\); head [0-9a-f]{64}\.$/);
    const db = await openDatabase({ kind: 'sqlite', path: join(dir, 'g.db') });
    await sql`update audit_events set actor = 'user.mallory' where seq = 3`.execute(db.db);
    await db.close();
    await expect(runAuditVerify(capture())).rejects.toThrow(
      'The audit trail was tampered with: event 3 was changed after it was written',
    );
  });

  it('rotates keys and mints tokens', async () => {
    const o = capture();
    await runKeysRotate('token', o);
    expect(o.stdout[0]).toMatch(/^Rotated the token signing key: the new key is [A-Za-z0-9_-]{16,}\.$/);
    const t = capture();
    await runToken({ subject: 'user.admin', ttlSeconds: 600 }, t);
    expect(t.stdout[0]!.split('.')).toHaveLength(3);
    await expect(runToken({ subject: 'user.admin', ttlSeconds: 5 }, capture())).rejects.toThrow('--ttl must be');
  });

  it('mints tokens for the management API by default, or for the decision API', async () => {
    const audienceOf = async (audience?: 'management' | 'pdp'): Promise<unknown> => {
      const o = capture();
      await runToken({ subject: 'library.gateway', ttlSeconds: 600, ...(audience ? { audience } : {}) }, o);
      const payload = o.stdout[0]!.split('.')[1]!;
      return (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { aud: unknown }).aud;
    };
    expect(await audienceOf()).toBe('http://127.0.0.1:8740/v1');
    expect(await audienceOf('management')).toBe('http://127.0.0.1:8740/v1');
    expect(await audienceOf('pdp')).toBe('http://127.0.0.1:8740/pdp');
  });

  it('says so when serve cannot listen because the port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    process.env.GATEHOUSE_PORT = String((taken.address() as AddressInfo).port);
    try {
      await expect(runServe(capture())).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+: the port is in use/);
    } finally {
      delete process.env.GATEHOUSE_PORT;
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
