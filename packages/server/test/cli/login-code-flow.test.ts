import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CredentialsFile } from '../../src/cli/credentials-store.js';
import { tokenForServer } from '../../src/cli/login-command.js';
import { capture, configEnv, runCli, startLoginNode, type LoginNode } from './login-fixture.js';

/**
 * The browser login against a real node. The login and consent pages do not exist yet, so the
 * "browser" here completes the interaction the way those pages will: it stores the interaction's
 * result (login as user.alice, and a grant of what the CLI asked for) with oidc-provider's own
 * models, then follows `/oidc/auth/{uid}` with the interaction's cookies, exactly as a browser
 * is sent back there after the pages. Everything else — discovery, the authorization request,
 * the redirect to the loopback listener, the code exchange, the refresh, the revocation — is
 * the real thing.
 */

interface InteractionModel {
  result?: unknown;
  exp: number;
  save(ttl: number): Promise<string>;
}
interface GrantModel {
  addOIDCScope(scope: string): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}
interface ProviderModels {
  Interaction: { find(uid: string): Promise<InteractionModel | undefined> };
  Grant: new (init: { accountId: string; clientId: string }) => GrantModel;
}

let node: LoginNode;
let base: string;

beforeAll(async () => {
  for (const name of ['GATEHOUSE_SERVER', 'GATEHOUSE_TOKEN', 'GATEHOUSE_CLIENT_SECRET']) delete process.env[name];
  node = await startLoginNode();
  base = node.base;
});
afterAll(async () => {
  await node.close();
});

function cookiesOf(res: Response): string {
  return res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0]!)
    .join('; ');
}

/**
 * What the login and consent pages will do for `account`, done directly; returns the URL the
 * server then redirects the browser to (the CLI's loopback redirect URI with code, state, iss).
 */
async function signInAs(authorizationUrl: string, account: string): Promise<string> {
  const start = await fetch(authorizationUrl, { redirect: 'manual' });
  expect(start.status).toBe(303);
  const uid = /\/interaction\/([^/?#]+)/.exec(start.headers.get('location') ?? '')?.[1];
  expect(uid).toBeDefined();
  const params = new URL(authorizationUrl).searchParams;
  const { provider } = await node.gh.oidc.current();
  const models = provider as unknown as ProviderModels;
  const interaction = (await models.Interaction.find(uid!))!;
  const grant = new models.Grant({ accountId: account, clientId: params.get('client_id')! });
  grant.addOIDCScope(params.get('scope')!);
  // docs/oidc.md "Resources and scopes": the resource gets the OpenID scopes too.
  grant.addResourceScope(params.get('resource')!, 'openid');
  const grantId = await grant.save();
  interaction.result = { login: { accountId: account }, consent: { grantId } };
  await interaction.save(interaction.exp - Math.floor(Date.now() / 1000));
  const resumed = await fetch(`${base}/oidc/auth/${uid}`, {
    headers: { cookie: cookiesOf(start) },
    redirect: 'manual',
  });
  expect(resumed.status).toBe(303);
  const location = resumed.headers.get('location')!;
  // RFC 9207: the server names itself in the answer (and says so in its metadata).
  expect(new URL(location).searchParams.get('iss')).toBe(`${base}/oidc`);
  return location;
}

/** A browser that signs in as `account` and follows the redirect to the CLI; keeps the page it got. */
function browserSigningInAs(account: string, pages: { status: number; text: string }[]) {
  return async (url: string): Promise<void> => {
    const callback = await signInAs(url, account);
    expect(callback.startsWith(new URL(url).searchParams.get('redirect_uri')!)).toBe(true);
    void fetch(callback).then(async (res) => pages.push({ status: res.status, text: await res.text() }));
  };
}

function credentials(env: { GATEHOUSE_CONFIG_DIR: string }): CredentialsFile {
  return JSON.parse(readFileSync(join(env.GATEHOUSE_CONFIG_DIR, 'credentials.json'), 'utf8')) as CredentialsFile;
}

async function refreshWorks(refreshToken: string): Promise<boolean> {
  const res = await fetch(`${base}/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'sys.cli' }),
  });
  return res.status === 200;
}

// issue 4: "`gatehouse login` (authorization code + PKCE with a loopback redirect, like cloud
// CLIs) … store a token for later commands; management and decision calls accept these bearer tokens."
describe('gatehouse login in the browser, against a real node', () => {
  it('stores a user token with a refresh token; apply uses it, renews it when it expires, logout revokes it', async () => {
    const env = configEnv(node.dir, 'code-flow');
    const pages: { status: number; text: string }[] = [];
    const r = await runCli(['login', '--server', base], {
      env,
      openBrowser: browserSigningInAs('user.alice', pages),
    });
    expect(r.stderr.join('\n')).not.toMatch(/failed|refused/);
    expect(r.exitCode).toBe(0);
    expect(r.stderr[0]).toMatch(/^Opening the browser; if it does not open, visit this URL to sign in to /);
    expect(r.stdout).toEqual([
      expect.stringMatching(
        new RegExp(
          `^Logged in to ${base} as user\\.alice: a token for the management API, valid until .*\\(renewed automatically\\)`,
        ),
      ),
    ]);
    for (let i = 0; i < 100 && pages.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(pages).toEqual([{ status: 200, text: expect.stringContaining('You can close this window') }]);
    const first = credentials(env).servers[base]!;
    expect(first).toMatchObject({
      grantType: 'authorization_code',
      clientId: 'sys.cli',
      api: 'management',
      audience: `${base}/v1`,
      refreshToken: expect.any(String),
      scope: 'openid',
    });
    expect(decodeJwt(first.accessToken)).toMatchObject({
      sub: 'user.alice',
      aud: `${base}/v1`,
      client_id: 'sys.cli',
      iss: `${base}/oidc`,
    });

    // The management API takes it: apply as user.alice (an admin of library).
    const file = join(node.dir, 'alice.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      file,
      'domains:\n  - name: library\n    admins: [library.deployer, user.alice]\n' +
        '    roles:\n      - { name: staff, members: [user.alice] }\n    services:\n      - { name: deployer }\n',
    );
    const applied = await runCli(['apply', '-f', file, '--server', base], { env });
    expect(applied.exitCode).toBe(0);
    expect(applied.stdout.at(-1)).toBe('Applied: 1 created, 0 changed, 0 deleted.');

    // whoami
    const who = await runCli(['whoami'], { env });
    expect(who.stdout[0]).toContain('subject:  user.alice');
    expect(who.stdout[0]).toContain('client:   sys.cli');
    expect(who.stdout[0]).toContain('refresh:  a refresh token is stored');

    // Expired (as far as the CLI's clock is concerned): renewed with the refresh token, which
    // rotates. Two commands renewing at once present it once (the lock): presenting a rotated
    // refresh token again would end the login.
    const later = new Date(Date.parse(first.expiresAt) + 1000);
    const output = capture();
    const [renewed, concurrent] = await Promise.all([
      tokenForServer(base, undefined, output, { env, clock: () => later }),
      tokenForServer(base, undefined, capture(), { env, clock: () => later }),
    ]);
    expect(output.stderr).toEqual([`Renewing the token stored for ${base}…`]);
    expect(concurrent).toEqual(renewed);
    const second = credentials(env).servers[base]!;
    expect(renewed).toEqual({ token: second.accessToken, stored: true });
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(Date.parse(second.expiresAt)).toBeGreaterThan(later.getTime());
    expect(decodeJwt(second.accessToken).sub).toBe('user.alice');
    // Not expired any more: used as it is.
    expect(await tokenForServer(base, undefined, capture(), { env, clock: () => later })).toEqual(renewed);
    const exported = await runCli(['export', 'library', '--server', base], { env });
    expect(exported.exitCode).toBe(0);
    expect(exported.stdout[0]).toContain('- name: staff');
    // The login is alive: it renews again (later still), and the refresh token rotates again.
    const muchLater = new Date(Date.parse(second.expiresAt) + 1000);
    const third = await tokenForServer(base, undefined, capture(), { env, clock: () => muchLater });
    expect(third.token).not.toBe(second.accessToken);
    const current = credentials(env).servers[base]!;
    expect(current.refreshToken).not.toBe(second.refreshToken);

    // logout revokes the refresh token (and with it the login's grant) and forgets everything.
    const out = await runCli(['logout', '--server', base], { env });
    expect(out).toEqual({ stdout: [`Logged out of ${base}.`], stderr: [], exitCode: 0 });
    expect(await refreshWorks(current.refreshToken!)).toBe(false);
  });

  it('says the login has ended when the refresh token is refused, and forgets it', async () => {
    const env = configEnv(node.dir, 'code-flow-ended');
    const r = await runCli(['login', '--server', base], { env, openBrowser: browserSigningInAs('user.alice', []) });
    expect(r.exitCode).toBe(0);
    const entry = credentials(env).servers[base]!;
    // Someone presents the refresh token first (it rotates): the stored one is now a rotated one,
    // and presenting it again revokes the whole grant (reuse detection).
    expect(await refreshWorks(entry.refreshToken!)).toBe(true);
    const later = new Date(Date.parse(entry.expiresAt) + 1000);
    const failed = await runCli(['export', 'library', '--server', base], { env, clock: () => later });
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr.at(-1)).toMatch(
      new RegExp(`^the login to ${base} has ended \\(invalid_grant.*\\): run gatehouse login --server ${base}$`),
    );
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(env.GATEHOUSE_CONFIG_DIR, 'credentials.json'))).toBe(false);
  });

  it('checks what the server asks of the CLI’s client: the loopback redirect on any port is accepted', async () => {
    // An authorization request for sys.cli with a loopback redirect on an arbitrary port is
    // accepted (303 to the interaction), whereas another path is not.
    const url = (redirect: string): string =>
      `${base}/oidc/auth?${new URLSearchParams({
        response_type: 'code',
        client_id: 'sys.cli',
        redirect_uri: redirect,
        scope: 'openid offline_access',
        resource: `${base}/v1`,
        state: 's',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }).toString()}`;
    expect((await fetch(url('http://127.0.0.1:54321/callback'), { redirect: 'manual' })).status).toBe(303);
    expect((await fetch(url('http://[::1]:4242/callback'), { redirect: 'manual' })).status).toBe(303);
    expect((await fetch(url('http://127.0.0.1:54321/elsewhere'), { redirect: 'manual' })).status).toBe(400);
  });
});
