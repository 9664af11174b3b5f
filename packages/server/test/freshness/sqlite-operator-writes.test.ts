import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noticesOfAuditEvent } from '../../src/catalog/audit-poller.js';
import { runApply } from '../../src/cli/apply-command.js';
import type { CommandOutput } from '../../src/cli/run-operator-command.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createGatehouse, type Gatehouse } from '../../src/runtime/create-gatehouse.js';
import { openDatabase, type OpenDatabase } from '../../src/storage/open-database.js';
import { Store } from '../../src/storage/store.js';
import { UserStore } from '../../src/storage/user-store.js';
import { cheapHasher } from '../storage/store-fixtures.js';
import { seenWithin } from './freshness-fixture.js';

// docs/scale-out.md "One SQLite file": a running node sees what operator commands write to its
// file (gatehouse apply, a second process) within a second, by following the audit trail.
const ctx = { actor: 'operator' };
const quiet: CommandOutput = { out: () => undefined, err: () => undefined };

let dir: string;
let file: string;
let node: Gatehouse;
let other: OpenDatabase;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-sqlite-feed-'));
  file = join(dir, 'g.db');
  node = await createGatehouse(loadConfig({ GATEHOUSE_DATABASE_URL: `sqlite:${file}` }), {
    logger: false,
    hasher: cheapHasher(),
    auditPollIntervalMs: 20,
  });
  // Another process's connection to the same file.
  other = await openDatabase({ kind: 'sqlite', path: file });
});
afterAll(async () => {
  await other?.close();
  await node?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a SQLite node', () => {
  it('sees domains, members and users written by another connection within a second', async () => {
    const store = new Store(other);
    await store.createDomain({ name: 'shop' }, ctx);
    await store.createRole('shop', { name: 'staff', members: [{ name: 'user.zed' }] }, ctx);
    await seenWithin('shop on the node', () => node.catalog.catalog.domains.get('shop')?.roles.has('staff') === true);
    await new UserStore(store, { hasher: cheapHasher() }).createUser(
      { name: 'zed', externalIds: ['idp|zed'], attributes: { level: 3 } },
      ctx,
    );
    await seenWithin(
      'zed on the node',
      () =>
        node.directory.findUser('idp|zed') === 'zed' && node.catalog.catalog.principals.get('user.zed')?.level === 3,
    );
    await store.deleteDomain('shop', undefined, ctx);
    await seenWithin('shop deleted on the node', () => !node.catalog.catalog.domains.has('shop'));
  });

  it('sees what gatehouse apply writes to its file', async () => {
    const config = join(dir, 'library.yaml');
    writeFileSync(
      config,
      [
        'users:',
        '  - { name: amy, email: amy@example.com }',
        'domains:',
        '  - name: library',
        '    roles:',
        '      - { name: readers, members: [user.amy] }',
        '    services:',
        '      - { name: gateway }',
      ].join('\n'),
    );
    process.env.GATEHOUSE_DATABASE_URL = `sqlite:${file}`;
    try {
      await runApply({ file: config, dryRun: false }, quiet);
    } finally {
      delete process.env.GATEHOUSE_DATABASE_URL;
    }
    await seenWithin(
      'the applied file on the node',
      () =>
        node.catalog.catalog.domains.get('library')?.roles.has('readers') === true &&
        node.directory.findUser('amy@example.com') === 'amy' &&
        node.directory.hasService('library.gateway'),
    );
  });

  it('turns every kind of audit event into the notices of what it changed', () => {
    const event = (object_type: string, object_name: string, domain: string | null, action = `${object_type}.update`) =>
      noticesOfAuditEvent({ object_type, object_name, domain, action });
    expect(event('user', 'zed', null)).toEqual([{ kind: 'user', name: 'zed', revision: Number.MAX_SAFE_INTEGER }]);
    expect(event('user', 'zed', null, 'user.delete')).toEqual([{ kind: 'user', name: 'zed', revision: null }]);
    expect(event('domain', 'shop', null, 'domain.delete')).toEqual([{ kind: 'domain', name: 'shop', revision: null }]);
    expect(event('role', 'staff', 'shop')).toEqual([
      { kind: 'domain', name: 'shop', revision: Number.MAX_SAFE_INTEGER },
    ]);
    expect(event('service', 'gateway', 'library', 'service.delete')).toEqual([
      { kind: 'domain', name: 'library', revision: Number.MAX_SAFE_INTEGER },
      { kind: 'service', principal: 'library.gateway' },
    ]);
    expect(event('key', 'k1', null)).toEqual([]);
    expect(event('something-new', 'x', null)).toEqual([{ kind: 'all' }]);
  });
});
