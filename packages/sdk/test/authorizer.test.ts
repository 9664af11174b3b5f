import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { resolveTokenClaims, type TokenClaims } from '@gatehouse/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR } from '../../server/src/management/management-service.js';
import { startPdpFixture, type PdpFixture } from '../../server/test/pdp/pdp-fixture.js';
import { createAuthorizer } from '../src/authorizer.js';

// issue 6 (first slice): createAuthorizer against a real node — ready(), local decisions that agree
// with the node's AuthZEN evaluation, the cache used when the node is down, refresh keeping the old
// bundle on a bad answer, fail closed once expired.
const EVAL = '/pdp/library/access/v1/evaluation';
let f: PdpFixture;
let base: string;
let carol: string;
const dirs: string[] = [];

beforeAll(async () => {
  f = await startPdpFixture();
  await f.gh.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(f.gh.app.server.address() as AddressInfo).port}`;
  carol = await f.token('user.carol', f.gh.managementAudience);
});
afterAll(async () => {
  await f.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'gatehouse-sdk-'));
  dirs.push(d);
  return d;
}

const down: typeof fetch = () => Promise.reject(new TypeError('fetch failed: ECONNREFUSED'));

/** The claims the node would put in `user.<id>`'s access token for library. */
function claimsOf(id: string): TokenClaims {
  const m = resolveTokenClaims(f.gh.catalog.catalog, `user.${id}`, 'library', new Date());
  return {
    sub: `user.${id}`,
    roles: m?.roles ?? [],
    groups: m?.groups ?? [],
    exp: Math.floor(Date.now() / 1000) + 300,
  };
}

/** The node's AuthZEN answer (asked as user.root, a super admin). */
async function central(id: string, action: string, type: string, rid: string): Promise<boolean> {
  const res = await f.post(EVAL, 'user.root', {
    subject: { type: 'user', id },
    action: { name: action },
    resource: { type, id: rid },
  });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { decision: boolean }).decision;
}

const REQUESTS: [string, string, string, string][] = [
  ['alice', 'read', 'book', '1'],
  ['alice', 'read', 'book', 'secret-1'],
  ['bob', 'pin', 'notice', 'welcome'],
  ['alice', 'index', 'book', '1'],
  ['carol', 'read', 'book', '1'],
  ['root', 'read', 'book', '1'],
];

describe('createAuthorizer', () => {
  it('loads the bundles at ready() and decides as the node does', async () => {
    const a = createAuthorizer({ server: base, domains: ['Library'], credentials: { accessToken: carol } });
    const r = await a.ready();
    expect(r).toEqual({ updated: ['library'], failed: [] });
    expect(a.held('library')).toMatchObject({ domain: 'library', revision: f.revision, source: 'server' });
    const seen = new Set<boolean>();
    for (const [id, action, type, rid] of REQUESTS) {
      const expected = await central(id, action, type, rid);
      seen.add(expected);
      const d = a.checkClaims(claimsOf(id), action, `library:${type}/${rid}`);
      expect({ id, action, type, rid, allowed: d.allowed }).toEqual({ id, action, type, rid, allowed: expected });
      expect(d.status).toMatch(expected ? /^ALLOW$/ : /^DENY(_NO_MATCH)?$/);
    }
    expect(seen).toEqual(new Set([true, false]));
    // A domain it holds no bundle for, and a token for another domain.
    const shop = { ...claimsOf('alice'), domain: 'shop' };
    expect(a.checkClaims(shop, 'read', 'shop:item/1').status).toBe('DENY_DOMAIN_NOT_FOUND');
  });

  it('takes the token from getAccessToken, and refuses to be ready without a bundle', async () => {
    const a = createAuthorizer({
      server: base,
      domains: ['library'],
      credentials: { getAccessToken: async () => carol },
    });
    await a.ready();
    expect(a.held('library')?.revision).toBe(f.revision);
    // user.alice may not read library's bundle: 403.
    const alice = await f.token('user.alice', f.gh.managementAudience);
    const b = createAuthorizer({ server: base, domains: ['library'], credentials: { accessToken: alice } });
    await expect(b.ready()).rejects.toThrow(/no bundle for library.*bundle\.unavailable/);
    expect(b.checkClaims(claimsOf('alice'), 'read', 'library:book/1').status).toBe('DENY_DOMAIN_NOT_FOUND');
  });

  it('fails closed once the bundle expires', async () => {
    let t = Date.now();
    const a = createAuthorizer({
      server: base,
      domains: ['library'],
      credentials: { accessToken: carol },
      clock: () => new Date(t),
    });
    await a.ready();
    const expiresAt = Date.parse(a.held('library')!.expiresAt);
    t = expiresAt - 1000;
    const claims = { ...claimsOf('alice'), exp: Math.floor(t / 1000) + 300 };
    expect(a.checkClaims(claims, 'read', 'library:book/1').status).toBe('ALLOW');
    t = expiresAt;
    expect(a.checkClaims(claims, 'read', 'library:book/1')).toMatchObject({
      allowed: false,
      status: 'DENY_DOMAIN_EXPIRED',
    });
  });

  it('writes the last good bundle to cacheDir and starts from it when the node is down', async () => {
    const cacheDir = join(tempDir(), 'nested');
    const a = createAuthorizer({ server: base, domains: ['library'], credentials: { accessToken: carol }, cacheDir });
    await a.ready();
    expect(readdirSync(cacheDir).sort()).toEqual(['keys.json', 'library.bundle.json']);

    const b = createAuthorizer({
      server: base,
      domains: ['library'],
      credentials: { accessToken: carol },
      cacheDir,
      fetch: down,
    });
    const r = await b.ready();
    expect(r.updated).toEqual(['library']);
    expect(r.failed).toEqual([]);
    expect(b.held('library')).toMatchObject({ revision: f.revision, source: 'cache' });
    for (const [id, action, type, rid] of REQUESTS) {
      expect(b.checkClaims(claimsOf(id), action, `library:${type}/${rid}`).allowed).toBe(
        a.checkClaims(claimsOf(id), action, `library:${type}/${rid}`).allowed,
      );
    }

    // An expired cached bundle is no start; nor is an empty cache.
    const later = new Date(Date.parse(a.held('library')!.expiresAt));
    const c = createAuthorizer({
      server: base,
      domains: ['library'],
      credentials: { accessToken: carol },
      cacheDir,
      fetch: down,
      clock: () => later,
    });
    await expect(c.ready()).rejects.toThrow(/no bundle for library/);
    const empty = createAuthorizer({
      server: base,
      domains: ['library'],
      credentials: { accessToken: carol },
      cacheDir: tempDir(),
      fetch: down,
    });
    await expect(empty.ready()).rejects.toThrow(/bundle\.unavailable/);
    expect(existsSync(join(cacheDir, 'library.bundle.json'))).toBe(true);
  });

  it('refresh keeps the old bundle on a bad answer and refuses a rollback', async () => {
    type Mode = 'real' | 'down' | 500 | 'tampered' | 'old';
    let mode: Mode = 'real';
    // A validly signed bundle of the current revision, handed out again once the node is past it.
    const oldBody = await (
      await fetch(`${base}/v1/domains/library/bundle`, { headers: { authorization: `Bearer ${carol}` } })
    ).text();
    const switching: typeof fetch = async (input, init) => {
      const url = String(input);
      const isBundle = url.endsWith('/bundle');
      if (mode === 'down') throw new TypeError('fetch failed');
      if (isBundle && mode === 500) return new Response('{}', { status: 500 });
      if (isBundle && mode === 'old') return new Response(oldBody, { status: 200 });
      const res = await fetch(input, init);
      if (!isBundle || mode !== 'tampered') return res;
      const jws = (await res.json()) as { payload: string; signatures: unknown[] };
      const payload = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as Record<string, unknown>;
      payload.revision = (payload.revision as number) + 100;
      return Response.json({ ...jws, payload: Buffer.from(JSON.stringify(payload)).toString('base64url') });
    };
    const cacheDir = tempDir();
    const a = createAuthorizer({
      server: `${base}/`,
      domains: ['library'],
      credentials: { accessToken: carol },
      fetch: switching,
      cacheDir,
    });
    await a.ready();
    const before = a.held('library')!;
    const allowed = () => a.checkClaims(claimsOf('alice'), 'read', 'library:book/1').allowed;
    expect(allowed()).toBe(true);

    const codes: Record<string, string | undefined> = {};
    for (const m of ['down', 500, 'tampered'] as const) {
      mode = m;
      const r = await a.refresh();
      expect(r.updated).toEqual([]);
      codes[m] = r.failed[0]?.error.code;
      expect(a.held('library')).toEqual(before);
      expect(allowed()).toBe(true);
    }
    expect(codes).toEqual({ down: 'bundle.unavailable', 500: 'bundle.unavailable', tampered: 'bundle.signature' });

    // A change on the node: the next refresh swaps in the new revision…
    await f.gh.management.putMember(
      { principal: OPERATOR },
      'role',
      'library',
      'readers',
      { name: 'user.dave' },
      undefined,
    );
    const revision = f.gh.catalog.catalog.domains.get('library')!.revision;
    expect(revision).toBeGreaterThan(before.revision);
    mode = 'real';
    expect(await a.refresh()).toEqual({ updated: ['library'], failed: [] });
    expect(a.held('library')).toMatchObject({ revision, source: 'server' });
    // …and the older bundle, though validly signed, is refused.
    mode = 'old';
    const r = await a.refresh();
    expect(r.failed.map((x) => x.error.code)).toEqual(['bundle.rollback']);
    expect(a.held('library')?.revision).toBe(revision);
    // The cache holds the newest good bundle.
    const fromCache = createAuthorizer({
      server: base,
      domains: ['library'],
      credentials: { accessToken: carol },
      cacheDir,
      fetch: down,
    });
    await fromCache.ready();
    expect(fromCache.held('library')).toMatchObject({ revision, source: 'cache' });
  });
});
