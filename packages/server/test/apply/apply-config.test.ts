import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfigFile, type ParsedConfig } from '@gatehouse/engine';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyConfig } from '../../src/apply/apply-config.js';
import { configToYaml, exportConfig } from '../../src/apply/export-config.js';
import { formatPlan } from '../../src/apply/plan-apply.js';
import { verifyAuditChain } from '../../src/storage/audit-log.js';
import { ClientStore } from '../../src/storage/client-store.js';
import { SecretHasher } from '../../src/storage/secret-hasher.js';
import { ServiceStore } from '../../src/storage/service-store.js';
import { Store, type WriteContext } from '../../src/storage/store.js';
import { UserStore } from '../../src/storage/user-store.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from '../storage/test-databases.js';

const ctx: WriteContext = { actor: 'operator' };
const NOW = new Date('2026-06-01T00:00:00Z');

function parsed(text: string): ParsedConfig {
  const p = parseConfigFile('f.yaml', text);
  if (p.issues.length > 0) throw new Error(p.issues.map((i) => `${i.line}:${i.column} ${i.message}`).join('\n'));
  return p;
}

const LIBRARY = `
domains:
  - name: partner
    roles:
      - { name: staff, members: [user.pat] }
    groups:
      - { name: crew, members: [user.quinn] }
    policies:
      - name: delegation
        assertions:
          - { effect: allow, action: assume_role, resource: "library:role.partner-readers", role: staff }
  - name: library
    description: Public library
    admins: [user.alice]
    attributes: { tier: gold }
    groups:
      - { name: staff, members: [user.carol, { name: user.zoe, expires: "2026-12-31T00:00:00Z" }] }
      - { name: night-shift, parent: staff, members: [user.dave] }
    roles:
      - name: readers
        members: [user.alice, { name: user.bob, expires: "2027-01-01T00:00:00Z" }, { name: user.eve, disabled: true }, library:group.staff, "user.*"]
      - { name: partner-readers, trust: partner }
      - { name: crew, members: [partner:group.crew] }
    policies:
      - name: books
        version: "2"
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
          - { effect: deny, action: delete, resource: "library:book/rare-*", role: readers }
          - { effect: allow, action: update, resource: "library:book/*", role: readers, condition: "resource.properties.owner == subject.id" }
      - name: books
        version: "1"
        active: false
        assertions:
          - { effect: allow, action: "*", resource: "library:*", principal: "*" }
  - name: library.archive
`;

// config-format.md: apply reconciles, is idempotent, and export → apply round-trips exactly.
describe.each(TEST_DATABASE_KINDS)('apply and export on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('creates everything, then finds no changes the second time', async () => {
    const first = await applyConfig(store, parsed(LIBRARY), { ctx });
    expect(first.applied).toBe(true);
    const lines = formatPlan(first.plan).split('\n');
    expect(lines.filter((l) => l.startsWith('  + domain'))).toEqual([
      '  + domain library',
      '  + domain partner',
      '  + domain library.archive',
    ]);
    expect(lines).toContain('  + role library:readers');
    expect(lines).toContain('  + policy library:books@1');
    expect(lines[lines.length - 1]).toMatch(/^Plan: \d+ to create, 0 to change, 0 to delete\.$/);
    expect([...first.compiled.keys()].sort()).toEqual(['library', 'library.archive', 'partner']);
    const second = await applyConfig(store, parsed(LIBRARY), { ctx });
    expect(second).toMatchObject({ applied: false, plan: { changes: [] } });
    expect(formatPlan(second.plan)).toBe('No changes. The store already matches the file.');
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true });
  });

  it('round-trips: export, then apply the export, changes nothing', async () => {
    await applyConfig(store, parsed(LIBRARY), { ctx });
    const exported = configToYaml(await exportConfig(store.db));
    const again = await applyConfig(store, parsed(exported), { ctx });
    expect(again.plan.changes).toEqual([]);
    // And the export of the export is the same text.
    expect(configToYaml(await exportConfig(store.db))).toBe(exported);
    expect(exported).toContain('- name: library\n');
    expect(exported).not.toContain('password');
  });

  it('plans and makes updates and deletions inside the named domains only', async () => {
    await applyConfig(store, parsed(LIBRARY), { ctx });
    await store.createDomain({ name: 'untouched' }, ctx);
    const changed = LIBRARY.replace('[user.pat]', '[user.pat, user.quinn]')
      .replace(/ {6}- name: books\n {8}version: "1"[\s\S]*?principal: "\*" \}\n/, '')
      .replace('description: Public library', 'description: The public library');
    const r = await applyConfig(store, parsed(changed), { ctx });
    expect(formatPlan(r.plan)).toBe(
      [
        '  ~ domain library',
        '      description: "Public library" → "The public library"',
        '  ~ role partner:staff',
        '      members: +user.quinn',
        '  - policy library:books@1',
        '',
        'Plan: 0 to create, 2 to change, 1 to delete.',
      ].join('\n'),
    );
    await expect(store.getPolicy('library', 'books')).resolves.toHaveLength(1);
    await expect(store.getDomain('untouched')).resolves.toMatchObject({ name: 'untouched' });
  });

  it('dry runs validate everything and change nothing', async () => {
    const r = await applyConfig(store, parsed(LIBRARY), { ctx, dryRun: true });
    expect(r.applied).toBe(false);
    expect(r.plan.changes.length).toBeGreaterThan(5);
    expect((await store.listDomains()).items).toEqual([]);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, events: 0 });
  });

  it('applies all or nothing', async () => {
    await applyConfig(store, parsed(LIBRARY), { ctx });
    // Deleting partner's crew group while library (not in this file) still refers to it fails,
    // and the other change in the same file is not made either.
    const partnerOnly = `
domains:
  - name: partner
    roles:
      - { name: staff, members: [user.pat, user.new] }
    policies:
      - name: delegation
        assertions:
          - { effect: allow, action: assume_role, resource: "library:role.partner-readers", role: staff }
`;
    await expect(applyConfig(store, parsed(partnerOnly), { ctx })).rejects.toMatchObject({ code: 'group.referenced' });
    expect((await store.getRole('partner', 'staff')).members).toEqual([{ name: 'user.pat' }]);
  });
});

describe.each(TEST_DATABASE_KINDS)('apply of users, services, APIs, clients and resources on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  const hasher = new SecretHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 });
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
  });
  afterEach(async () => {
    await t.dispose();
  });
  const example = readFileSync(
    fileURLToPath(new URL('../../../../examples/library/library.yaml', import.meta.url)),
    'utf8',
  );

  it('applies the documented example whole, idempotently, and round-trips it through export', async () => {
    const first = await applyConfig(store, parsed(example), { ctx, hasher });
    const kinds = new Set(first.plan.changes.map((c) => c.kind));
    for (const k of ['user', 'domain', 'role', 'group', 'policy', 'resource', 'service', 'api', 'client'])
      expect(kinds).toContain(k);
    // The example's service sets its secret, and its client is public: nothing was generated.
    expect(first.secrets).toEqual([]);
    expect(
      await new ServiceStore(store, { hasher }).verifyServiceSecret(
        'library',
        'indexer',
        'a-long-random-client-secret',
      ),
    ).toBe(true);
    expect((await applyConfig(store, parsed(example), { ctx, hasher })).plan.changes).toEqual([]);
    const exported = configToYaml(await exportConfig(store.db));
    expect(exported).not.toContain('a-long-random-client-secret');
    expect((await applyConfig(store, parsed(exported), { ctx, hasher })).plan.changes).toEqual([]);
    expect(exported).toContain('users:');
  });

  it('changes a secret or password only when the file’s no longer matches, and generates missing secrets once', async () => {
    await applyConfig(store, parsed(example), { ctx, hasher });
    const changed = example
      .replace('a-long-random-client-secret', 'another-long-random-secret')
      .replace('  - name: alice\n', '  - name: alice\n    password: "correct horse battery"\n')
      .replace(
        '    clients:\n',
        '    clients:\n      - { clientId: library-cli, type: confidential, grantTypes: [client_credentials] }\n',
      );
    const r = await applyConfig(store, parsed(changed), { ctx, hasher });
    expect(formatPlan(r.plan)).toContain('  ~ user alice\n      password: (changed)');
    expect(formatPlan(r.plan)).toContain('  ~ service library:indexer\n      secret: (changed)');
    expect(r.secrets).toEqual([{ kind: 'client', name: 'library-cli', secret: expect.any(String) }]);
    expect(await new UserStore(store, { hasher }).verifyPassword('alice', 'correct horse battery')).toBe(true);
    // The generated secret is not in the file: applying it again keeps it.
    const again = await applyConfig(store, parsed(changed), { ctx, hasher });
    expect(again.plan.changes).toEqual([]);
    expect(await new ClientStore(store, { hasher }).verifyClientSecret('library-cli', r.secrets[0]!.secret)).toBe(true);
  });
});
