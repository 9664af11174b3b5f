import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createDatabaseAdapter,
  GRANT_BOUND_MODELS,
  MAX_OIDC_KEY_LENGTH,
  MAX_UPSERT_BATCH,
  DEFAULT_MAX_PAYLOAD_BYTES,
  OidcConsumeError,
  OidcPayloadError,
  type DatabaseAdapterOptions,
  type OidcAdapterClass,
} from '../../src/oidc/database-adapter.js';
import { loadOidcProvider } from '../../src/oidc/load-oidc-provider.js';
import { TEST_DATABASE_KINDS, type TestDatabase } from '../storage/test-databases.js';

const START = new Date('2026-06-01T00:00:00Z');
const START_SECONDS = START.getTime() / 1000;

// oidc-provider's adapter contract (example/my_adapter.js, docs "adapter") over both databases.
describe.each(TEST_DATABASE_KINDS)('oidc-provider database adapter on $name', (kind) => {
  let t: TestDatabase;
  let now: Date;
  let Adapter: OidcAdapterClass;

  function adapterClass(options: DatabaseAdapterOptions = {}): OidcAdapterClass {
    return createDatabaseAdapter(t.open.db, { clock: () => now, ...options });
  }

  function advance(ms: number): void {
    now = new Date(now.getTime() + ms);
  }

  async function rowCount(): Promise<number> {
    const rows = await t.open.db.selectFrom('oidc_payloads').select(['model', 'id']).execute();
    return rows.length;
  }

  beforeEach(async () => {
    t = await kind.create();
    now = START;
    Adapter = adapterClass();
  });
  afterEach(async () => {
    await t.dispose();
  });

  it('finds what it stored, as it was stored, and nothing else', async () => {
    const tokens = new Adapter('AccessToken');
    const payload = {
      jti: 'at-1',
      kind: 'AccessToken',
      iat: START_SECONDS,
      exp: START_SECONDS + 3600,
      clientId: 'app',
      accountId: 'user.ann',
      scope: 'openid book:read',
      extra: { roles: ['library:role.readers'], name: 'Zoë 🐈', nested: { n: 1, b: false, z: null } },
      grantId: 'grant-1',
    };
    await tokens.upsert('at-1', payload, 3600);
    expect(await tokens.find('at-1')).toEqual(payload);
    expect(await tokens.find('at-2')).toBeUndefined();
    expect(await tokens.find('')).toBeUndefined();
  });

  it('keeps models apart: the same id in two models is two rows', async () => {
    const codes = new Adapter('AuthorizationCode');
    const tokens = new Adapter('AccessToken');
    await codes.upsert('same', { kind: 'AuthorizationCode' }, 60);
    await tokens.upsert('same', { kind: 'AccessToken' }, 60);
    expect(await codes.find('same')).toEqual({ kind: 'AuthorizationCode' });
    expect(await tokens.find('same')).toEqual({ kind: 'AccessToken' });
    await tokens.destroy('same');
    expect(await tokens.find('same')).toBeUndefined();
    expect(await codes.find('same')).toEqual({ kind: 'AuthorizationCode' });
    await codes.consume('same');
    await tokens.upsert('same', { kind: 'AccessToken' }, 60);
    expect(await tokens.find('same')).toEqual({ kind: 'AccessToken' });
  });

  it('replaces the whole row on upsert: payload, expiry, consumed and the lookup columns', async () => {
    const sessions = new Adapter('Session');
    await sessions.upsert('s-1', { uid: 'uid-old', accountId: 'user.ann' }, 60);
    await sessions.consume('s-1');
    await sessions.upsert('s-1', { uid: 'uid-new', accountId: 'user.bob' });
    expect(await sessions.find('s-1')).toEqual({ uid: 'uid-new', accountId: 'user.bob' });
    expect(await sessions.findByUid('uid-old')).toBeUndefined();
    expect(await sessions.findByUid('uid-new')).toEqual({ uid: 'uid-new', accountId: 'user.bob' });
    advance(365 * 24 * 3600 * 1000);
    expect(await sessions.find('s-1')).toBeDefined(); // no expiresIn: never expires

    const tokens = new Adapter('RefreshToken');
    await tokens.upsert('rt', { grantId: 'g-old' }, 60);
    await tokens.upsert('rt', { grantId: 'g-new' }, 60);
    await tokens.revokeByGrantId('g-old');
    expect(await tokens.find('rt')).toEqual({ grantId: 'g-new' });
    await tokens.revokeByGrantId('g-new');
    expect(await tokens.find('rt')).toBeUndefined();
    expect(
      await t.open.db.selectFrom('oidc_payloads').select('id').where('model', '=', 'RefreshToken').execute(),
    ).toEqual([]);
  });

  it('stops finding a row when it expires, by the injected clock', async () => {
    const codes = new Adapter('DeviceCode');
    const sessions = new Adapter('Session');
    await codes.upsert('dc', { userCode: 'ABCD-EFGH' }, 60);
    await sessions.upsert('s', { uid: 'u' }, 60);
    advance(59_999);
    expect(await codes.find('dc')).toEqual({ userCode: 'ABCD-EFGH' });
    expect(await codes.findByUserCode('ABCD-EFGH')).toEqual({ userCode: 'ABCD-EFGH' });
    expect(await sessions.findByUid('u')).toEqual({ uid: 'u' });
    advance(1);
    expect(await codes.find('dc')).toBeUndefined();
    expect(await codes.findByUserCode('ABCD-EFGH')).toBeUndefined();
    expect(await sessions.findByUid('u')).toBeUndefined();
  });

  it('adds the clock tolerance to the expiry, as oidc-provider does when it checks exp', async () => {
    const tolerant = new (adapterClass({ clockToleranceSeconds: 15 }))('AccessToken');
    await tolerant.upsert('at', { a: 1 }, 60);
    advance(74_999);
    expect(await tolerant.find('at')).toEqual({ a: 1 });
    advance(1);
    expect(await tolerant.find('at')).toBeUndefined();
    expect(() => adapterClass({ clockToleranceSeconds: -1 })).toThrow(RangeError);
  });

  it('purges expired rows in bounded batches, oldest first, and keeps live ones', async () => {
    const tokens = new Adapter('AccessToken');
    for (let i = 1; i <= 5; i++) await tokens.upsert(`old-${i}`, { i }, i);
    await tokens.upsert('live', { live: true }, 3600);
    await tokens.upsert('forever', { forever: true });
    advance(5_000);
    expect(await Adapter.purgeExpired(2)).toBe(2);
    const left = await t.open.db.selectFrom('oidc_payloads').select('id').orderBy('id').execute();
    expect(left.map((r) => r.id)).toEqual(['forever', 'live', 'old-3', 'old-4', 'old-5']);
    expect(await Adapter.purgeExpired(10)).toBe(3);
    expect(await Adapter.purgeExpired(10)).toBe(0);
    expect(await tokens.find('live')).toEqual({ live: true });
    expect(await tokens.find('forever')).toEqual({ forever: true });
    for (const bad of [0, -1, 1.5, Number.NaN, 10_001]) {
      await expect(Adapter.purgeExpired(bad)).rejects.toThrow(RangeError);
    }
  });

  it('consumes once: find then shows consumed (epoch seconds); the payload is otherwise unchanged', async () => {
    const codes = new Adapter('AuthorizationCode');
    await codes.upsert('code', { grantId: 'g', exp: START_SECONDS + 60 }, 60);
    expect((await codes.find('code'))?.consumed).toBeUndefined();
    advance(2_500);
    await codes.consume('code');
    expect(await codes.find('code')).toEqual({ grantId: 'g', exp: START_SECONDS + 60, consumed: START_SECONDS + 2 });
  });

  it('refuses a second consume, revoking the family (RFC 6749 §4.1.2), and one of unknown ids', async () => {
    const rts = new Adapter('RefreshToken');
    const ats = new Adapter('AccessToken');
    const grants = new Adapter('Grant');
    await grants.upsert('g', { accountId: 'user.ann', clientId: 'app' }, 3600);
    await grants.upsert('other', { accountId: 'user.ann', clientId: 'app' }, 3600);
    await rts.upsert('rt-1', { grantId: 'g' }, 3600);
    await ats.upsert('at-1', { grantId: 'g' }, 60);
    await ats.upsert('at-other', { grantId: 'other' }, 60);
    await rts.consume('rt-1');

    const error = await rts.consume('rt-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OidcConsumeError);
    expect(error).toMatchObject({ code: 'oidc.already_consumed', model: 'RefreshToken', id: 'rt-1' });
    expect(await rts.find('rt-1')).toBeUndefined();
    expect(await ats.find('at-1')).toBeUndefined();
    expect(await grants.find('g')).toBeUndefined();
    expect(await ats.find('at-other')).toEqual({ grantId: 'other' });
    expect(await grants.find('other')).toBeDefined();

    await expect(rts.consume('missing')).rejects.toMatchObject({ code: 'oidc.not_found' });
    await expect(rts.consume('a\0b')).rejects.toMatchObject({ code: 'oidc.not_found' });
  });

  it('lets exactly one of many concurrent consumes win (single use enforced by the database)', async () => {
    const mapped: OidcConsumeError[] = [];
    class InvalidGrant extends Error {}
    const codes = new (adapterClass({
      mapConsumeError: (e) => {
        mapped.push(e);
        return new InvalidGrant(e.message);
      },
    }))('AuthorizationCode');
    await codes.upsert('code', { grantId: 'g' }, 60);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => codes.consume('code')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected).toHaveLength(7);
    for (const r of rejected) expect(r.reason).toBeInstanceOf(InvalidGrant);
    expect(mapped).toHaveLength(7);
    // The losers saw a reuse and revoked the family; a later loser may find the row gone already.
    for (const e of mapped) expect(['oidc.already_consumed', 'oidc.not_found']).toContain(e.code);
    expect(mapped.some((e) => e.code === 'oidc.already_consumed')).toBe(true);
    expect(await codes.find('code')).toBeUndefined();
  });

  it('destroys one row; destroying what is not there is not an error', async () => {
    const interactions = new Adapter('Interaction');
    await interactions.upsert('i-1', { returnTo: '/oidc/auth/i-1' }, 600);
    await interactions.upsert('i-2', { returnTo: '/oidc/auth/i-2' }, 600);
    await interactions.destroy('i-1');
    await interactions.destroy('i-1');
    await interactions.destroy('x'.repeat(MAX_OIDC_KEY_LENGTH + 1));
    expect(await interactions.find('i-1')).toBeUndefined();
    expect(await interactions.find('i-2')).toEqual({ returnTo: '/oidc/auth/i-2' });
  });

  it('finds sessions by uid and device codes by user code, within their own model', async () => {
    const sessions = new Adapter('Session');
    const interactions = new Adapter('Interaction');
    const deviceCodes = new Adapter('DeviceCode');
    await interactions.upsert('i', { uid: 'shared' }, 600);
    await sessions.upsert('s-1', { uid: 'shared', accountId: 'user.ann' }, 600);
    await deviceCodes.upsert('dc-1', { userCode: 'WXYZ-1234', grantId: 'g' }, 600);
    expect(await sessions.findByUid('shared')).toEqual({ uid: 'shared', accountId: 'user.ann' });
    expect(await sessions.findByUid('other')).toBeUndefined();
    expect(await interactions.findByUserCode('WXYZ-1234')).toBeUndefined();
    expect(await deviceCodes.findByUserCode('WXYZ-1234')).toEqual({ userCode: 'WXYZ-1234', grantId: 'g' });
    await deviceCodes.consume('dc-1');
    expect(await deviceCodes.findByUserCode('WXYZ-1234')).toMatchObject({ consumed: START_SECONDS });
    await sessions.destroy('s-1');
    expect(await sessions.findByUid('shared')).toBeUndefined();
    expect(await interactions.findByUid('shared')).toEqual({ uid: 'shared' });
  });

  it('revokes by grant id every grant-bound model at once, whichever model is asked', async () => {
    for (const model of GRANT_BOUND_MODELS) {
      const adapter = new Adapter(model);
      await adapter.upsert(`${model}-g1`, { grantId: 'g1' }, 600);
      await adapter.upsert(`${model}-g2`, { grantId: 'g2' }, 600);
    }
    await new Adapter('Grant').upsert('g1', { clientId: 'app' }, 600);
    await new Adapter('Interaction').upsert('i', { grantId: 'g1' }, 600);
    await new Adapter('ClientCredentials').upsert('cc', { clientId: 'app' }, 600);

    await new Adapter('AccessToken').revokeByGrantId('g1');
    for (const model of GRANT_BOUND_MODELS) {
      const adapter = new Adapter(model);
      expect(await adapter.find(`${model}-g1`)).toBeUndefined();
      expect(await adapter.find(`${model}-g2`)).toEqual({ grantId: 'g2' });
    }
    // The Grant goes through destroy (oidc-provider's revokeGrantPolicy); an Interaction is no token.
    expect(await new Adapter('Grant').find('g1')).toEqual({ clientId: 'app' });
    expect(await new Adapter('Interaction').find('i')).toEqual({ grantId: 'g1' });
    expect(await new Adapter('ClientCredentials').find('cc')).toEqual({ clientId: 'app' });
    await new Adapter('RefreshToken').revokeByGrantId('unknown');
    expect(await rowCount()).toBe(GRANT_BOUND_MODELS.length + 3);
  });

  it('writes many rows of one model in one upsertMany, as upsert writes one: all or none', async () => {
    const tokens = new Adapter('AccessToken');
    await tokens.upsert('a', { old: true }, 60);
    await Adapter.upsertMany('AccessToken', [
      { id: 'a', payload: { jti: 'a', grantId: 'g1' }, expiresIn: 600 },
      { id: 'b', payload: { jti: 'b', consumed: START_SECONDS }, expiresIn: 600 },
      { id: 'c', payload: { jti: 'c-first' } },
      { id: 'c', payload: { jti: 'c-last' } },
    ]);
    expect(await tokens.find('a')).toEqual({ jti: 'a', grantId: 'g1' });
    expect(await tokens.find('b')).toEqual({ jti: 'b', consumed: START_SECONDS });
    // The last entry of an id wins; an entry without expiresIn never expires.
    advance(10 * 365 * 24 * 3600 * 1000);
    expect(await tokens.find('c')).toEqual({ jti: 'c-last' });
    expect(await tokens.find('a')).toBeUndefined();
    await tokens.revokeByGrantId('g1');
    expect(await rowCount()).toBe(2);

    // One bad entry, and nothing of the batch is written.
    await expect(
      Adapter.upsertMany('AccessToken', [
        { id: 'd', payload: { jti: 'd' }, expiresIn: 60 },
        { id: 'e', payload: { big: 'x'.repeat(DEFAULT_MAX_PAYLOAD_BYTES) }, expiresIn: 60 },
      ]),
    ).rejects.toMatchObject({ code: 'oidc.payload_too_large' });
    expect(await tokens.find('d')).toBeUndefined();
    await Adapter.upsertMany('AccessToken', []);
    const tooMany = Array.from({ length: MAX_UPSERT_BATCH + 1 }, (_, i) => ({ id: `t${i}`, payload: {} }));
    await expect(Adapter.upsertMany('AccessToken', tooMany)).rejects.toThrow(RangeError);
    await expect(Adapter.upsertMany('Bad Model', [])).rejects.toThrow(TypeError);
    expect(await rowCount()).toBe(2);
  });

  it('serialises concurrent upserts: one whole payload wins for one id, none is lost across ids', async () => {
    const tokens = new Adapter('AccessToken');
    const writers = Array.from({ length: 20 }, (_, i) => ({ writer: i, data: 'x'.repeat(100 + i) }));
    await Promise.all(writers.map((p) => tokens.upsert('contested', p, 60)));
    expect(writers).toContainEqual(await tokens.find('contested'));
    await Promise.all(Array.from({ length: 50 }, (_, i) => tokens.upsert(`id-${i}`, { i }, 60)));
    expect(await rowCount()).toBe(51);
    for (let i = 0; i < 50; i++) expect(await tokens.find(`id-${i}`)).toEqual({ i });
  });

  it('refuses oversized payloads and unusable keys with a clear error, storing nothing', async () => {
    const sessions = new Adapter('Session');
    const big = { uid: 'u', blob: 'x'.repeat(64 * 1024) };
    const error = await sessions.upsert('s', big, 60).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OidcPayloadError);
    expect(error).toMatchObject({ code: 'oidc.payload_too_large' });
    expect((error as Error).message).toMatch(/^Session payload is 655\d\d bytes; the limit is 65536$/);

    // The limit counts UTF-8 bytes, not characters.
    const small = new (adapterClass({ maxPayloadBytes: 20 }))('Session');
    await small.upsert('ok', { a: 'ééé' }, 60); // {"a":"ééé"}: 11 characters, 14 bytes
    await expect(small.upsert('no', { a: 'ééééééé' }, 60)).rejects.toMatchObject({ code: 'oidc.payload_too_large' });

    await expect(sessions.upsert('', { a: 1 }, 60)).rejects.toMatchObject({ code: 'oidc.invalid_key' });
    await expect(sessions.upsert('a\0b', { a: 1 }, 60)).rejects.toMatchObject({ code: 'oidc.invalid_key' });
    await expect(sessions.upsert('x'.repeat(MAX_OIDC_KEY_LENGTH + 1), {}, 60)).rejects.toMatchObject({
      code: 'oidc.invalid_key',
    });
    await expect(sessions.upsert('s', { uid: 7 }, 60)).rejects.toMatchObject({ code: 'oidc.invalid_key' });
    await expect(sessions.upsert('s', { n: 1n }, 60)).rejects.toMatchObject({ code: 'oidc.invalid_payload' });
    await expect(sessions.upsert('s', { a: 1 }, Number.NaN)).rejects.toMatchObject({ code: 'oidc.invalid_payload' });
    expect(await rowCount()).toBe(1);

    // Lookups with keys no row can have answer undefined without reaching the driver.
    for (const key of ['a\0b', 'x'.repeat(MAX_OIDC_KEY_LENGTH + 1)]) {
      expect(await sessions.find(key)).toBeUndefined();
      expect(await sessions.findByUid(key)).toBeUndefined();
      expect(await sessions.findByUserCode(key)).toBeUndefined();
    }
    expect(() => new Adapter('Bad Model')).toThrow(TypeError);
  });

  describe('plugged into oidc-provider', () => {
    let server: Server | undefined;
    afterEach(async () => {
      if (server !== undefined) {
        server.closeAllConnections();
        server.close();
        await once(server, 'close');
        server = undefined;
      }
    });

    // RFC 6749 §4.4 (client credentials, client_secret_basic per §2.3.1), RFC 7662 (introspection),
    // RFC 7009 (revocation): the token lives in our table and nowhere else.
    it('issues a client-credentials token it stores, introspects it, and forgets it once revoked', async () => {
      const { privateKey } = await generateKeyPair('EdDSA', { extractable: true });
      const ownTokenOnly = async (_ctx: unknown, client: { clientId: string }, token: { clientId: string }) =>
        token.clientId === client.clientId;
      let handler: (req: IncomingMessage, res: ServerResponse) => unknown = () => undefined;
      server = createServer((req, res) => handler(req, res));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      // Loaded as the server loads it (without the Node.js 20 notice on the console).
      const { Provider } = (await loadOidcProvider()).module;
      const provider = new Provider(base, {
        adapter: createDatabaseAdapter(t.open.db),
        clients: [
          {
            client_id: 'reporting',
            client_secret: 'a-client-secret-long-enough-for-hs256-0123456789',
            grant_types: ['client_credentials'],
            response_types: [],
            redirect_uris: [],
            token_endpoint_auth_method: 'client_secret_basic',
          },
        ],
        jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'k1', alg: 'EdDSA', use: 'sig' }] },
        // With only an Ed25519 key, clients must default to EdDSA (oidc-provider's default is RS256).
        clientDefaults: { id_token_signed_response_alg: 'EdDSA' },
        cookies: { keys: ['a-cookie-signing-key-for-the-test-only'] },
        ttl: { ClientCredentials: 600 },
        features: {
          devInteractions: { enabled: false },
          clientCredentials: { enabled: true },
          introspection: { enabled: true, allowedPolicy: ownTokenOnly },
          revocation: { enabled: true, allowedPolicy: ownTokenOnly },
        },
      });
      handler = provider.callback();
      const authorization = `Basic ${Buffer.from('reporting:a-client-secret-long-enough-for-hs256-0123456789').toString('base64')}`;
      const post = (path: string, form: Record<string, string>): Promise<Response> =>
        fetch(`${base}${path}`, {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(form),
        });

      const tokenResponse = await post('/token', { grant_type: 'client_credentials' });
      expect(tokenResponse.status, await tokenResponse.clone().text()).toBe(200);
      const token = (await tokenResponse.json()) as Record<string, unknown>;
      expect(token).toMatchObject({ token_type: 'Bearer', expires_in: 600 });
      const accessToken = token.access_token as string;
      expect(accessToken).toMatch(/^[A-Za-z0-9_-]{43}$/);

      const rows = await t.open.db.selectFrom('oidc_payloads').selectAll().execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ model: 'ClientCredentials', id: accessToken, grant_id: null, consumed_at: null });
      expect(JSON.parse(rows[0]!.payload)).toMatchObject({ kind: 'ClientCredentials', clientId: 'reporting' });

      const introspected = await post('/token/introspection', { token: accessToken });
      expect(introspected.status).toBe(200);
      expect(await introspected.json()).toMatchObject({ active: true, client_id: 'reporting', token_type: 'Bearer' });

      const revoked = await post('/token/revocation', { token: accessToken });
      expect(revoked.status).toBe(200);
      expect(await t.open.db.selectFrom('oidc_payloads').select('id').execute()).toEqual([]);
      const after = await post('/token/introspection', { token: accessToken });
      expect(await after.json()).toEqual({ active: false });
    });
  });
});
