import { decodeJwt, decodeProtectedHeader } from 'jose';
import * as client from 'openid-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOGIN_FAILED_MESSAGE } from '../../src/oidc/interaction-pages.js';
import { TEST_DATABASE_KINDS } from '../storage/test-databases.js';
import {
  actionOf,
  answerConsent,
  authorizationRequest,
  CATALOG,
  codeFlowConfig,
  csrfOf,
  discover,
  FormAgent,
  PASSWORDS,
  redeem,
  SECRETS,
  signInWithForms,
  startCallback,
  type AuthorizationRequest,
  type Callback,
} from './code-flow-fixture.js';
import { startOidcNode, type OidcNode } from './oidc-fixture.js';

/**
 * The authorization code flow end to end over HTTP, with openid-client as the client and a
 * fetch-based form agent as the user (the browser tests are code-flow-browser.test.ts): the
 * protocol's statuses, headers and error paths, exactly.
 */
describe.each(TEST_DATABASE_KINDS)('the code flow on $name', (kind) => {
  let node: OidcNode;
  let callback: Callback;
  let web: client.Configuration;

  beforeEach(async () => {
    callback = await startCallback();
    node = await startOidcNode(kind);
    await node.apply(codeFlowConfig(callback));
    web = await discover(node, 'library-web', SECRETS.web);
  });
  afterEach(async () => {
    await node.close();
    await callback.close();
  });

  const SCOPE = 'openid profile email book:read book:delete unknown:x';

  /** Signs alice in to library-web and allows; returns the callback URL with the code. */
  async function codeForAlice(request: AuthorizationRequest, agent = new FormAgent()): Promise<URL> {
    const consent = await signInWithForms(agent, node, request.url, 'alice', PASSWORDS.alice);
    const end = await answerConsent(agent, node, consent, 'allow');
    expect(end.url.origin).toBe(callback.origin);
    return end.url;
  }

  function postToken(form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${node.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form),
    });
  }

  function basic(id: string, secret: string): Record<string, string> {
    return { authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` };
  }

  // OpenID Connect Discovery 1.0 §3; RFC 8414 §2; RFC 7636 §6.2 (S256 only).
  it('publishes the code flow in discovery', async () => {
    const metadata = web.serverMetadata();
    expect(metadata).toMatchObject({
      issuer: node.issuer,
      authorization_endpoint: `${node.issuer}/auth`,
      token_endpoint: `${node.issuer}/token`,
      userinfo_endpoint: `${node.issuer}/me`,
      end_session_endpoint: `${node.issuer}/session/end`,
      introspection_endpoint: `${node.issuer}/token/introspection`,
      revocation_endpoint: `${node.issuer}/token/revocation`,
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
    });
    expect(metadata.grant_types_supported).toEqual(
      expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials']),
    );
  });

  // api.md §1: client credentials with permission scopes decided by policy, some rejected.
  it('grants a service the allowed scopes by client credentials and lists the rest in scope_rejected', async () => {
    const indexer = await discover(node, 'library.indexer', SECRETS.indexer);
    const tokens = await client.clientCredentialsGrant(indexer, { resource: CATALOG, scope: 'book:read book:delete' });
    expect(tokens.scope).toBe('book:read');
    expect(tokens.scope_rejected).toBe('book:delete');
  });

  // RFC 6749 §4.1, RFC 7636 (S256), OIDC Core §3.1.3.7 (ID token), RFC 9068 (at+jwt), api.md §1.
  it('runs the code flow through the login and consent pages to tokens, userinfo and introspection', async () => {
    const request = await authorizationRequest(web, callback.uri, SCOPE, { resource: CATALOG });
    const tokens = await redeem(web, await codeForAlice(request), request);
    // openid-client checked the ID token (signature, iss, aud, nonce, exp) before returning.
    expect(tokens.claims()).toMatchObject({
      iss: node.issuer,
      aud: 'library-web',
      sub: 'user.alice',
      nonce: request.nonce,
      name: 'Alice Liddell',
      email: 'alice@example.com',
      org_id: 'library',
      roles: ['library:role.readers', 'library:role.staff'],
    });
    expect(tokens.scope).toBe('openid profile email book:read');
    expect(tokens.scope_rejected).toBe('book:delete unknown:x');
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ typ: 'at+jwt' });
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      iss: node.issuer,
      sub: 'user.alice',
      aud: CATALOG,
      client_id: 'library-web',
      scope: 'openid profile email book:read',
      domain: 'library',
      roles: ['library:role.readers', 'library:role.staff'],
      permissions: [{ book: { '*': ['read', 'update'] } }],
    });
    // OIDC Core §5.3: the code flow's access token works at userinfo.
    const info = await client.fetchUserInfo(web, tokens.access_token, 'user.alice');
    expect(info).toMatchObject({ sub: 'user.alice', email: 'alice@example.com', org_id: 'library' });
    // RFC 7662: active, then inactive once revoked (RFC 7009).
    expect(await client.tokenIntrospection(web, tokens.access_token)).toMatchObject({
      active: true,
      sub: 'user.alice',
      client_id: 'library-web',
      scope: 'openid profile email book:read',
    });
    await client.tokenRevocation(web, tokens.access_token);
    expect(await client.tokenIntrospection(web, tokens.access_token)).toEqual({ active: false });
    const after = await fetch(`${node.issuer}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(after.status).toBe(401);
  });

  // RFC 9700 §4.14.2: refresh tokens rotate; a rotated one used again revokes the whole family.
  it('rotates refresh tokens and revokes the family when a rotated one is used again', async () => {
    const request = await authorizationRequest(web, callback.uri, 'openid book:read', { resource: CATALOG });
    const first = await redeem(web, await codeForAlice(request), request);
    const second = await client.refreshTokenGrant(web, first.refresh_token!);
    expect(second.refresh_token).toEqual(expect.any(String));
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.scope).toBe('openid book:read');
    expect(await client.tokenIntrospection(web, second.refresh_token!)).toMatchObject({ active: true });
    expect(await client.tokenIntrospection(web, second.access_token)).toMatchObject({ active: true });

    const reuse = await postToken(
      { grant_type: 'refresh_token', refresh_token: first.refresh_token! },
      basic('library-web', SECRETS.web),
    );
    expect(reuse.status).toBe(400);
    expect(await reuse.json()).toMatchObject({ error: 'invalid_grant' });
    // The whole family: the new refresh token and every access token of the grant.
    for (const token of [second.refresh_token!, second.access_token, first.access_token]) {
      expect(await client.tokenIntrospection(web, token)).toEqual({ active: false });
    }
    const again = await postToken(
      { grant_type: 'refresh_token', refresh_token: second.refresh_token! },
      basic('library-web', SECRETS.web),
    );
    expect(await again.json()).toMatchObject({ error: 'invalid_grant' });
  });

  // RFC 6749 §4.1.2: a code is single use; a second use is invalid_grant and revokes its tokens.
  it('refuses a reused code with invalid_grant and revokes what the code gave', async () => {
    const request = await authorizationRequest(web, callback.uri, 'openid book:read', { resource: CATALOG });
    const callbackUrl = await codeForAlice(request);
    const code = callbackUrl.searchParams.get('code')!;
    const tokens = await redeem(web, callbackUrl, request);
    const form = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: callback.uri,
      code_verifier: request.verifier,
    };
    const reuse = await postToken(form, basic('library-web', SECRETS.web));
    expect(reuse.status).toBe(400);
    expect(await reuse.json()).toMatchObject({ error: 'invalid_grant' });
    expect(await client.tokenIntrospection(web, tokens.access_token)).toEqual({ active: false });
    expect(await client.tokenIntrospection(web, tokens.refresh_token!)).toEqual({ active: false });
  });

  // RFC 6749 §5.2, RFC 7636 §4.6: the code is not spent by a failed exchange.
  it('refuses a wrong secret with 401 invalid_client and a wrong verifier with invalid_grant', async () => {
    const request = await authorizationRequest(web, callback.uri, 'openid', { resource: CATALOG });
    const code = (await codeForAlice(request)).searchParams.get('code')!;
    const form = { grant_type: 'authorization_code', code, redirect_uri: callback.uri };
    const wrongSecret = await postToken(
      { ...form, code_verifier: request.verifier },
      basic('library-web', 'not-the-secret-0123456789'),
    );
    expect(wrongSecret.status).toBe(401);
    expect(await wrongSecret.json()).toMatchObject({ error: 'invalid_client' });

    const wrongVerifier = await postToken(
      { ...form, code_verifier: client.randomPKCECodeVerifier() },
      basic('library-web', SECRETS.web),
    );
    expect(wrongVerifier.status).toBe(400);
    expect(await wrongVerifier.json()).toMatchObject({ error: 'invalid_grant' });
  });

  // RFC 7636 §4.4.1 and RFC 9700 §2.1.1: public clients must use PKCE, with S256.
  it('refuses a public client without PKCE, or with the plain method, at the authorization endpoint', async () => {
    const app = await discover(node, 'library-app');
    const base = { redirect_uri: callback.uri, scope: 'openid', state: 'st' };
    const cases: Record<string, string>[] = [{}, { code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' }];
    for (const extra of cases) {
      const response = await fetch(client.buildAuthorizationUrl(app, { ...base, ...extra }), { redirect: 'manual' });
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get('location')!);
      expect(location.origin + location.pathname).toBe(callback.uri);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('state')).toBe('st');
    }
  });

  // RFC 7636 with a public client (a native app, RFC 8252 §7.3: any loopback port).
  it('lets a public client redeem its code with PKCE and no secret', async () => {
    const app = await discover(node, 'library-app');
    const request = await authorizationRequest(app, callback.uri, 'openid book:read', { resource: CATALOG });
    const agent = new FormAgent();
    const consent = await signInWithForms(agent, node, request.url, 'bob', PASSWORDS.bob);
    const end = await answerConsent(agent, node, consent, 'allow');
    const tokens = await redeem(app, end.url, request);
    expect(tokens.claims()).toMatchObject({ sub: 'user.bob', aud: 'library-app' });
    expect(tokens.scope).toBe('openid book:read');
  });

  // api.md §1: PKCE accepted for all clients, required only for public ones.
  it('lets a confidential client use the code flow without PKCE', async () => {
    const url = client.buildAuthorizationUrl(web, {
      redirect_uri: callback.uri,
      scope: 'openid',
      state: 'st',
      nonce: 'n-0123456789',
    });
    const code = (await codeForAlice({ url, verifier: '', state: 'st', nonce: 'n-0123456789' })).searchParams.get(
      'code',
    )!;
    const response = await postToken(
      { grant_type: 'authorization_code', code, redirect_uri: callback.uri },
      basic('library-web', SECRETS.web),
    );
    expect(response.status).toBe(200);
  });

  // RFC 6749 §4.1.2.1, RFC 9700 §4.1: never redirect to a URI the client did not register.
  it('shows an error page, never a redirect, for an unregistered redirect URI', async () => {
    for (const redirectUri of ['http://127.0.0.1:9/evil', `${callback.uri}/other`, 'https://attacker.example/cb']) {
      const url = client.buildAuthorizationUrl(web, { redirect_uri: redirectUri, scope: 'openid', state: 'st' });
      const response = await fetch(url, { redirect: 'manual' });
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(await response.text()).toContain('redirect_uri did not match any of the client');
    }
  });

  // api.md §1: failures never say whether the user exists.
  it('answers a wrong password and an unknown user with the same generic message', async () => {
    const request = await authorizationRequest(web, callback.uri, 'openid', { resource: CATALOG });
    const agent = new FormAgent();
    const login = await agent.follow(request.url, node.base);
    const html = await login.response.text();
    const action = new URL(actionOf(html), node.base);
    const answers: [number, string][] = [];
    for (const [username, password] of [
      ['alice', 'wrong-password-1'],
      ['nobody', 'wrong-password-1'],
      ['', ''],
    ]) {
      const response = await agent.post(action, { csrf: csrfOf(html), username: username!, password: password! });
      const page = await response.text();
      answers.push([response.status, /<p role="alert" id="login-error">([^<]*)<\/p>/.exec(page)?.[1] ?? '']);
      expect(page).toContain('name="password"');
    }
    expect(answers).toEqual([
      [400, LOGIN_FAILED_MESSAGE],
      [400, LOGIN_FAILED_MESSAGE],
      [400, LOGIN_FAILED_MESSAGE],
    ]);
  });

  // docs/oidc.md "Rate limits": per account, then per address; unknown names alike.
  it('throttles failed sign-ins per account and per address with 429 and Retry-After', async () => {
    const request = await authorizationRequest(web, callback.uri, 'openid', { resource: CATALOG });
    const agent = new FormAgent();
    const login = await agent.follow(request.url, node.base);
    const html = await login.response.text();
    const action = new URL(actionOf(html), node.base);
    const attempt = (username: string, password: string) =>
      agent.post(action, { csrf: csrfOf(html), username, password });

    for (const username of ['alice', 'nobody']) {
      for (let i = 0; i < 5; i++) expect((await attempt(username, 'wrong-password-1')).status).toBe(400);
      // Throttled even with the right password: the password is not checked at all.
      const throttled = await attempt(username, username === 'alice' ? PASSWORDS.alice : 'x');
      expect(throttled.status).toBe(429);
      expect(throttled.headers.get('retry-after')).toBe('1');
      expect(await throttled.text()).toContain('Too many failed sign-in attempts. Wait 1 second, then try again.');
    }
    // Another account is not throttled by these…
    expect((await attempt('bob', 'wrong-password-1')).status).toBe(400);
    // …until the address has failed 20 times in all (11 so far).
    for (let i = 0; i < 9; i++) expect((await attempt(`user${i}`, 'wrong-password-1')).status).toBe(400);
    const byAddress = await attempt('carol', 'wrong-password-1');
    expect(byAddress.status).toBe(429);
    expect(Number(byAddress.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  // docs/oidc.md "CSRF": every form post carries its token.
  it('refuses form posts without the right CSRF token', async () => {
    const agent = new FormAgent();
    const first = await agent.follow((await authorizationRequest(web, callback.uri, 'openid')).url, node.base);
    const firstHtml = await first.response.text();
    const other = await agent.follow((await authorizationRequest(web, callback.uri, 'openid')).url, node.base);
    const otherHtml = await other.response.text();
    const action = new URL(actionOf(firstHtml), node.base);
    const credentials = { username: 'alice', password: PASSWORDS.alice };
    for (const csrf of [undefined, 'x'.repeat(43), csrfOf(otherHtml)]) {
      const response = await agent.post(action, { ...credentials, ...(csrf !== undefined ? { csrf } : {}) });
      expect(response.status).toBe(403);
      expect(await response.text()).toContain('Form refused');
    }
    const consentAction = action.href.replace(/\/login$/, '/consent');
    expect((await agent.post(consentAction, { decision: 'allow' })).status).toBe(403);
    expect((await agent.post(`${node.issuer}/account/grants/revoke`, { client_id: 'library-web' })).status).toBe(403);
    // With its own token, the same post signs in.
    expect((await agent.post(action, { ...credentials, csrf: csrfOf(firstHtml) })).status).toBe(303);
  });

  // docs/oidc.md "Cookies and headers".
  it('sends the pages with security headers and the interaction cookies HttpOnly and SameSite=Lax', async () => {
    const request = await authorizationRequest(web, callback.uri, 'openid', { resource: CATALOG, login_hint: 'alice' });
    const agent = new FormAgent();
    const auth = await agent.get(request.url);
    expect(auth.status).toBe(303);
    const cookies = auth.headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) {
      expect(cookie).toMatch(/; httponly/i);
      expect(cookie).toMatch(/; samesite=lax/i);
      expect(cookie).not.toMatch(/; secure/i);
    }
    const page = await agent.get(new URL(auth.headers.get('location')!, node.base));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; /);
    expect(csp).toContain(`form-action 'self' ${callback.origin};`);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    expect(html).toContain('<html lang="en">');
    expect(html).toContain('<label for="username">');
    // OIDC Core §3.1.2.1: login_hint prefills the username.
    expect(html).toMatch(/<input id="username" name="username"[^>]* autofocus value="alice"/);
    expect(html).toContain('<button type="submit">Sign in</button>');
  });

  // docs/oidc.md "Consent": remembered per account and client, in any session; asked again for
  // what is new, including a scope policy denied before and allows now.
  it('remembers consent across sessions and asks again for scopes policy now allows', async () => {
    const scope = 'openid book:read book:update';
    const first = await authorizationRequest(web, callback.uri, scope, { resource: CATALOG });
    const agent = new FormAgent();
    const consent = await signInWithForms(agent, node, first.url, 'bob', PASSWORDS.bob);
    const consentHtml = await consent.response.clone().text();
    expect(consentHtml).toContain('<code>book:update</code>: <span class="denied">will not be granted</span>');
    const one = await redeem(web, (await answerConsent(agent, node, consent, 'allow')).url, first);
    expect([one.scope, one.scope_rejected]).toEqual(['openid book:read', 'book:update']);

    // Another browser, the same user: signed in, straight back to the client.
    const second = await authorizationRequest(web, callback.uri, 'openid book:read', { resource: CATALOG });
    const other = new FormAgent();
    const back = await signInWithForms(other, node, second.url, 'bob', PASSWORDS.bob);
    expect(back.url.origin).toBe(callback.origin);
    const two = await redeem(web, back.url, second);
    // Only what this request asked for is reported.
    expect([two.scope, two.scope_rejected]).toEqual(['openid book:read', undefined]);

    // Bob becomes staff: book:update is allowed now, but he never agreed to it.
    await node.apply(codeFlowConfig(callback).replace('members: [user.alice] }', 'members: [user.alice, user.bob] }'));
    const third = await authorizationRequest(web, callback.uri, scope, { resource: CATALOG });
    const asked = await other.follow(third.url, node.base);
    expect(asked.url.pathname).toMatch(/^\/oidc\/interaction\//);
    expect(await asked.response.clone().text()).toContain(
      '<code>book:update</code>: <span class="granted">will be granted</span>',
    );
    const three = await redeem(web, (await answerConsent(other, node, asked, 'allow')).url, third);
    expect([three.scope, three.scope_rejected]).toEqual(['openid book:read book:update', undefined]);
  });

  // A deny from the user reaches the client as access_denied (RFC 6749 §4.1.2.1).
  it('returns access_denied to the client when the user denies', async () => {
    const request = await authorizationRequest(web, callback.uri, 'openid', { resource: CATALOG });
    const agent = new FormAgent();
    const consent = await signInWithForms(agent, node, request.url, 'alice', PASSWORDS.alice);
    const end = await answerConsent(agent, node, consent, 'deny');
    expect(end.url.origin + end.url.pathname).toBe(callback.uri);
    expect(end.url.searchParams.get('error')).toBe('access_denied');
    expect(end.url.searchParams.get('state')).toBe(request.state);
    await expect(redeem(web, end.url, request)).rejects.toMatchObject({ error: 'access_denied' });
  });
});

describe.each(TEST_DATABASE_KINDS)('the pages behind a TLS-terminating proxy on $name', (kind) => {
  let node: OidcNode;
  let callback: Callback;
  beforeEach(async () => {
    callback = await startCallback();
    node = await startOidcNode(kind, { trustProxy: true });
    await node.apply(codeFlowConfig(callback));
  });
  afterEach(async () => {
    await node.close();
    await callback.close();
  });

  // RFC 6265 §4.1.2.5: cookies are Secure when the browser talks https (X-Forwarded-Proto).
  it('marks the cookies Secure', async () => {
    const web = await discover(node, 'library-web', SECRETS.web);
    const request = await authorizationRequest(web, callback.uri, 'openid', { resource: CATALOG });
    const auth = await fetch(request.url, { redirect: 'manual', headers: { 'x-forwarded-proto': 'https' } });
    expect(auth.status).toBe(303);
    const cookies = auth.headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie).toMatch(/; secure/i);
  });
});

describe.each(TEST_DATABASE_KINDS)('the pages of an https public URL on $name', (kind) => {
  let node: OidcNode;
  let callback: Callback;
  beforeEach(async () => {
    callback = await startCallback();
    // Behind a proxy that is not trusted: the node sees http, the browser uses https.
    node = await startOidcNode(kind, { publicUrl: 'https://auth.example.test' });
    await node.apply(codeFlowConfig(callback));
  });
  afterEach(async () => {
    await node.close();
    await callback.close();
  });

  // RFC 6265 §4.1.2.5: the browser talks https to the public URL, so cookies are Secure.
  it('marks the cookies Secure', async () => {
    const agent = new FormAgent();
    const url = new URL(`${node.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: 'library-web',
      response_type: 'code',
      redirect_uri: callback.uri,
      scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    }).toString();
    const auth = await agent.get(url);
    expect(auth.status).toBe(303);
    const cookies = auth.headers.getSetCookie();
    expect(cookies.map((c) => c.split('=')[0])).toEqual(
      expect.arrayContaining(['_interaction', '_interaction.sig', '_interaction_resume', '_interaction_resume.sig']),
    );
    for (const cookie of cookies) expect(cookie).toMatch(/; secure/i);
  });
});
