import type { AddressInfo } from 'node:net';
import { exportJWK, GeneralSign, generateKeyPair, type GeneralJWS, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPdpFixture, type PdpFixture } from '../../server/test/pdp/pdp-fixture.js';
import { BUNDLE_JWS_TYPE, BundleError, verifyBundle, type BundleKeys } from '../src/verify-bundle.js';

// issue 6 / docs/bundles.md: a bundle verifies only with both signatures, each against its own key
// set, and only for the domain asked for, not older than held, not expired. Against a real node.
let f: PdpFixture;
let base: string;
let keys: BundleKeys;
let jws: GeneralJWS;

async function getJson<T>(path: string, bearer?: string): Promise<T> {
  const res = await fetch(`${base}${path}`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

beforeAll(async () => {
  f = await startPdpFixture();
  await f.gh.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(f.gh.app.server.address() as AddressInfo).port}`;
  // user.carol is library's admin: she may read its bundle.
  const carol = await f.token('user.carol', f.gh.managementAudience);
  keys = {
    control: await getJson<JSONWebKeySet>('/v1/keys/control'),
    token: await getJson<JSONWebKeySet>('/oidc/jwks'),
  };
  jws = await getJson<GeneralJWS>('/v1/domains/library/bundle', carol);
});
afterAll(() => f.close());

const now = () => new Date();

async function refused(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BundleError);
  return (err as BundleError).code;
}

/** A bundle signed by two fresh keys, with its own key sets. */
async function foreign(typ = BUNDLE_JWS_TYPE): Promise<{ jws: GeneralJWS; keys: BundleKeys }> {
  const payload = Buffer.from(jws.payload, 'base64url');
  const a = await generateKeyPair('EdDSA', { extractable: true });
  const b = await generateKeyPair('EdDSA', { extractable: true });
  const signed = await new GeneralSign(payload)
    .addSignature(a.privateKey)
    .setProtectedHeader({ alg: 'EdDSA', kid: 'a', typ })
    .addSignature(b.privateKey)
    .setProtectedHeader({ alg: 'EdDSA', kid: 'b', typ })
    .sign();
  return {
    jws: signed,
    keys: {
      control: { keys: [{ ...(await exportJWK(a.publicKey)), kid: 'a' }] },
      token: { keys: [{ ...(await exportJWK(b.publicKey)), kid: 'b' }] },
    },
  };
}

describe('verifyBundle', () => {
  it('accepts a bundle from the node and returns its payload', async () => {
    const p = await verifyBundle(jws, keys, { domain: 'LIBRARY', minRevision: f.revision, now: now() });
    expect(p).toMatchObject({ domain: 'library', revision: f.revision });
    expect(p.policies.map((x) => x.name)).toContain('books');
  });

  it('refuses a tampered payload', async () => {
    const payload = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const tampered = {
      ...jws,
      payload: Buffer.from(JSON.stringify({ ...payload, expiresAt: '2999-01-01T00:00:00.000Z' })).toString('base64url'),
    };
    expect(await refused(verifyBundle(tampered, keys, { domain: 'library', now: now() }))).toBe('bundle.signature');
  });

  it('refuses a bundle with either signature missing, or a third one', async () => {
    for (const signatures of [
      [jws.signatures[0]!],
      [jws.signatures[1]!],
      [],
      [...jws.signatures, jws.signatures[1]!],
    ]) {
      const code = await refused(
        verifyBundle({ payload: jws.payload, signatures }, keys, { domain: 'library', now: now() }),
      );
      expect(code).toBe('bundle.signature');
    }
    // The same signature twice does not make two key holders.
    const twice = { payload: jws.payload, signatures: [jws.signatures[0]!, jws.signatures[0]!] };
    expect(await refused(verifyBundle(twice, keys, { domain: 'library', now: now() }))).toBe('bundle.signature');
  });

  it('checks each signature against its own key set only', async () => {
    const swapped = { payload: jws.payload, signatures: [jws.signatures[1]!, jws.signatures[0]!] };
    expect(await refused(verifyBundle(swapped, keys, { domain: 'library', now: now() }))).toBe('bundle.signature');
    // Each set holding both keys would accept the swap: so each set is really used on its own.
    const both = { keys: [...keys.control.keys, ...keys.token.keys] };
    await verifyBundle(swapped, { control: both, token: both }, { domain: 'library', now: now() });
    const swappedKeys = { control: keys.token, token: keys.control };
    expect(await refused(verifyBundle(jws, swappedKeys, { domain: 'library', now: now() }))).toBe('bundle.signature');
  });

  it('refuses signatures by unknown keys, and a wrong typ', async () => {
    const other = await foreign();
    // Consistent on its own…
    await verifyBundle(other.jws, other.keys, { domain: 'library', now: now() });
    // …but not by the node's keys, nor mixed with one of the node's signatures.
    expect(await refused(verifyBundle(other.jws, keys, { domain: 'library', now: now() }))).toBe('bundle.signature');
    const mixed = { payload: jws.payload, signatures: [jws.signatures[0]!, other.jws.signatures[1]!] };
    expect(await refused(verifyBundle(mixed, keys, { domain: 'library', now: now() }))).toBe('bundle.signature');
    const jwt = await foreign('JWT');
    expect(await refused(verifyBundle(jwt.jws, jwt.keys, { domain: 'library', now: now() }))).toBe('bundle.signature');
  });

  it('refuses what is not a General JWS', async () => {
    for (const bad of [null, 'x', { payload: 1, signatures: [] }, { payload: jws.payload }]) {
      expect(await refused(verifyBundle(bad, keys, { domain: 'library', now: now() }))).toBe('bundle.malformed');
    }
    const noObject = { payload: jws.payload, signatures: ['a', 'b'] };
    expect(await refused(verifyBundle(noObject, keys, { domain: 'library', now: now() }))).toBe('bundle.malformed');
  });

  it('refuses the wrong domain, an older revision, and an expired bundle', async () => {
    expect(await refused(verifyBundle(jws, keys, { domain: 'closed', now: now() }))).toBe('bundle.wrong_domain');
    expect(await refused(verifyBundle(jws, keys, { domain: 'library', minRevision: f.revision + 1, now: now() }))).toBe(
      'bundle.rollback',
    );
    const p = await verifyBundle(jws, keys, { domain: 'library', now: now() });
    const expiresAt = Date.parse(p.expiresAt);
    await verifyBundle(jws, keys, { domain: 'library', now: new Date(expiresAt - 1) });
    expect(await refused(verifyBundle(jws, keys, { domain: 'library', now: new Date(expiresAt) }))).toBe(
      'bundle.expired',
    );
  });
});
