import * as client from 'openid-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TEST_DATABASE_KINDS } from '../storage/test-databases.js';
import { startOidcNode, type OidcNode } from './oidc-fixture.js';

const CATALOG = 'https://catalog.library.example';

/** The parts of oidc-provider's models this test drives by hand (code-flow.test.ts goes through the pages). */
interface ProviderModels {
  Client: { find(id: string): Promise<unknown> };
  Grant: new (init: { accountId: string; clientId: string }) => {
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
    destroy(): Promise<void>;
  };
  AccessToken: new (init: Record<string, unknown>) => { resourceServer: unknown; save(): Promise<string> };
  ResourceServer: new (identifier: string, info: Record<string, unknown>) => unknown;
}

describe.each(TEST_DATABASE_KINDS)('userinfo with JWT access tokens on $name', (kind) => {
  let node: OidcNode;
  beforeEach(async () => {
    node = await startOidcNode(kind);
    await node.apply(`
users:
  - { name: alice, email: Alice@Example.com, displayName: Alice Liddell }
domains:
  - name: library
    roles:
      - { name: staff, members: [user.alice] }
    policies:
      - name: books
        assertions:
          - { effect: allow, action: delete, resource: "library:book/*", role: staff }
    apis:
      - { name: catalog, audience: "${CATALOG}", scopes: ["book:delete"] }
    clients:
      - { clientId: library-web, type: public, redirectUris: ["http://127.0.0.1:5173/callback"], grantTypes: [authorization_code, refresh_token] }
`);
  });
  afterEach(async () => {
    await node.close();
  });

  /**
   * An access token as the code flow issues it — a Grant for alice and library-web, then an
   * AccessToken for the API with `openid email book:delete` — made directly with oidc-provider's
   * models, to test userinfo alone (code-flow.test.ts goes through the login and consent pages).
   */
  async function codeFlowToken(): Promise<{ token: string; grant: InstanceType<ProviderModels['Grant']> }> {
    const provider = (await node.holder.current()).provider as unknown as ProviderModels;
    const web = await provider.Client.find('library-web');
    const grant = new provider.Grant({ accountId: 'user.alice', clientId: 'library-web' });
    grant.addOIDCScope('openid email');
    grant.addResourceScope(CATALOG, 'openid email book:delete');
    const grantId = await grant.save();
    const at = new provider.AccessToken({
      accountId: 'user.alice',
      client: web,
      grantId,
      gty: 'authorization_code',
      scope: 'openid email book:delete',
    });
    at.resourceServer = new provider.ResourceServer(CATALOG, {
      scope: 'openid email book:delete',
      audience: CATALOG,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: 'EdDSA' } },
    });
    return { token: await at.save(), grant };
  }

  async function userinfo(token: string): Promise<Response> {
    return fetch(`${node.issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
  }

  // OIDC Core §5.3 (userinfo), api.md §1 (org_id, roles, features), issue 4 (JWT access tokens).
  it('answers for the JWT access token of the code flow, with the claims its scopes allow', async () => {
    const { token } = await codeFlowToken();
    const config = await client.discovery(new URL(node.issuer), 'library-web', undefined, client.None(), {
      execute: [client.allowInsecureRequests],
    });
    expect(await client.fetchUserInfo(config, token, 'user.alice')).toEqual({
      sub: 'user.alice',
      email: 'alice@example.com',
      email_verified: false,
      org_id: 'library',
      roles: ['library:role.staff'],
      features: ['book:delete'],
    });
  });

  it('refuses it once its grant is revoked, and never takes its jti for a token', async () => {
    const { token, grant } = await codeFlowToken();
    expect((await userinfo(token)).status).toBe(200);
    const jti = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
    const byJti = await userinfo(jti);
    expect(byJti.status).toBe(401);
    await grant.destroy();
    const revoked = await userinfo(token);
    expect(revoked.status).toBe(401);
    expect(revoked.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  });

  it('refuses a JWT whose signature does not verify', async () => {
    const { token } = await codeFlowToken();
    const [header, payload] = token.split('.');
    const forged = `${header}.${payload}.${Buffer.alloc(64).toString('base64url')}`;
    expect((await userinfo(forged)).status).toBe(401);
  });
});
