import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KeyService, type KeyServiceOptions } from '../../src/keys/key-service.js';
import { KeyDecryptionError } from '../../src/keys/master-key-cipher.js';
import { listAudit, verifyAuditChain } from '../../src/storage/audit-log.js';
import type { OpenDatabase } from '../../src/storage/open-database.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from '../storage/test-databases.js';
import { openSecondConnection } from './second-connection.js';

const START = new Date('2026-06-01T00:00:00Z');
const KID = /^[A-Za-z0-9_-]{16,}$/;

// architecture.md "Cross-cutting" (keys) and "Scale-out" (keys shared through the database).
describe.each(TEST_DATABASE_KINDS)('KeyService on $name', (kind) => {
  let t: TestDatabase;
  let now: Date;
  const clock = (): Date => now;
  const others: OpenDatabase[] = [];
  const masterKey = randomBytes(32);

  function service(options: Partial<KeyServiceOptions> = {}): KeyService {
    return new KeyService({ db: t.open.db, masterKey, clock, warn: () => {}, ...options });
  }

  beforeEach(async () => {
    t = await kind.create();
    now = START;
  });
  afterEach(async () => {
    for (const o of others.splice(0)) await o.close();
    await t.dispose();
  });

  async function rows() {
    return t.open.db.selectFrom('keys').selectAll().orderBy('created_at').orderBy('kid').execute();
  }

  it('creates one key per purpose on first start, audits it, and does nothing the second time', async () => {
    const keys = service();
    await keys.ensureKeys({ actor: 'user.root' });
    const first = await rows();
    expect(first.map((r) => r.purpose).sort()).toEqual(['control', 'token']);
    for (const r of first) {
      expect(r).toMatchObject({ alg: 'EdDSA', created_at: START.toISOString(), retired_at: null, expires_at: null });
      expect(r.kid).toMatch(KID);
    }
    await keys.ensureKeys();
    await service().ensureKeys();
    expect(await rows()).toEqual(first);
    const audit = await listAudit(t.open.db, { limit: 10 });
    expect(audit.items.map((e) => [e.action, e.actor, e.objectType, e.domain])).toEqual([
      ['key.create', 'user.root', 'key', null],
      ['key.create', 'user.root', 'key', null],
    ]);
    expect(JSON.stringify(audit.items)).not.toMatch(/"d"/);
    expect(await verifyAuditChain(t.open.db)).toMatchObject({ ok: true, events: 2 });
  });

  it('gives nodes starting together on one database the same current key', async () => {
    const connections = await Promise.all([1, 2, 3, 4].map(() => openSecondConnection(t.open)));
    others.push(...connections);
    const nodes = connections.map((c) => service({ db: c.db }));
    await Promise.all(nodes.map((n) => n.ensureKeys()));
    expect((await rows()).map((r) => r.purpose).sort()).toEqual(['control', 'token']);
    for (const purpose of ['token', 'control'] as const) {
      const kids = await Promise.all(nodes.map(async (n) => (await n.currentSigningKey(purpose)).kid));
      expect(new Set(kids).size).toBe(1);
    }
  });

  it('signs with a key that cannot be exported and publishes public members only', async () => {
    const keys = service();
    await keys.ensureKeys();
    const signing = await keys.currentSigningKey('token');
    expect(signing).toMatchObject({ alg: 'EdDSA', privateKey: { type: 'private', extractable: false } });
    const jwks = await keys.publicJwks('token');
    expect(jwks.keys).toEqual([
      { kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid: signing.kid, alg: 'EdDSA', use: 'sig' },
    ]);
    expect((await keys.publicJwks('control')).keys[0]!.kid).not.toBe(signing.kid);
    // The JWKS handed out is a copy: changing it does not change the next one.
    jwks.keys[0]!.d = 'x';
    expect((await keys.publicJwks('token')).keys[0]).not.toHaveProperty('d');
  });

  it('creates ES256 keys when asked; existing keys keep their algorithm until rotation', async () => {
    const keys = service({ alg: 'ES256' });
    await keys.ensureKeys();
    expect((await keys.publicJwks('token')).keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(await keys.currentSigningKey('control')).toMatchObject({ alg: 'ES256' });
    const ed = service({ alg: 'EdDSA' });
    expect(await ed.currentSigningKey('token')).toMatchObject({ alg: 'ES256' });
    await ed.rotate('token', { actor: 'user.root', overlapSeconds: 60 });
    expect(await ed.currentSigningKey('token')).toMatchObject({ alg: 'EdDSA' });
  });

  it('throws key.not_found before ensureKeys', async () => {
    await expect(service().currentSigningKey('token')).rejects.toMatchObject({
      name: 'NotFoundError',
      code: 'key.not_found',
    });
  });

  it('rotates: the new key signs, the old one stays in the JWKS until its expiry, then drops out', async () => {
    const keys = service();
    await keys.ensureKeys();
    const oldKid = (await keys.currentSigningKey('token')).kid;
    const controlKid = (await keys.currentSigningKey('control')).kid;
    now = new Date(START.getTime() + 10_000);
    const newKid = await keys.rotate('token', { actor: 'user.root', overlapSeconds: 3600, requestId: 'req-9' });
    expect(newKid).toMatch(KID);
    expect(newKid).not.toBe(oldKid);
    expect((await keys.currentSigningKey('token')).kid).toBe(newKid);
    expect((await keys.currentSigningKey('control')).kid).toBe(controlKid);
    expect((await keys.publicJwks('token')).keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    const old = (await rows()).find((r) => r.kid === oldKid)!;
    expect(old).toMatchObject({ retired_at: '2026-06-01T00:00:10.000Z', expires_at: '2026-06-01T01:00:10.000Z' });
    expect(await keys.findVerificationKey('token', oldKid)).toMatchObject({ kid: oldKid, alg: 'EdDSA' });

    const audit = await listAudit(t.open.db, { limit: 10 });
    expect(audit.items.at(-1)).toMatchObject({
      action: 'key.rotate',
      actor: 'user.root',
      domain: null,
      objectType: 'key',
      objectName: newKid,
      requestId: 'req-9',
      before: { purpose: 'token', current: [{ kid: oldKid, alg: 'EdDSA' }] },
      after: { kid: newKid, purpose: 'token', retired: [oldKid], retiredExpiresAt: '2026-06-01T01:00:10.000Z' },
    });

    now = new Date('2026-06-01T01:00:09.999Z');
    expect((await keys.publicJwks('token')).keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    now = new Date('2026-06-01T01:00:10.000Z');
    expect((await keys.publicJwks('token')).keys.map((k) => k.kid)).toEqual([newKid]);
    expect(await keys.findVerificationKey('token', oldKid)).toBeUndefined();
    await keys.reload();
    expect((await keys.publicJwks('token')).keys.map((k) => k.kid)).toEqual([newKid]);
  });

  it('overlaps by maxTokenTtlSeconds + refreshSeconds unless told, and refuses to guess', async () => {
    const keys = service({ maxTokenTtlSeconds: 900, refreshSeconds: 30 });
    await keys.ensureKeys();
    const oldKid = (await keys.currentSigningKey('control')).kid;
    await keys.rotate('control', { actor: 'user.root' });
    expect((await rows()).find((r) => r.kid === oldKid)).toMatchObject({ expires_at: '2026-06-01T00:15:30.000Z' });
    await expect(service().rotate('control', { actor: 'user.root' })).rejects.toThrow(TypeError);
    await expect(service().rotate('control', { actor: 'user.root', overlapSeconds: -1 })).rejects.toThrow(TypeError);
  });

  it('leaves exactly one current key when two nodes rotate at once', async () => {
    const connections = await Promise.all([1, 2].map(() => openSecondConnection(t.open)));
    others.push(...connections);
    const [a, b] = connections.map((c) => service({ db: c.db }));
    await a!.ensureKeys();
    const kids = await Promise.all([a!, b!].map((n) => n.rotate('token', { actor: 'user.root', overlapSeconds: 60 })));
    const token = (await rows()).filter((r) => r.purpose === 'token');
    expect(token).toHaveLength(3);
    const current = token.filter((r) => r.retired_at === null);
    expect(current).toHaveLength(1);
    expect(kids).toContain(current[0]!.kid);
    await a!.reload();
    await b!.reload();
    expect((await a!.currentSigningKey('token')).kid).toBe(current[0]!.kid);
    expect((await b!.currentSigningKey('token')).kid).toBe(current[0]!.kid);
    expect(await verifyAuditChain(t.open.db)).toMatchObject({ ok: true, events: 4 });
  });

  it('lets another node see a rotation after reload(), or by itself after refreshSeconds', async () => {
    const a = service();
    const b = service({ refreshSeconds: 60 });
    await a.ensureKeys();
    await b.ensureKeys();
    const oldKid = (await b.currentSigningKey('token')).kid;
    const newKid = await a.rotate('token', { actor: 'user.root', overlapSeconds: 600 });
    expect((await b.currentSigningKey('token')).kid).toBe(oldKid);
    expect(await b.findVerificationKey('token', newKid)).toBeUndefined();
    now = new Date(START.getTime() + 60_000);
    expect((await b.currentSigningKey('token')).kid).toBe(newKid);
    const c = service({ refreshSeconds: 3600 });
    await c.reload();
    const newer = await a.rotate('token', { actor: 'user.root', overlapSeconds: 600 });
    expect(await c.findVerificationKey('token', newer)).toBeUndefined();
    await c.reload();
    expect(await c.findVerificationKey('token', newer)).toMatchObject({ kid: newer });
    expect((await c.currentSigningKey('token')).kid).toBe(newer);
  });

  it('keeps token and control keys apart', async () => {
    const keys = service();
    await keys.ensureKeys();
    const control = await keys.currentSigningKey('control');
    expect(await keys.findVerificationKey('token', control.kid)).toBeUndefined();
    expect(await keys.findVerificationKey('control', control.kid)).toMatchObject({ kid: control.kid });
  });

  it('encrypts private keys at rest with a master key', async () => {
    await service().ensureKeys();
    for (const r of await rows()) {
      expect(r.private_jwk).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
      expect(() => JSON.parse(r.private_jwk) as unknown).toThrow();
      expect(r.private_jwk).not.toContain('"d"');
      expect(JSON.parse(r.public_jwk)).not.toHaveProperty('d');
    }
    const wrong = service({ masterKey: randomBytes(32) });
    await expect(wrong.ensureKeys()).rejects.toBeInstanceOf(KeyDecryptionError);
    await expect(wrong.currentSigningKey('token')).rejects.toMatchObject({ reason: 'wrong_key_or_tampered' });
    // Verification needs only public keys, so a node with a wrong master key still verifies.
    const kid = (await service().currentSigningKey('token')).kid;
    expect(await wrong.findVerificationKey('token', kid)).toMatchObject({ kid });
    await expect(service({ masterKey: undefined }).ensureKeys()).rejects.toMatchObject({
      name: 'KeyDecryptionError',
      reason: 'no_master_key',
    });
  });

  it('stores keys as plain JSON without a master key, with a warning', async () => {
    const warn = vi.fn();
    const keys = service({ masterKey: undefined, warn });
    await keys.ensureKeys();
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/GATEHOUSE_MASTER_KEY is not set/));
    for (const r of await rows()) expect(JSON.parse(r.private_jwk.replace(/^plain\./, ''))).toHaveProperty('d');
    expect((await keys.currentSigningKey('token')).privateKey.extractable).toBe(false);
  });

  it('encrypts keys stored in the clear once a master key is set, keeping the same keys', async () => {
    const plain = service({ masterKey: undefined });
    await plain.ensureKeys();
    const before = await rows();
    const warn = vi.fn();
    const keys = service({ warn });
    await keys.ensureKeys();
    const after = await rows();
    expect(after.map((r) => r.kid)).toEqual(before.map((r) => r.kid));
    for (const r of after) expect(r.private_jwk).toMatch(/^v1\./);
    expect(warn).toHaveBeenCalledWith('encrypted 2 private key(s) that were stored in the clear');
    expect((await keys.currentSigningKey('token')).kid).toBe(before.find((r) => r.purpose === 'token')!.kid);
  });
});
