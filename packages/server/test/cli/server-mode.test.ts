import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runApply, runExport } from '../../src/cli/apply-command.js';
import type { CommandOutput } from '../../src/cli/run-operator-command.js';
import { loadConfig } from '../../src/config/load-config.js';
import { mintAccessToken } from '../../src/keys/access-tokens.js';
import { createGatehouse, type Gatehouse } from '../../src/runtime/create-gatehouse.js';

let dir: string;
let gh: Gatehouse;
let url: string;
let token: string;

function capture(): CommandOutput & { stdout: string[] } {
  const stdout: string[] = [];
  return { stdout, out: (t) => void stdout.push(t), err: () => undefined };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-remote-'));
  const config = loadConfig({ GATEHOUSE_DATABASE_URL: `sqlite:${join(dir, 'g.db')}` });
  gh = await createGatehouse(config, { logger: false });
  await gh.management.replaceRole(
    { principal: 'operator' },
    'sys.auth',
    'admin',
    { members: [{ name: 'user.root' }] },
    undefined,
  );
  await gh.management.createDomain({ principal: 'operator' }, { name: 'library', admins: [{ name: 'user.alice' }] });
  await gh.app.listen({ port: 0, host: '127.0.0.1' });
  const address = gh.app.server.address() as { port: number };
  url = `http://127.0.0.1:${address.port}`;
  token = await mintAccessToken(gh.keys, {
    issuer: gh.issuer,
    subject: 'user.alice',
    audience: gh.managementAudience,
    ttlSeconds: 600,
  });
});
afterAll(async () => {
  await gh.close();
  rmSync(dir, { recursive: true, force: true });
});

// issue 3: apply and export "against a running server (--server URL with a token)".
describe('apply and export with --server', () => {
  it('imports each domain through the API with the caller’s rights', async () => {
    const file = join(dir, 'library.yaml');
    writeFileSync(
      file,
      'domains:\n  - name: library\n    admins: [user.alice]\n    roles:\n      - { name: readers, members: [user.bob] }\n',
    );
    const dry = capture();
    await runApply({ file, dryRun: true, server: url, token }, dry);
    expect(dry.stdout.join('\n')).toContain('+ role library:readers');
    expect(gh.catalog.catalog.domains.get('library')?.roles.has('readers')).toBe(false);
    const o = capture();
    await runApply({ file, server: url, token }, o);
    expect(o.stdout[o.stdout.length - 1]).toBe('Applied: 1 created, 0 changed, 0 deleted.');
    expect(gh.catalog.catalog.domains.get('library')?.roles.has('readers')).toBe(true);
    const again = capture();
    await runApply({ file, server: url, token }, again);
    expect(again.stdout).toEqual(['library:\nNo changes. The store already matches the file.']);
    const exported = capture();
    await runExport(['library'], { server: url, token }, exported);
    expect(exported.stdout[0]).toContain('- name: readers');
  });

  it('says which server it cannot reach, instead of a bare fetch error', async () => {
    const file = join(dir, 'unreachable.yaml');
    writeFileSync(file, 'domains:\n  - name: library\n');
    // A loopback port nothing listens on any more.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const server = `http://127.0.0.1:${port}`;
    await expect(runApply({ file, server, token }, capture())).rejects.toThrow(
      `cannot reach ${server}/v1/domains/library/import?dryRun=true: ECONNREFUSED`,
    );
    await expect(runExport(['library'], { server, token }, capture())).rejects.toThrow(
      `cannot reach ${server}/v1/domains/library/export: ECONNREFUSED`,
    );
  });

  it('refuses what the caller may not change', async () => {
    const file = join(dir, 'shop.yaml');
    writeFileSync(file, 'domains:\n  - name: shop\n');
    await expect(runApply({ file, server: url, token }, capture())).rejects.toThrow(
      /shop: .*\(management\.forbidden\)|shop: .*\(domain\.not_found\)/,
    );
    // Without a token and without a stored login (an empty configuration directory: the test never
    // reads the real ~/.config/gatehouse).
    process.env.GATEHOUSE_CONFIG_DIR = join(dir, 'no-login');
    try {
      await expect(runApply({ file, server: url }, capture())).rejects.toThrow(
        /--server needs --token|gatehouse login/,
      );
    } finally {
      delete process.env.GATEHOUSE_CONFIG_DIR;
    }
  });
});
