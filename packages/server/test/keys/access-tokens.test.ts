import { randomBytes } from 'node:crypto';
import { base64url, decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AccessTokenVerifier,
  InvalidTokenError,
  MAX_ACCESS_TOKEN_LENGTH,
  mintAccessToken,
  type AccessTokenVerifierOptions,
  type MintAccessTokenInput,
} from '../../src/keys/access-tokens.js';
import { KeyService } from '../../src/keys/key-service.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from '../storage/test-databases.js';

const START = new Date('2026-06-01T00:00:00Z');
const START_S = START.getTime() / 1000;
const ISSUER = 'https://gatehouse.test/oidc';
const AUDIENCE = 'https://api.library.test';

// api.md §1 (RFC 9068 access tokens) and targets.md (verified tokens cached until they expire).
describe.each(TEST_DATABASE_KINDS)('access tokens on $name', (kind) => {
  let t: TestDatabase;
  let now: Date;
  const clock = (): Date => now;
  let keys: KeyService;

  const at = (seconds: number): Date => new Date(START.getTime() + seconds * 1000);
  const service = (): KeyService =>
    new KeyService({ db: t.open.db, masterKey: randomBytes(32), clock, warn: () => {} });
  const verifier = (options: Partial<AccessTokenVerifierOptions> = {}): AccessTokenVerifier =>
    new AccessTokenVerifier({ keys, issuer: ISSUER, audience: AUDIENCE, ...options });
  const mint = (input: Partial<MintAccessTokenInput> = {}, by: KeyService = keys): Promise<string> =>
    mintAccessToken(by, { issuer: ISSUER, subject: 'user.alice', audience: AUDIENCE, ttlSeconds: 300, ...input });

  /** Signs `payload` with the current token key and the given header, for tokens mint would never make. */
  async function signRaw(header: Record<string, unknown>, payload: JWTPayload): Promise<string> {
    const key = await keys.currentSigningKey('token');
    return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.privateKey);
  }
  const standard = (extra: JWTPayload = {}): JWTPayload => ({
    iss: ISSUER,
    sub: 'user.alice',
    aud: AUDIENCE,
    iat: START_S,
    exp: START_S + 300,
    jti: 'jti-1',
    ...extra,
  });

  async function refusal(v: AccessTokenVerifier, token: string): Promise<string> {
    const err = await v.verify(token).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidTokenError);
    return (err as InvalidTokenError).code;
  }

  beforeEach(async () => {
    t = await kind.create();
    now = START;
    keys = service();
    await keys.ensureKeys();
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('mints an at+jwt with the RFC 9068 claims and Gatehouse claims, and verifies it', async () => {
    const token = await mint({
      clientId: 'library-web',
      scope: ['book:read', 'book:update'],
      claims: { domain: 'library', roles: ['library:role.readers'], permissions: [{ book: { '*': ['read'] } }] },
    });
    const kid = (await keys.currentSigningKey('token')).kid;
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', kid, typ: 'at+jwt' });
    const claims = await verifier().verify(token);
    expect(claims).toEqual({
      iss: ISSUER,
      sub: 'user.alice',
      aud: AUDIENCE,
      iat: START_S,
      exp: START_S + 300,
      jti: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      client_id: 'library-web',
      scope: 'book:read book:update',
      domain: 'library',
      roles: ['library:role.readers'],
      permissions: [{ book: { '*': ['read'] } }],
    });
    expect(Object.isFrozen(claims) && Object.isFrozen(claims.roles)).toBe(true);
    expect(decodeJwt(await mint()).jti).not.toBe(claims.jti);
  });

  it('leaves out client_id and an empty scope, and accepts several audiences', async () => {
    const token = await mint({ audience: ['https://other.test', AUDIENCE], scope: '' });
    const claims = await verifier().verify(token);
    expect(claims).not.toHaveProperty('client_id');
    expect(claims).not.toHaveProperty('scope');
    expect(claims.aud).toEqual(['https://other.test', AUDIENCE]);
    expect(await verifier({ audience: ['https://x.test', 'https://other.test'] }).verify(token)).toEqual(claims);
  });

  it.each(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'client_id', 'scope'])(
    'refuses to let claims set the reserved claim %s',
    async (name) => {
      await expect(mint({ claims: { [name]: 'x' } })).rejects.toThrow(RangeError);
    },
  );

  it.each([0, -1, 1.5, Number.NaN])('refuses the TTL %s', async (ttlSeconds) => {
    await expect(mint({ ttlSeconds })).rejects.toThrow(RangeError);
  });

  it('verifies tokens minted before a rotation until they expire', async () => {
    const before = await mint({ ttlSeconds: 600 });
    const v = verifier();
    const other = verifier({ keys: service() });
    await keys.rotate('token', { actor: 'user.root', overlapSeconds: 600 });
    const after = await mint({ ttlSeconds: 600 });
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);
    for (const x of [v, other]) {
      expect((await x.verify(before)).sub).toBe('user.alice');
      expect((await x.verify(after)).sub).toBe('user.alice');
    }
    now = at(599);
    expect((await verifier().verify(before)).sub).toBe('user.alice');
  });

  it('reads the keys again once for a kid it does not know, at most once a second', async () => {
    const v = verifier();
    expect((await v.verify(await mint())).sub).toBe('user.alice');
    // Another node rotates and mints with a key this one has not read yet.
    const node2 = service();
    await node2.rotate('token', { actor: 'user.root', overlapSeconds: 600 });
    const fresh = await mint({ subject: 'user.bob' }, node2);
    const reload = vi.spyOn(keys, 'reload');
    expect((await v.verify(fresh)).sub).toBe('user.bob');
    expect(reload).toHaveBeenCalledTimes(1);

    const { privateKey } = await generateKeyPair('EdDSA');
    const foreign = await new SignJWT(standard())
      .setProtectedHeader({ alg: 'EdDSA', kid: 'not-a-gatehouse-key-0000', typ: 'at+jwt' })
      .sign(privateKey);
    now = at(1);
    expect(await refusal(v, foreign)).toBe('token.unknown_key');
    expect(reload).toHaveBeenCalledTimes(2);
    expect(await refusal(v, foreign)).toBe('token.unknown_key');
    expect(reload).toHaveBeenCalledTimes(2);
    now = at(2);
    expect(await refusal(v, foreign)).toBe('token.unknown_key');
    expect(reload).toHaveBeenCalledTimes(3);
  });

  it('refuses a token signed with the control key or naming no key', async () => {
    const control = await keys.currentSigningKey('control');
    const token = await new SignJWT(standard())
      .setProtectedHeader({ alg: control.alg, kid: control.kid, typ: 'at+jwt' })
      .sign(control.privateKey);
    expect(await refusal(verifier(), token)).toBe('token.unknown_key');
    const key = await keys.currentSigningKey('token');
    const noKid = await new SignJWT(standard())
      .setProtectedHeader({ alg: key.alg, typ: 'at+jwt' })
      .sign(key.privateKey);
    expect(await refusal(verifier(), noKid)).toBe('token.unknown_key');
  });

  it('refuses a tampered token', async () => {
    const token = await mint({ claims: { roles: ['library:role.readers'] } });
    const [h, p, s] = token.split('.') as [string, string, string];
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as JWTPayload;
    const elevated = base64url.encode(JSON.stringify({ ...payload, roles: ['library:role.admin'] }));
    const sig = base64url.decode(s);
    sig[0] = sig[0]! ^ 1;
    const v = verifier();
    expect(await refusal(v, `${h}.${elevated}.${s}`)).toBe('token.signature');
    expect(await refusal(v, `${h}.${p}.${base64url.encode(sig)}`)).toBe('token.signature');
    expect(await refusal(v, `${h}.${p}.`)).toBe('token.signature');
    // Algorithm confusion: an HMAC over the token with the public key as the secret.
    const kid = decodeProtectedHeader(token).kid;
    const x = (await keys.publicJwks('token')).keys[0]!.x!;
    const hs = await new SignJWT(standard())
      .setProtectedHeader({ alg: 'HS256', kid, typ: 'at+jwt' })
      .sign(new TextEncoder().encode(x));
    expect(await refusal(v, hs)).toBe('token.signature');
    const none = base64url.encode(JSON.stringify({ alg: 'none', kid, typ: 'at+jwt' }));
    expect(await refusal(v, `${none}.${p}.`)).toBe('token.signature');
  });

  it.each([
    ['', 'token.malformed'],
    ['abc', 'token.malformed'],
    ['a.b.c', 'token.malformed'],
    ['x'.repeat(MAX_ACCESS_TOKEN_LENGTH + 1), 'token.malformed'],
  ])('refuses the malformed token %#', async (token, code) => {
    expect(await refusal(verifier(), token)).toBe(code);
  });

  it('refuses another issuer or audience', async () => {
    expect(await refusal(verifier(), await mint({ issuer: 'https://evil.test/oidc' }))).toBe('token.issuer');
    expect(await refusal(verifier(), await mint({ audience: 'https://other.test' }))).toBe('token.audience');
    expect(await refusal(verifier({ audience: ['a', 'b'] }), await mint())).toBe('token.audience');
    // Without an audience option the verifier accepts any audience of this issuer.
    expect((await verifier({ audience: undefined }).verify(await mint({ audience: 'https://other.test' }))).sub).toBe(
      'user.alice',
    );
  });

  it('refuses a token without typ at+jwt (RFC 9068 §4)', async () => {
    expect(await refusal(verifier(), await signRaw({}, standard()))).toBe('token.type');
    expect(await refusal(verifier(), await signRaw({ typ: 'JWT' }, standard()))).toBe('token.type');
    expect((await verifier().verify(await signRaw({ typ: 'application/at+jwt' }, standard()))).jti).toBe('jti-1');
  });

  it('refuses a token missing a required claim', async () => {
    const { jti: _jti, ...noJti } = standard();
    expect(await refusal(verifier(), await signRaw({ typ: 'at+jwt' }, noJti))).toBe('token.malformed');
    const { exp: _exp, ...noExp } = standard();
    expect(await refusal(verifier(), await signRaw({ typ: 'at+jwt' }, noExp))).toBe('token.malformed');
    expect(
      await refusal(verifier(), await signRaw({ typ: 'at+jwt' }, standard({ jti: 42 as unknown as string }))),
    ).toBe('token.malformed');
  });

  it('refuses an expired token, allowing the clock skew (default 30 s)', async () => {
    const token = await mint({ ttlSeconds: 60 });
    now = at(89);
    expect((await verifier().verify(token)).sub).toBe('user.alice');
    now = at(90);
    expect(await refusal(verifier(), token)).toBe('token.expired');
    now = at(59);
    expect((await verifier({ clockSkewSeconds: 0 }).verify(token)).sub).toBe('user.alice');
    now = at(60);
    expect(await refusal(verifier({ clockSkewSeconds: 0 }), token)).toBe('token.expired');
  });

  it('enforces expiry on cache hits', async () => {
    const token = await mint({ ttlSeconds: 60 });
    const v = verifier({ clockSkewSeconds: 0 });
    await v.verify(token);
    const lookups = vi.spyOn(keys, 'findVerificationKey');
    now = at(59);
    expect((await v.verify(token)).sub).toBe('user.alice');
    expect(lookups).not.toHaveBeenCalled();
    now = at(60);
    expect(await refusal(v, token)).toBe('token.expired');
    now = at(30);
    // The expired entry was dropped: the next call verifies again (and succeeds at that time).
    expect((await v.verify(token)).sub).toBe('user.alice');
    expect(lookups).toHaveBeenCalledTimes(1);
  });

  it('drops cached tokens whose key was withdrawn (rotation without overlap, e.g. after a compromise)', async () => {
    const token = await mint();
    const v = verifier();
    await v.verify(token);
    const lookups = vi.spyOn(keys, 'findVerificationKey');
    await v.verify(token);
    expect(lookups).not.toHaveBeenCalled();
    await keys.rotate('token', { actor: 'user.root', overlapSeconds: 0 });
    expect(await refusal(v, token)).toBe('token.unknown_key');
    expect((await v.verify(await mint())).sub).toBe('user.alice');
  });

  it('refuses a token that is not valid yet, allowing the clock skew', async () => {
    expect(await refusal(verifier(), await signRaw({ typ: 'at+jwt' }, standard({ nbf: START_S + 31 })))).toBe(
      'token.not_yet_valid',
    );
    expect((await verifier().verify(await signRaw({ typ: 'at+jwt' }, standard({ nbf: START_S + 30 })))).jti).toBe(
      'jti-1',
    );
  });

  it('asks isRevoked on every call, cache hits included', async () => {
    const revoked = new Set<string>();
    const isRevoked = vi.fn((jti: string) => revoked.has(jti));
    const v = verifier({ isRevoked });
    const token = await mint();
    const { jti } = await v.verify(token);
    await v.verify(token);
    expect(isRevoked).toHaveBeenCalledTimes(2);
    expect(isRevoked).toHaveBeenLastCalledWith(jti, expect.objectContaining({ jti }));
    revoked.add(jti);
    expect(await refusal(v, token)).toBe('token.revoked');
    expect(await refusal(v, token)).toBe('token.revoked');
    const failing = verifier({ isRevoked: async () => Promise.reject(new Error('revocation store down')) });
    await expect(failing.verify(token)).rejects.toThrow('revocation store down');
  });

  it('keeps at most cacheSize tokens, dropping the least recently used', async () => {
    const v = verifier({ cacheSize: 2 });
    const [t1, t2, t3] = await Promise.all([mint(), mint(), mint()]);
    const lookups = vi.spyOn(keys, 'findVerificationKey');
    await v.verify(t1);
    await v.verify(t2);
    await v.verify(t1);
    await v.verify(t3);
    expect(lookups).toHaveBeenCalledTimes(3);
    await v.verify(t1);
    await v.verify(t3);
    expect(lookups).toHaveBeenCalledTimes(3);
    await v.verify(t2);
    expect(lookups).toHaveBeenCalledTimes(4);
    v.clear();
    await v.verify(t3);
    expect(lookups).toHaveBeenCalledTimes(5);
  });

  it('answers a cached token with a map lookup (performance sanity; figures belong to bench/)', async () => {
    const cold = await Promise.all(Array.from({ length: 200 }, () => mint()));
    const v = verifier();
    let started = performance.now();
    for (const token of cold) await v.verify(token);
    const coldMs = (performance.now() - started) / cold.length;

    const token = cold[0]!;
    const calls = 10_000;
    started = performance.now();
    for (let i = 0; i < calls; i++) await v.verify(token);
    const elapsedMs = performance.now() - started;
    console.log(
      `[${kind.name}] verify: cold ${(coldMs * 1000).toFixed(0)} µs/call (${cold.length} tokens), ` +
        `cached ${((elapsedMs / calls) * 1000).toFixed(2)} µs/call (${calls} calls in ${elapsedMs.toFixed(1)} ms)`,
    );
    expect(elapsedMs).toBeLessThan(1000);
  });
});
