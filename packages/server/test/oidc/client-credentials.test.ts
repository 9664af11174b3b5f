import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type CryptoKey,
} from 'jose';
import * as client from 'openid-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mintAccessToken } from '../../src/keys/access-tokens.js';
import { CLOCK_TOLERANCE_SECONDS } from '../../src/oidc/create-oidc-provider.js';
import { createDatabaseAdapter } from '../../src/oidc/database-adapter.js';
import { REVOKED_ACCESS_TOKEN_MODEL } from '../../src/oidc/jwt-access-tokens.js';
import { TEST_DATABASE_KINDS } from '../storage/test-databases.js';
import { operator, startOidcNode, type OidcNode } from './oidc-fixture.js';

const CATALOG = 'https://catalog.library.example';
const SECRETS = {
  indexer: 'indexer-secret-0123456789',
  temp: 'temp-secret-0123456789ab',
  reporting: 'reporting-secret-0123456',
  robot: 'robot-secret-0123456789',
} as const;

/**
 * Domain `library`: readers may read books (indexer, keyed, and the group robots), temps may
 * update them for 90 seconds more (temp), nobody may delete them; the API `catalog` declares book
 * scopes and role scopes and wants the permissions claim. Domain `shop` has a service of its own.
 */
function libraryConfig(keyedJwk: Record<string, unknown>, tempUntil: Date): string {
  return `
users:
  - name: alice
domains:
  - name: library
    groups:
      - { name: robots, members: [library.indexer] }
    roles:
      - { name: readers, members: [library.indexer, library.keyed, "library:group.robots"] }
      - { name: staff, members: [user.alice] }
      - { name: temps, members: [{ name: library.temp, expires: "${tempUntil.toISOString()}" }] }
    policies:
      - name: books
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
          - { effect: allow, action: update, resource: "library:book/*", role: temps }
          - { effect: allow, action: delete, resource: "library:book/*", role: staff }
    services:
      - { name: indexer, secret: "${SECRETS.indexer}" }
      - { name: keyed, publicKeys: [${JSON.stringify(keyedJwk)}] }
      - { name: temp, secret: "${SECRETS.temp}" }
    apis:
      - name: catalog
        audience: ${CATALOG}
        scopes: ["book:read", "book:update", "book:delete", "library:role.readers", "library:role.staff", "library:role.temps"]
        permissionsClaim: true
    clients:
      - { clientId: reporting, type: confidential, secret: "${SECRETS.reporting}", grantTypes: [client_credentials] }
  - name: shop
    services:
      - { name: robot, secret: "${SECRETS.robot}" }
    apis:
      - { name: store, audience: "urn:gatehouse:shop" }
`;
}

describe.each(TEST_DATABASE_KINDS)('the token plane on $name: client credentials', (kind) => {
  let node: OidcNode;
  let keyedKey: CryptoKey;
  let tempUntil: Date;

  beforeEach(async () => {
    node = await startOidcNode(kind);
    const pair = await generateKeyPair('EdDSA', { extractable: true });
    keyedKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'keyed-1', use: 'sig' };
    tempUntil = new Date(Date.now() + 90_000);
    await node.apply(libraryConfig(jwk, tempUntil));
  });
  afterEach(async () => {
    await node.close();
  });

  /** openid-client's view of the server for `clientId` authenticating with `auth`. */
  function discover(
    clientId: string,
    auth: client.ClientAuth,
    algorithm?: 'oidc' | 'oauth2',
  ): Promise<client.Configuration> {
    return client.discovery(new URL(node.issuer), clientId, undefined, auth, {
      execute: [client.allowInsecureRequests],
      ...(algorithm !== undefined ? { algorithm } : {}),
    });
  }

  async function tokenFor(
    clientId: string,
    auth: client.ClientAuth,
    parameters: Record<string, string> = { resource: CATALOG, scope: 'book:read' },
  ): Promise<client.TokenEndpointResponse> {
    return client.clientCredentialsGrant(await discover(clientId, auth), parameters);
  }

  /** A token request with fetch, for exact statuses and bodies. */
  function postToken(form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${node.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form),
    });
  }

  function basic(id: string, secret: string): Record<string, string> {
    // RFC 6749 §2.3.1: form-urlencoded, then Basic.
    return {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    };
  }

  function jwks(): ReturnType<typeof createRemoteJWKSet> {
    return createRemoteJWKSet(new URL(`${node.issuer}/jwks`));
  }

  /** The rows of `model` in oidc_payloads. */
  function rowsOf(model: string): Promise<{ id: string; expires_at: number | null }[]> {
    return node.database.open.db
      .selectFrom('oidc_payloads')
      .select(['id', 'expires_at'])
      .where('model', '=', model)
      .execute();
  }

  /** Introspects `token` as `clientId` with fetch: the exact status and body. */
  async function introspectRaw(token: string, clientId: string, secret: string): Promise<[number, unknown]> {
    const res = await fetch(`${node.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic(clientId, secret) },
      body: new URLSearchParams({ token }),
    });
    return [res.status, await res.json()];
  }

  // OpenID Connect Discovery 1.0 §4; RFC 8414 §3 (the path-inserted URL for an issuer with a path).
  it('publishes discovery metadata for the issuer {PUBLIC_URL}/oidc, at both well-known locations', async () => {
    for (const algorithm of ['oidc', 'oauth2'] as const) {
      const config = await discover('library.indexer', client.ClientSecretBasic(SECRETS.indexer), algorithm);
      const metadata = config.serverMetadata();
      expect(metadata).toMatchObject({
        issuer: node.issuer,
        authorization_endpoint: `${node.issuer}/auth`,
        token_endpoint: `${node.issuer}/token`,
        jwks_uri: `${node.issuer}/jwks`,
        userinfo_endpoint: `${node.issuer}/me`,
        introspection_endpoint: `${node.issuer}/token/introspection`,
        revocation_endpoint: `${node.issuer}/token/revocation`,
        end_session_endpoint: `${node.issuer}/session/end`,
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
        id_token_signing_alg_values_supported: ['EdDSA'],
      });
      expect(metadata.grant_types_supported).toEqual(['authorization_code', 'refresh_token', 'client_credentials']);
      expect(metadata.token_endpoint_auth_methods_supported).toEqual([
        'client_secret_basic',
        'client_secret_post',
        'private_key_jwt',
        'none',
      ]);
    }
  });

  // RFC 7517 §5: public keys only, the current one first.
  it('publishes the token keys of the KeyService at /oidc/jwks, current first, public members only', async () => {
    const before = await node.keys.currentSigningKey('token');
    await node.keys.rotate('token', { actor: 'user.root', overlapSeconds: 600 });
    const after = await node.keys.currentSigningKey('token');
    const res = await fetch(`${node.issuer}/jwks`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { keys: Record<string, unknown>[] };
    expect(body.keys.map((k) => k.kid)).toEqual([after.kid, before.kid]);
    for (const key of body.keys) {
      expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
    }
    expect(body).toEqual(await node.keys.publicJwks('token'));
  });

  // RFC 6749 §4.4 with client_secret_basic (§2.3.1); RFC 9068 §2 (the token), api.md §1 (claims).
  it('issues an at+jwt access token to a service with client_secret_basic, with the claims api.md lists', async () => {
    const issuedAfter = Math.floor(Date.now() / 1000);
    const tokens = await tokenFor('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    expect(tokens).toMatchObject({ token_type: 'bearer', expires_in: 600, scope: 'book:read' });
    expect(tokens.scope_rejected).toBeUndefined();
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks(), {
      issuer: node.issuer,
      audience: CATALOG,
      typ: 'at+jwt',
      algorithms: ['EdDSA'],
    });
    expect(protectedHeader).toEqual({
      alg: 'EdDSA',
      typ: 'at+jwt',
      kid: (await node.keys.currentSigningKey('token')).kid,
    });
    expect(payload).toEqual({
      iss: node.issuer,
      sub: 'library.indexer',
      aud: CATALOG,
      client_id: 'library.indexer',
      scope: 'book:read',
      jti: expect.stringMatching(/^[A-Za-z0-9_-]{21,64}$/),
      iat: expect.any(Number),
      exp: (payload.iat as number) + 600,
      domain: 'library',
      roles: ['library:role.readers'],
      groups: ['library:group.robots'],
      permissions: [{ book: { '*': ['read'] } }],
    });
    expect(payload.iat).toBeGreaterThanOrEqual(issuedAfter);
  });

  // RFC 6749 §2.3.1: client_secret_post, the same secret in the body.
  it('accepts client_secret_post', async () => {
    const tokens = await tokenFor('library.indexer', client.ClientSecretPost(SECRETS.indexer));
    const { payload } = await jwtVerify(tokens.access_token, jwks(), { issuer: node.issuer, audience: CATALOG });
    expect(payload).toMatchObject({ sub: 'library.indexer', scope: 'book:read' });
  });

  // RFC 7523 §2.2 (private_key_jwt, OIDC Core §9): the service's public key verifies the assertion.
  it('accepts private_key_jwt from a service with a public key', async () => {
    const tokens = await tokenFor('library.keyed', client.PrivateKeyJwt(keyedKey));
    const { payload } = await jwtVerify(tokens.access_token, jwks(), { issuer: node.issuer, audience: CATALOG });
    expect(payload).toMatchObject({
      sub: 'library.keyed',
      client_id: 'library.keyed',
      roles: ['library:role.readers'],
    });
    // A key the service does not have is refused.
    const stranger = await generateKeyPair('EdDSA');
    await expect(tokenFor('library.keyed', client.PrivateKeyJwt(stranger.privateKey))).rejects.toMatchObject({
      error: 'invalid_client',
      status: 401,
    });
  });

  // api.md §1: granted permission scopes in `scope`, the rest (denied or unknown) in scope_rejected.
  it('grants the permission scopes policy allows and lists the rest in scope_rejected', async () => {
    const tokens = await tokenFor('library.indexer', client.ClientSecretBasic(SECRETS.indexer), {
      resource: CATALOG,
      scope: 'book:read book:delete unknown:x',
    });
    expect(tokens.scope).toBe('book:read');
    expect(tokens.scope_rejected).toBe('book:delete unknown:x');
    const { payload } = await jwtVerify(tokens.access_token, jwks(), { issuer: node.issuer, audience: CATALOG });
    expect(payload.scope).toBe('book:read');
  });

  it('grants role scopes D:role.NAME to holders of the role only', async () => {
    const tokens = await tokenFor('library.indexer', client.ClientSecretBasic(SECRETS.indexer), {
      resource: CATALOG,
      scope: 'library:role.readers library:role.staff openid',
    });
    expect(tokens.scope).toBe('library:role.readers');
    expect(tokens.scope_rejected).toBe('library:role.staff openid');
  });

  it('rejects every scope, not the request, when none is granted; and omits scope_rejected when none is rejected', async () => {
    const none = await postToken(
      { grant_type: 'client_credentials', resource: CATALOG, scope: 'book:delete nonsense' },
      basic('library.indexer', SECRETS.indexer),
    );
    expect(none.status).toBe(200);
    const body = (await none.json()) as Record<string, unknown>;
    expect(body.scope).toBeUndefined();
    expect(body.scope_rejected).toBe('book:delete nonsense');
    const all = (await (
      await postToken(
        { grant_type: 'client_credentials', resource: CATALOG },
        basic('library.indexer', SECRETS.indexer),
      )
    ).json()) as Record<string, unknown>;
    expect(all).not.toHaveProperty('scope');
    expect(all).not.toHaveProperty('scope_rejected');
  });

  // RFC 8707 §2: the resource names the API; without one, the client's domain's only API.
  it('defaults the resource to the domain’s only API and refuses an unknown one with invalid_target', async () => {
    const res = await postToken(
      { grant_type: 'client_credentials', scope: 'book:read' },
      basic('library.indexer', SECRETS.indexer),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; scope: string };
    expect(body.scope).toBe('book:read');
    expect((await jwtVerify(body.access_token, jwks(), { issuer: node.issuer })).payload.aud).toBe(CATALOG);
    const unknown = await postToken(
      { grant_type: 'client_credentials', resource: 'https://nowhere.example', scope: 'book:read' },
      basic('library.indexer', SECRETS.indexer),
    );
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ error: 'invalid_target' });
  });

  // RFC 6749 §5.2: invalid_client, 401 with WWW-Authenticate when the client used Basic.
  it('answers 401 invalid_client for a wrong secret, an unknown client and the wrong case of a client_id', async () => {
    for (const [id, secret] of [
      ['library.indexer', 'not-the-secret-0123456789'],
      ['library.nobody', SECRETS.indexer],
      ['Library.Indexer', SECRETS.indexer],
    ] as const) {
      const res = await postToken({ grant_type: 'client_credentials', resource: CATALOG }, basic(id, secret));
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=".*", error="invalid_client"/);
      expect(await res.json()).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    }
  });

  it('refuses the old secret at once after a rotation, and accepts the new one', async () => {
    await tokenFor('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    const rotated = await node.management.rotateServiceSecret(operator, 'library', 'indexer', undefined, undefined);
    expect(rotated.secret).toEqual(expect.any(String));
    const old = await postToken(
      { grant_type: 'client_credentials', resource: CATALOG },
      basic('library.indexer', SECRETS.indexer),
    );
    expect(old.status).toBe(401);
    await expect(tokenFor('library.indexer', client.ClientSecretBasic(rotated.secret!))).resolves.toMatchObject({
      scope: 'book:read',
    });
  });

  it('refuses a service of a disabled domain and a deleted OAuth client', async () => {
    const robot = (): Promise<Response> =>
      postToken(
        { grant_type: 'client_credentials', resource: 'urn:gatehouse:shop' },
        basic('shop.robot', SECRETS.robot),
      );
    expect((await robot()).status).toBe(200);
    await node.management.updateDomain(operator, 'shop', { enabled: false }, undefined);
    const disabled = await robot();
    expect(disabled.status).toBe(401);
    expect(await disabled.json()).toMatchObject({ error: 'invalid_client' });

    const reporting = (): Promise<Response> =>
      postToken(
        { grant_type: 'client_credentials', resource: CATALOG, scope: 'book:read' },
        basic('reporting', SECRETS.reporting),
      );
    const ok = await reporting();
    expect(ok.status).toBe(200);
    // An OAuth client is no principal of the domain: nothing is granted to it by role.
    expect(await ok.json()).toMatchObject({ scope_rejected: 'book:read' });
    await node.management.deleteClient(operator, 'library', 'reporting', undefined);
    expect((await reporting()).status).toBe(401);
  });

  // semantics.md "Privileged access": exp ≤ the earliest expiry of the memberships carried.
  it('caps exp at the earliest expiring membership the token carries', async () => {
    const tokens = await tokenFor('library.temp', client.ClientSecretBasic(SECRETS.temp), {
      resource: CATALOG,
      scope: 'book:update library:role.temps',
    });
    expect(tokens.scope).toBe('book:update library:role.temps');
    const { payload } = await jwtVerify(tokens.access_token, jwks(), { issuer: node.issuer, audience: CATALOG });
    expect(payload.roles).toEqual(['library:role.temps']);
    expect(payload.exp).toBe(Math.floor(tempUntil.getTime() / 1000));
    expect(tokens.expires_in).toBeLessThanOrEqual(90);
    expect(tokens.expires_in).toBeGreaterThan(60);
  });

  // RFC 7662 §2 (introspection of the JWT), RFC 7009 §2 (revocation), then inactive.
  it('introspects its JWT access tokens, revokes them, and then reports them inactive', async () => {
    const config = await discover('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    const tokens = await client.clientCredentialsGrant(config, { resource: CATALOG, scope: 'book:read' });
    const { payload } = await jwtVerify(tokens.access_token, jwks(), { issuer: node.issuer });
    const active = await client.tokenIntrospection(config, tokens.access_token);
    expect(active).toEqual({
      active: true,
      iss: node.issuer,
      sub: 'library.indexer',
      client_id: 'library.indexer',
      aud: CATALOG,
      scope: 'book:read',
      jti: payload.jti,
      iat: payload.iat,
      exp: payload.exp,
      token_type: 'Bearer',
      domain: 'library',
      roles: ['library:role.readers'],
      groups: ['library:group.robots'],
      permissions: [{ book: { '*': ['read'] } }],
    });
    // A client-credentials token has no record: the JWT stands for itself.
    expect(await rowsOf('ClientCredentials')).toEqual([]);
    await client.tokenRevocation(config, tokens.access_token);
    expect(await client.tokenIntrospection(config, tokens.access_token)).toEqual({ active: false });
    // Revoking again, or revoking garbage, is still 200 (RFC 7009 §2.2).
    await client.tokenRevocation(config, tokens.access_token);
    await client.tokenRevocation(config, 'eyJhbGciOiJub25lIn0.e30.x');
    expect((await rowsOf(REVOKED_ACCESS_TOKEN_MODEL)).map((r) => r.id)).toEqual([payload.jti]);
  });

  // The revocation list keeps a revoked jti until the token expires, then the purge removes it.
  it('keeps a revoked token’s jti on the revocation list until its exp, and purges it after', async () => {
    const tokens = await tokenFor('library.temp', client.ClientSecretBasic(SECRETS.temp), {
      resource: CATALOG,
      scope: 'book:update',
    });
    const { jti, exp } = decodeJwt(tokens.access_token) as { jti: string; exp: number };
    const config = await discover('library.temp', client.ClientSecretBasic(SECRETS.temp));
    const other = await tokenFor('library.temp', client.ClientSecretBasic(SECRETS.temp), {
      resource: CATALOG,
      scope: 'book:update',
    });
    await client.tokenRevocation(config, tokens.access_token);
    expect(await client.tokenIntrospection(config, tokens.access_token)).toEqual({ active: false });
    // Only the revoked token is refused: its client's other tokens stay active.
    expect(await client.tokenIntrospection(config, other.access_token)).toMatchObject({ active: true });
    const [row] = await rowsOf(REVOKED_ACCESS_TOKEN_MODEL);
    expect(row?.id).toBe(jti);
    // Its exp (capped by the temps membership, ~90 s) plus the adapter's clock tolerance.
    expect(Math.abs(Number(row!.expires_at) - (exp + CLOCK_TOLERANCE_SECONDS) * 1000)).toBeLessThan(2000);

    const at = (ms: number) =>
      createDatabaseAdapter(node.database.open.db, {
        clock: () => new Date(ms),
        clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS,
      });
    const beforeExp = at(exp * 1000 - 1000);
    expect(await beforeExp.purgeExpired(1000)).toBe(0);
    expect(await new beforeExp(REVOKED_ACCESS_TOKEN_MODEL).find(jti)).toMatchObject({ jti, exp });
    const afterExp = at((exp + CLOCK_TOLERANCE_SECONDS + 1) * 1000);
    expect(await new afterExp(REVOKED_ACCESS_TOKEN_MODEL).find(jti)).toBeUndefined();
    expect(await afterExp.purgeExpired(1000)).toBe(1);
    expect(await rowsOf(REVOKED_ACCESS_TOKEN_MODEL)).toEqual([]);
  });

  // Client-credentials tokens are not stored: many issued at once all introspect, and the token
  // endpoint wrote nothing for them.
  it('introspects every one of many tokens issued at once, without a record for any', async () => {
    const responses = await Promise.all(
      Array.from({ length: 40 }, () =>
        postToken(
          { grant_type: 'client_credentials', resource: CATALOG, scope: 'book:read' },
          basic('library.indexer', SECRETS.indexer),
        ),
      ),
    );
    const tokens = await Promise.all(
      responses.map(async (r) => ((await r.json()) as { access_token: string }).access_token),
    );
    expect(new Set(tokens).size).toBe(40);
    const config = await discover('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    const answers = await Promise.all(tokens.map((t) => client.tokenIntrospection(config, t)));
    expect(answers.every((a) => a.active === true && a.sub === 'library.indexer')).toBe(true);
    expect(await rowsOf('ClientCredentials')).toEqual([]);
    expect(await rowsOf('AccessToken')).toEqual([]);
  });

  // A token without a record is active only while its client may still get one.
  it('reports the tokens of a deleted service, or of a disabled domain’s service, inactive', async () => {
    const temp = await tokenFor('library.temp', client.ClientSecretBasic(SECRETS.temp), {
      resource: CATALOG,
      scope: 'book:update',
    });
    const indexer = await discover('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    expect(await client.tokenIntrospection(indexer, temp.access_token)).toMatchObject({
      active: true,
      sub: 'library.temp',
    });
    await node.management.deleteService(operator, 'library', 'temp', undefined);
    expect(await client.tokenIntrospection(indexer, temp.access_token)).toEqual({ active: false });

    // A disabled domain's clients cannot introspect at all; the store itself refuses the token.
    const robot = await tokenFor('shop.robot', client.ClientSecretBasic(SECRETS.robot), {
      resource: 'urn:gatehouse:shop',
    });
    const store = node.holder.jwtAccessTokens;
    expect(await store.find(robot.access_token)).toMatchObject({ kind: 'ClientCredentials', stored: false });
    await node.management.updateDomain(operator, 'shop', { enabled: false }, undefined);
    expect(await store.find(robot.access_token)).toBeUndefined();
    await node.management.updateDomain(operator, 'shop', { enabled: true }, undefined);
    expect(await store.find(robot.access_token)).toMatchObject({ stored: false });
  });

  // RFC 7662 §2.2: whatever is wrong with a token, the answer is {active: false}, never an error.
  it('reports forged, unsigned, foreign and wrong-issuer JWTs inactive, with 200', async () => {
    const real = (await tokenFor('library.indexer', client.ClientSecretBasic(SECRETS.indexer))).access_token;
    const [header, body, signature] = real.split('.') as [string, string, string];
    const claims = decodeJwt(real);
    const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const key = await node.keys.currentSigningKey('token');
    const foreign = await generateKeyPair('EdDSA');
    const sign = (payload: Record<string, unknown>, privateKey: unknown, typ = 'at+jwt'): Promise<string> =>
      new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ }).sign(privateKey as CryptoKey);
    const now = Math.floor(Date.now() / 1000);
    const forged = [
      // alg none, and no signature at all.
      `${b64({ alg: 'none', typ: 'at+jwt' })}.${body}.x`,
      `${b64({ alg: 'none', typ: 'at+jwt' })}.${body}.`,
      // The claims changed under the real signature (more permissions).
      `${header}.${b64({ ...claims, permissions: [{ book: { '*': ['read', 'delete'] } }] })}.${signature}`,
      // The same claims signed by a key that is not ours, under our kid.
      await sign({ ...claims }, foreign.privateKey),
      // Our key, but another issuer, another typ, or expired.
      await sign({ ...claims, iss: 'https://elsewhere.example/oidc' }, key.privateKey),
      await sign({ ...claims }, key.privateKey, 'JWT'),
      await sign({ ...claims, iat: now - 120, exp: now - 60 }, key.privateKey),
      // Not a JWT.
      'a.b.c',
      `${header}.${body}`,
    ];
    for (const token of forged) {
      expect(await introspectRaw(token, 'library.indexer', SECRETS.indexer)).toEqual([200, { active: false }]);
    }
    // Re-signed with our key, the same claims are a token this server could have issued: active.
    const resigned = await sign({ ...claims, jti: 'resigned-1' }, key.privateKey);
    expect(await introspectRaw(resigned, 'library.indexer', SECRETS.indexer)).toEqual([
      200,
      expect.objectContaining({ active: true, jti: 'resigned-1' }),
    ]);
  });

  // A grant-bound token (sub: the user) without its record has been revoked: it never passes
  // for a client-credentials token, whatever its signature.
  it('reports a user’s token without a record inactive, even signed with our key', async () => {
    const token = await mintAccessToken(node.keys, {
      issuer: node.issuer,
      subject: 'user.alice',
      audience: CATALOG,
      ttlSeconds: 600,
      clientId: 'library.indexer',
      scope: 'book:read',
      claims: { domain: 'library' },
    });
    expect(await introspectRaw(token, 'library.indexer', SECRETS.indexer)).toEqual([200, { active: false }]);
  });

  // docs/oidc.md "Introspection and revocation": operator tokens carry no client_id and no
  // domain, so no client passes the rule of who may introspect them — not even their subject.
  it('reports `gatehouse token` operator tokens inactive to every client', async () => {
    const token = await mintAccessToken(node.keys, {
      issuer: node.issuer,
      subject: 'library.indexer',
      audience: `${node.base}/v1`,
      ttlSeconds: 600,
    });
    expect(await node.holder.jwtAccessTokens.find(token)).toMatchObject({ stored: false, sub: 'library.indexer' });
    expect(await introspectRaw(token, 'library.indexer', SECRETS.indexer)).toEqual([200, { active: false }]);
    expect(await introspectRaw(token, 'library.temp', SECRETS.temp)).toEqual([200, { active: false }]);
  });

  it('lets the token’s own domain introspect it, refuses other domains, and lets only its client revoke it', async () => {
    const tokens = await tokenFor('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    const sameDomain = await discover('library.temp', client.ClientSecretBasic(SECRETS.temp));
    expect(await client.tokenIntrospection(sameDomain, tokens.access_token)).toMatchObject({
      active: true,
      sub: 'library.indexer',
    });
    const otherDomain = await discover('shop.robot', client.ClientSecretBasic(SECRETS.robot));
    expect(await client.tokenIntrospection(otherDomain, tokens.access_token)).toEqual({ active: false });
    await expect(client.tokenRevocation(sameDomain, tokens.access_token)).rejects.toMatchObject({
      error: 'invalid_request',
      status: 400,
    });
    expect(await client.tokenIntrospection(sameDomain, tokens.access_token)).toMatchObject({ active: true });
    // Introspection needs an authenticated client (RFC 7662 §2.1).
    const anonymous = await fetch(`${node.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.access_token }),
    });
    expect(anonymous.status).toBe(400);
    expect(await anonymous.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('does not take the jti of a JWT access token for an opaque token', async () => {
    const tokens = await tokenFor('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    const { jti } = (await jwtVerify(tokens.access_token, jwks(), { issuer: node.issuer })).payload;
    const config = await discover('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    expect(await client.tokenIntrospection(config, jti as string)).toEqual({ active: false });
  });

  // docs/keys.md "Rotation and overlap": new tokens use the new key; old ones still verify.
  it('signs with the new key after a rotation, while tokens of the old key still verify and introspect', async () => {
    const config = await discover('library.indexer', client.ClientSecretBasic(SECRETS.indexer));
    const oldKid = (await node.keys.currentSigningKey('token')).kid;
    const before = await client.clientCredentialsGrant(config, { resource: CATALOG, scope: 'book:read' });
    expect(decodeProtectedHeader(before.access_token).kid).toBe(oldKid);

    const newKid = await node.keys.rotate('token', { actor: 'user.root', overlapSeconds: 600 });
    const after = await client.clientCredentialsGrant(config, { resource: CATALOG, scope: 'book:read' });
    expect(decodeProtectedHeader(after.access_token).kid).toBe(newKid);

    const keySet = jwks();
    await expect(
      jwtVerify(before.access_token, keySet, { issuer: node.issuer, audience: CATALOG }),
    ).resolves.toBeDefined();
    await expect(
      jwtVerify(after.access_token, keySet, { issuer: node.issuer, audience: CATALOG }),
    ).resolves.toBeDefined();
    expect(await client.tokenIntrospection(config, before.access_token)).toMatchObject({ active: true });

    // Without overlap (a compromised key), the old key's tokens stop verifying at once.
    await node.keys.rotate('token', { actor: 'user.root', overlapSeconds: 0 });
    const res = await fetch(`${node.issuer}/jwks`);
    const kids = ((await res.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    expect(kids).not.toContain(newKid);
    expect(kids).toContain(oldKid);
    expect(await client.tokenIntrospection(config, after.access_token)).toEqual({ active: false });
  });
});

// docs/keys.md "Algorithms": a node whose keys are P-256 signs tokens and ID tokens with ES256.
describe.each(TEST_DATABASE_KINDS)('the token plane on $name with ES256 keys', (kind) => {
  let node: OidcNode;
  beforeEach(async () => {
    node = await startOidcNode(kind, { keyAlg: 'ES256' });
    await node.apply(`
domains:
  - name: library
    services:
      - { name: indexer, secret: "${SECRETS.indexer}" }
    apis:
      - { name: catalog, audience: "${CATALOG}" }
`);
  });
  afterEach(async () => {
    await node.close();
  });

  it('signs access tokens with ES256 (RFC 7518 §3.4) that verify against /oidc/jwks', async () => {
    const res = await fetch(`${node.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`library.indexer:${SECRETS.indexer}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: CATALOG }),
    });
    expect(res.status).toBe(200);
    const { access_token: token } = (await res.json()) as { access_token: string };
    const { protectedHeader, payload } = await jwtVerify(token, createRemoteJWKSet(new URL(`${node.issuer}/jwks`)), {
      issuer: node.issuer,
      audience: CATALOG,
      algorithms: ['ES256'],
      typ: 'at+jwt',
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: 'library.indexer', domain: 'library', roles: [] });
    const metadata = (await (await fetch(`${node.issuer}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    expect(metadata.id_token_signing_alg_values_supported).toEqual(['ES256']);
  });
});
