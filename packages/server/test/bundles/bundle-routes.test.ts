import type { BundlePayload } from '@gatehouse/engine';
import { createLocalJWKSet, generalVerify, type GeneralJWS, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_JWS_TYPE, BundleService } from '../../src/bundles/bundle-service.js';
import { OPERATOR } from '../../src/management/management-service.js';
import { canonicalJson } from '../../src/storage/canonical-json.js';
import { expectProblem, startManagementFixture, type ManagementFixture } from '../management/management-fixture.js';

// api.md §4: GET /v1/domains/{d}/bundle — a General JWS over the canonical payload, signed by the
// control key (/v1/keys/control) and the token key (/oidc/jwks); ETag = revision; bundle.read.
let f: ManagementFixture;
const op = { principal: OPERATOR };
const TTL_MS = 604_800 * 1000;

beforeAll(async () => {
  f = await startManagementFixture(['user.alice', 'user.nobody', 'shop.indexer']);
  const m = f.gh.management;
  await m.createDomain(op, { name: 'library', admins: [{ name: 'user.alice', expires: '2099-01-01T00:00:00Z' }] });
  await m.createDomain(op, { name: 'shop' });
  await m.createService(op, 'shop', { name: 'indexer' });
  await m.createRole(op, 'library', { name: 'readers', members: [{ name: 'user.nobody' }] });
  await m.createRole(op, 'library', { name: 'bundle-readers', members: [{ name: 'shop.indexer' }] });
  await m.putPolicy(
    op,
    'library',
    {
      name: 'bundles',
      assertions: [{ effect: 'allow', action: 'bundle.read', resource: 'library:bundle', role: 'bundle-readers' }],
    },
    undefined,
  );
  await m.putPolicy(
    op,
    'library',
    {
      name: 'books',
      version: '1',
      active: true,
      assertions: [{ effect: 'allow', action: 'read', resource: 'library:book/*', role: 'readers' }],
    },
    undefined,
  );
  await m.putPolicy(
    op,
    'library',
    {
      name: 'books',
      version: '2',
      active: false,
      assertions: [{ effect: 'allow', action: 'write', resource: 'library:book/*', role: 'readers' }],
    },
    undefined,
  );
});
afterAll(async () => {
  await f.close();
});

async function jwks(url: string): Promise<JSONWebKeySet> {
  const res = await f.gh.app.inject({ method: 'GET', url });
  expect(res.statusCode).toBe(200);
  return res.json();
}

/** The JWS with only signature `i` (so each verification proves that one signature). */
function only(jws: GeneralJWS, i: number): GeneralJWS {
  return { payload: jws.payload, signatures: [jws.signatures[i]!] };
}

describe('GET /v1/domains/{d}/bundle', () => {
  it('is a General JWS with a control and a token signature over the canonical payload', async () => {
    const before = Date.now();
    const res = await f.call('GET', '/v1/domains/library/bundle', 'user.alice');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/jose\+json/);
    const jws = res.json<GeneralJWS>();
    expect(jws.signatures).toHaveLength(2);

    const control = createLocalJWKSet(await jwks('/v1/keys/control'));
    const token = createLocalJWKSet(await f.gh.keys.publicJwks('token'));
    const controlKid = (await f.gh.keys.currentSigningKey('control')).kid;
    const tokenKid = (await f.gh.keys.currentSigningKey('token')).kid;

    const c = await generalVerify(only(jws, 0), control);
    expect(c.protectedHeader).toEqual({ alg: 'EdDSA', kid: controlKid, typ: BUNDLE_JWS_TYPE });
    const t = await generalVerify(only(jws, 1), token);
    expect(t.protectedHeader).toEqual({ alg: 'EdDSA', kid: tokenKid, typ: BUNDLE_JWS_TYPE });
    // The two key holders' keys do not stand in for each other.
    await expect(generalVerify(only(jws, 0), token)).rejects.toThrow();
    await expect(generalVerify(only(jws, 1), control)).rejects.toThrow();
    // The whole JWS verifies against either key set.
    await generalVerify(jws, control);
    await generalVerify(jws, token);

    const text = new TextDecoder().decode(c.payload);
    const payload = JSON.parse(text) as BundlePayload;
    expect(canonicalJson(payload)).toBe(text);
    const revision = f.gh.catalog.revisionOf('library');
    expect(payload).toMatchObject({ domain: 'library', revision });
    expect(res.headers.etag).toBe(`"${revision}"`);
    const issued = Date.parse(payload.issuedAt);
    expect(issued).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(payload.expiresAt) - issued).toBe(TTL_MS);
    // Active policy versions only; roles without members.
    expect((await f.gh.management.getPolicy(op, 'library', 'books')).map((v) => [v.version, v.active])).toEqual(
      expect.arrayContaining([
        ['1', true],
        ['2', false],
      ]),
    );
    const books = payload.policies.filter((p) => p.name === 'books');
    expect(books).toEqual([
      {
        name: 'books',
        version: '1',
        assertions: [{ effect: 'allow', action: 'read', resource: 'library:book/*', role: 'readers' }],
      },
    ]);
    expect(payload.roles).toEqual(
      expect.arrayContaining([
        { name: 'readers', trust: null },
        { name: 'admin', trust: null },
      ]),
    );
    expect(text).not.toContain('user.nobody');
    expect(text).not.toContain('user.alice');
  });

  it('refuses a tampered payload', async () => {
    const jws = (await f.call('GET', '/v1/domains/library/bundle', 'user.alice')).json<GeneralJWS>();
    const payload = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as BundlePayload;
    const tampered = {
      ...jws,
      payload: Buffer.from(canonicalJson({ ...payload, expiresAt: '2999-01-01T00:00:00.000Z' })).toString('base64url'),
    };
    await expect(generalVerify(tampered, createLocalJWKSet(await jwks('/v1/keys/control')))).rejects.toThrow();
    await expect(generalVerify(tampered, createLocalJWKSet(await f.gh.keys.publicJwks('token')))).rejects.toThrow();
  });

  it('answers If-None-Match with 304, and a changed domain with a new revision', async () => {
    const first = await f.call('GET', '/v1/domains/library/bundle', 'user.alice');
    const etag = first.headers.etag as string;
    // Served from the cache: the same signed bytes.
    expect((await f.call('GET', '/v1/domains/library/bundle', 'user.alice')).body).toBe(first.body);
    const same = await f.call('GET', '/v1/domains/library/bundle', 'user.alice', undefined, {
      'if-none-match': etag,
    });
    expect(same.statusCode).toBe(304);
    expect(same.body).toBe('');
    expect(same.headers.etag).toBe(etag);
    const listed = await f.call('GET', '/v1/domains/library/bundle', 'user.alice', undefined, {
      'if-none-match': `"0", W/${etag}`,
    });
    expect(listed.statusCode).toBe(304);

    await f.gh.management.createRole(op, 'library', { name: 'writers' });
    const changed = await f.call('GET', '/v1/domains/library/bundle', 'user.alice', undefined, {
      'if-none-match': etag,
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
    const payload = JSON.parse(
      Buffer.from(changed.json<GeneralJWS>().payload, 'base64url').toString('utf8'),
    ) as BundlePayload;
    expect(`"${payload.revision}"`).toBe(changed.headers.etag);
    expect(payload.revision).toBeGreaterThan(Number(etag.replaceAll('"', '')));
    expect(payload.roles).toContainEqual({ name: 'writers', trust: null });
  });

  it('is for whoever may bundle.read on D:bundle', async () => {
    expectProblem(await f.call('GET', '/v1/domains/library/bundle'), 401, 'auth.required');
    expectProblem(await f.call('GET', '/v1/domains/library/bundle', 'user.nobody'), 403, 'management.forbidden');
    expectProblem(await f.call('GET', '/v1/domains/shop/bundle', 'user.alice'), 403, 'management.forbidden');
    expect((await f.call('GET', '/v1/domains/library/bundle', 'shop.indexer')).statusCode).toBe(200);
    expect((await f.call('GET', '/v1/domains/shop/bundle', 'shop.indexer')).statusCode).toBe(403);
    expect((await f.call('GET', '/v1/domains/library/bundle', 'user.root')).statusCode).toBe(200);
    expect((await f.call('GET', '/v1/domains/shop/bundle', 'user.root')).statusCode).toBe(200);
  });

  it('is 404 for an unknown domain', async () => {
    expectProblem(await f.call('GET', '/v1/domains/nowhere/bundle', 'user.root'), 404, 'domain.not_found');
  });
});

describe('BundleService', () => {
  it('hands out the signed bundle again until less than half its TTL remains', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const bundles = new BundleService({
      catalog: f.gh.catalog,
      keys: f.gh.keys,
      ttlSeconds: 3600,
      clock: () => new Date(now),
    });
    const first = await bundles.bundle('Library');
    expect(first).toMatchObject({ domain: 'library', issuedAtMs: now, expiresAtMs: now + 3_600_000 });
    now += 1_799_000;
    expect(await bundles.bundle('library')).toBe(first);
    now += 2000;
    const second = await bundles.bundle('library');
    expect(second).not.toBe(first);
    expect(second?.expiresAtMs).toBe(now + 3_600_000);
    expect(await bundles.bundle('nowhere')).toBeUndefined();
  });
});
