import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/storage/audit-log.js';
import { ClientStore } from '../../src/storage/client-store.js';
import { ConflictError, NotFoundError } from '../../src/storage/errors.js';
import {
  loadServicesAsPrincipals,
  SERVICE_LIMITS,
  ServiceStore,
  type ServiceInput,
} from '../../src/storage/service-store.js';
import { Store } from '../../src/storage/store.js';
import { auditEvents, cheapHasher, ctx, expectOneWinner, issuesOf, NOW } from './store-fixtures.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from './test-databases.js';

const SECRET = 'a-long-random-client-secret';
// RFC 8037 Appendix A.2, the public part of the Ed25519 example key.
const ED25519 = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', kid: 'k1' };
const EC = {
  kty: 'EC',
  crv: 'P-256',
  x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
  y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
  kid: 'k2',
};

// The storage contract for services (config-format.md `services`), on SQLite and PostgreSQL.
describe.each(TEST_DATABASE_KINDS)('service store on $name', (kind) => {
  let t: TestDatabase;
  let store: Store;
  let services: ServiceStore;
  beforeEach(async () => {
    t = await kind.create();
    store = new Store(t.open, { clock: () => NOW });
    services = new ServiceStore(store, { hasher: cheapHasher() });
    await store.createDomain({ name: 'library' }, ctx);
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('creates a service with a generated secret, returned once and stored only as a hash', async () => {
    const w = await services.createService('Library', { name: 'Indexer', description: 'Indexes books' }, ctx);
    expect(w.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(w.record).toEqual({
      domain: 'library',
      name: 'indexer',
      principal: 'library.indexer',
      description: 'Indexes books',
      publicKeys: [],
      hasSecret: true,
      revision: 1,
      createdAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    });
    expect(w.revision).toBe(2);
    expect(JSON.stringify(w.record)).not.toContain(w.secret);
    expect(await services.getService('library', 'INDEXER')).toEqual(w.record);
    const row = await store.db.selectFrom('services').select('secret_hash').executeTakeFirstOrThrow();
    expect(row.secret_hash).toMatch(/^\$argon2id\$/);
    expect(await services.verifyServiceSecret('library', 'indexer', w.secret!)).toBe(true);
    expect(await services.verifyServiceSecret('library', 'indexer', `${w.secret!}x`)).toBe(false);
    expect(await services.verifyServiceSecret('library', 'nobody', w.secret!)).toBe(false);
    expect(await services.verifyServiceSecret('nope', 'indexer', w.secret!)).toBe(false);
  });

  it('takes a given secret (and does not return it), public keys, or no secret at all', async () => {
    const given = await services.createService('library', { name: 'a', secret: SECRET }, ctx);
    expect(given.secret).toBeUndefined();
    expect(await services.verifyServiceSecret('library', 'a', SECRET)).toBe(true);
    const keyOnly = await services.createService('library', { name: 'b', publicKeys: [ED25519, EC] }, ctx);
    expect(keyOnly.secret).toBeUndefined();
    expect(keyOnly.record).toMatchObject({ hasSecret: false, publicKeys: [ED25519, EC] });
    expect(await services.verifyServiceSecret('library', 'b', '')).toBe(false);
    const none = await services.createService('library', { name: 'c', secret: null }, ctx);
    expect(none.record.hasSecret).toBe(false);
    const both = await services.createService('library', { name: 'd', secret: SECRET, publicKeys: [ED25519] }, ctx);
    expect(both.record).toMatchObject({ hasSecret: true, publicKeys: [ED25519] });
  });

  it.each<[string, Partial<ServiceInput>, [string, string][]]>([
    ['a dotted name', { name: 'indexer.v2' }, [['name', 'service.invalid_name']]],
    ['a name with a space', { name: 'the indexer' }, [['name', 'service.invalid_name']]],
    ['an empty name', { name: '' }, [['name', 'service.invalid_name']]],
    ['a name too long', { name: 'n'.repeat(65) }, [['name', 'service.invalid_name']]],
    ['a description too long', { description: 'd'.repeat(1025) }, [['description', 'service.invalid_description']]],
    ['a secret too short', { secret: 'short' }, [['secret', 'service.invalid_secret']]],
    ['a secret with non-ASCII', { secret: 'sécret-sécret-sécret' }, [['secret', 'service.invalid_secret']]],
    [
      'a private key',
      { publicKeys: [{ ...ED25519, d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A' }] },
      [['publicKeys[0]', 'service.private_key']],
    ],
    ['a symmetric key', { publicKeys: [{ kty: 'oct', k: 'c2VjcmV0' }] }, [['publicKeys[0]', 'service.private_key']]],
    ['a key without kty', { publicKeys: [{ x: 'abc' }] }, [['publicKeys[0].kty', 'service.invalid_public_key']]],
    [
      'an RSA key without n',
      { publicKeys: [{ kty: 'RSA', e: 'AQAB' }] },
      [['publicKeys[0].n', 'service.invalid_public_key']],
    ],
    [
      'an EC key on another curve',
      { publicKeys: [{ ...EC, crv: 'secp256k1' }] },
      [['publicKeys[0].crv', 'service.invalid_public_key']],
    ],
    [
      'an encryption key',
      { publicKeys: [{ ...EC, use: 'enc' }] },
      [['publicKeys[0].use', 'service.invalid_public_key']],
    ],
    [
      'two keys with one kid',
      { publicKeys: [ED25519, { ...EC, kid: 'k1' }] },
      [['publicKeys[1].kid', 'service.invalid_public_key']],
    ],
    [
      'keys that are not objects',
      { publicKeys: ['key'] as unknown as Record<string, unknown>[] },
      [['publicKeys[0]', 'service.invalid_public_key']],
    ],
    [
      'too many keys',
      { publicKeys: Array.from({ length: SERVICE_LIMITS.publicKeys + 1 }, (_, i) => ({ ...ED25519, kid: `k${i}` })) },
      [['publicKeys', 'service.invalid_public_key']],
    ],
  ])('refuses %s', async (_, over, expected) => {
    expect(await issuesOf(services.createService('library', { name: 'indexer', ...over }, ctx))).toEqual(expected);
    expect((await store.getDomain('library')).revision).toBe(1);
  });

  it('refuses services in the user domain: they would be users', async () => {
    await store.createDomain({ name: 'user' }, ctx);
    expect(await issuesOf(services.createService('user', { name: 'alice' }, ctx))).toEqual([
      ['name', 'service.reserved_domain'],
    ]);
  });

  it('keeps service names unique in a domain, and apart from OAuth client ids', async () => {
    await services.createService('library', { name: 'indexer' }, ctx);
    await expect(services.createService('library', { name: 'INDEXER' }, ctx)).rejects.toMatchObject({
      constructor: ConflictError,
      code: 'service.exists',
      message: expect.stringContaining('library.indexer'),
    });
    // A dotted client id lives in its own domain's namespace (client-store.ts).
    await new ClientStore(store, { hasher: cheapHasher() }).createClient(
      'library',
      { clientId: 'Library.Crawler', type: 'confidential', grantTypes: ['client_credentials'] },
      ctx,
    );
    await expect(services.createService('library', { name: 'crawler' }, ctx)).rejects.toMatchObject({
      code: 'service.client_id_taken',
      message: expect.stringContaining('Library.Crawler'),
    });
  });

  it('updates the description and public keys with If-Match; exactly one concurrent update wins', async () => {
    await services.createService('library', { name: 'indexer', secret: SECRET }, ctx);
    const w = await services.updateService('library', 'indexer', { publicKeys: [EC] }, 1, ctx);
    expect(w.record).toMatchObject({ publicKeys: [EC], description: null, hasSecret: true, revision: 2 });
    expect(w.revision).toBe(3);
    await expect(services.updateService('library', 'indexer', { description: 'x' }, 1, ctx)).rejects.toMatchObject({
      code: 'revision.stale',
      currentRevision: 2,
    });
    expect(
      await issuesOf(services.updateService('library', 'indexer', { publicKeys: [{ kty: 'oct', k: 'x' }] }, 2, ctx)),
    ).toEqual([['publicKeys[0]', 'service.private_key']]);
    await expect(services.updateService('library', 'nobody', {}, undefined, ctx)).rejects.toMatchObject({
      code: 'service.not_found',
    });
    const winner = await expectOneWinner(8, (i) =>
      services.updateService('library', 'indexer', { description: `d${i}` }, 2, ctx),
    );
    expect(await services.getService('library', 'indexer')).toMatchObject({ description: `d${winner}`, revision: 3 });
    expect(await services.verifyServiceSecret('library', 'indexer', SECRET)).toBe(true);
  });

  it('rotates the secret: the new one works at once, the old one stops', async () => {
    const created = await services.createService('library', { name: 'indexer' }, ctx);
    const rotated = await services.rotateServiceSecret('library', 'indexer', 1, ctx);
    expect(rotated.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(rotated.secret).not.toBe(created.secret);
    expect(rotated.record.revision).toBe(2);
    expect(await services.verifyServiceSecret('library', 'indexer', created.secret!)).toBe(false);
    expect(await services.verifyServiceSecret('library', 'indexer', rotated.secret!)).toBe(true);
    const chosen = await services.rotateServiceSecret('library', 'indexer', 2, ctx, { secret: SECRET });
    expect(chosen.secret).toBeUndefined();
    expect(await services.verifyServiceSecret('library', 'indexer', SECRET)).toBe(true);
    await expect(services.rotateServiceSecret('library', 'indexer', 2, ctx)).rejects.toMatchObject({
      code: 'revision.stale',
    });
    expect(await issuesOf(services.rotateServiceSecret('library', 'indexer', 3, ctx, { secret: 'short' }))).toEqual([
      ['secret', 'service.invalid_secret'],
    ]);
  });

  it('deletes a service, lists them a page at a time, and loads them as principals', async () => {
    for (const n of ['crawler', 'indexer', 'backup']) await services.createService('library', { name: n }, ctx);
    const page1 = await services.listServices('library', { limit: 2 });
    const page2 = await services.listServices('library', { cursor: page1.nextCursor, limit: 2 });
    expect([...page1.items, ...page2.items].map((s) => s.name)).toEqual(['backup', 'crawler', 'indexer']);
    expect(page2.nextCursor).toBeUndefined();
    expect(await loadServicesAsPrincipals(store.db)).toEqual([
      { name: 'library.backup', attributes: {} },
      { name: 'library.crawler', attributes: {} },
      { name: 'library.indexer', attributes: {} },
    ]);
    expect((await services.findServiceByPrincipal('Library.Indexer'))?.name).toBe('indexer');
    expect(await services.findServiceByPrincipal('library')).toBeUndefined();
    await expect(services.deleteService('library', 'crawler', 9, ctx)).rejects.toMatchObject({
      code: 'revision.stale',
    });
    await services.deleteService('library', 'crawler', 1, ctx);
    await expect(services.getService('library', 'crawler')).rejects.toBeInstanceOf(NotFoundError);
    await expect(services.deleteService('library', 'crawler', undefined, ctx)).rejects.toMatchObject({
      code: 'service.not_found',
    });
    await expect(services.listServices('nope')).rejects.toMatchObject({ code: 'domain.not_found' });
    await expect(services.createService('nope', { name: 'x' }, ctx)).rejects.toMatchObject({
      code: 'domain.not_found',
    });
  });

  it('audits every write and never a secret or its hash', async () => {
    const created = await services.createService('library', { name: 'indexer' }, ctx);
    await services.createService('library', { name: 'given', secret: SECRET }, ctx);
    const rotated = await services.rotateServiceSecret('library', 'indexer', 1, ctx);
    await services.updateService('library', 'indexer', { description: 'x' }, 2, ctx);
    await services.deleteService('library', 'indexer', 3, ctx);
    const events = (await auditEvents(store)).slice(1);
    expect(events.map((e) => [e.action, e.domain, e.objectName])).toEqual([
      ['service.create', 'library', 'indexer'],
      ['service.create', 'library', 'given'],
      ['service.rotate_secret', 'library', 'indexer'],
      ['service.update', 'library', 'indexer'],
      ['service.delete', 'library', 'indexer'],
    ]);
    expect(events[2]).toMatchObject({ before: { revision: 1, hasSecret: true }, after: { revision: 2 } });
    const json = JSON.stringify(events);
    for (const secret of [created.secret!, rotated.secret!, SECRET, '$argon2']) expect(json).not.toContain(secret);
    expect(json).not.toMatch(/secret_?hash/i);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, events: 6 });
  });
});
