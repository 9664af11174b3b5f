import * as client from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LOGIN_FAILED_MESSAGE } from '../../src/oidc/interaction-pages.js';
import { TEST_DATABASE_KINDS } from '../storage/test-databases.js';
import {
  authorizationRequest,
  BROWSER_TESTS,
  CATALOG,
  codeFlowConfig,
  discover,
  launchChromium,
  PASSWORDS,
  redeem,
  SECRETS,
  startCallback,
  type AuthorizationRequest,
  type Callback,
} from './code-flow-fixture.js';
import { startOidcNode, type OidcNode } from './oidc-fixture.js';

/**
 * The code flow in a real browser (Debian's chromium through playwright-core): the login and
 * consent pages as a user meets them, without JavaScript of ours, then openid-client redeeming
 * the code. One browser for the file; a fresh browser context (cookie jar) per test.
 */
const describeWithBrowser = BROWSER_TESTS ? describe : describe.skip;

let browser: Browser | undefined;
beforeAll(async () => {
  if (BROWSER_TESTS) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

describeWithBrowser.each(TEST_DATABASE_KINDS)('the code flow in a browser on $name', (kind) => {
  let node: OidcNode;
  let callback: Callback;
  let web: client.Configuration;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    callback = await startCallback();
    node = await startOidcNode(kind);
    await node.apply(codeFlowConfig(callback));
    web = await discover(node, 'library-web', SECRETS.web);
  });
  afterAll(async () => {
    await node?.close();
    await callback?.close();
  });
  beforeEach(async () => {
    context = await browser!.newContext({ javaScriptEnabled: false });
    page = await context.newPage();
    page.setDefaultTimeout(10_000);
  });
  afterEach(async () => {
    await context.close();
  });

  const onCallback = (): Promise<void> =>
    page.waitForURL((url) => url.origin === callback.origin, { waitUntil: 'domcontentloaded' });

  async function signIn(username: string, password: string): Promise<void> {
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForLoadState('domcontentloaded');
  }

  function verdictOf(scope: string): Promise<string | null> {
    return page.locator(`li[data-scope="${scope}"]`).textContent();
  }

  async function authorize(scope: string, config = web): Promise<AuthorizationRequest> {
    const request = await authorizationRequest(config, callback.uri, scope, { resource: CATALOG });
    await page.goto(request.url.href);
    return request;
  }

  // RFC 6749 §4.1 with RFC 7636; OIDC Core §3.1.2 (the user signs in and consents); api.md §1.
  it('signs in and consents through the pages; openid-client redeems the code and checks the ID token', async () => {
    const request = await authorize('openid email book:read book:delete');
    expect(new URL(page.url()).pathname).toMatch(/^\/oidc\/interaction\/[\w-]+$/);
    expect(await page.getAttribute('html', 'lang')).toBe('en');
    expect(await page.locator('#username:focus').count()).toBe(1);

    await signIn('alice', 'not-her-password');
    expect(await page.getByRole('alert').textContent()).toBe(LOGIN_FAILED_MESSAGE);
    expect(await page.getByLabel('Username').inputValue()).toBe('alice');

    await signIn('alice', PASSWORDS.alice);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Allow Library Web to act for you?');
    expect(await verdictOf('book:read')).toBe('book:read: will be granted');
    expect(await verdictOf('book:delete')).toBe('book:delete: will not be granted (you do not have this permission)');
    await page.getByRole('button', { name: 'Allow' }).click();
    await onCallback();

    const tokens = await redeem(web, new URL(page.url()), request);
    expect(tokens.claims()).toMatchObject({
      iss: node.issuer,
      aud: 'library-web',
      sub: 'user.alice',
      nonce: request.nonce,
    });
    expect(tokens.scope).toBe('openid email book:read');
    expect(tokens.scope_rejected).toBe('book:delete');
    expect(await client.fetchUserInfo(web, tokens.access_token, 'user.alice')).toMatchObject({
      sub: 'user.alice',
      email: 'alice@example.com',
      roles: ['library:role.readers', 'library:role.staff'],
    });
  });

  // api.md §1: "the user's choice is remembered as a grant that the user can revoke".
  it('remembers a grant, and asks again once the user revoked it on the grants page', async () => {
    await authorize('openid book:read');
    await signIn('bob', PASSWORDS.bob);
    await page.getByRole('button', { name: 'Allow' }).click();
    await onCallback();

    // Signed in and remembered: straight back to the client, no page in between.
    const second = await authorize('openid book:read');
    await onCallback();
    const tokens = await redeem(web, new URL(page.url()), second);
    expect(await client.tokenIntrospection(web, tokens.access_token)).toMatchObject({ active: true });

    await page.goto(`${node.issuer}/account/grants`);
    expect(await page.locator('li[data-client="library-web"]').textContent()).toContain('Library Web');
    await page.getByRole('button', { name: 'Revoke Library Web' }).click();
    await page.waitForLoadState('domcontentloaded');
    expect(await page.getByText('You have not allowed any application.').count()).toBe(1);
    // Revoking ends the grant's tokens at once.
    expect(await client.tokenIntrospection(web, tokens.access_token)).toEqual({ active: false });
    expect(await client.tokenIntrospection(web, tokens.refresh_token!)).toEqual({ active: false });

    await authorize('openid book:read');
    expect(new URL(page.url()).pathname).toMatch(/^\/oidc\/interaction\//);
    expect(await page.getByRole('button', { name: 'Allow' }).count()).toBe(1);
  });

  // docs/oidc.md "Consent": first-party clients do not ask.
  it('does not ask for consent for a first-party client', async () => {
    const portal = await discover(node, 'library-portal', SECRETS.portal);
    const request = await authorize('openid book:read book:update', portal);
    await signIn('bob', PASSWORDS.bob);
    await onCallback();
    const tokens = await redeem(portal, new URL(page.url()), request);
    expect(tokens.claims()).toMatchObject({ sub: 'user.bob', aud: 'library-portal' });
    expect(tokens.scope).toBe('openid book:read');
    expect(tokens.scope_rejected).toBe('book:update');
  });

  // OpenID Connect RP-Initiated Logout 1.0 §2–3.
  it('signs the user out at the end-session endpoint and back to the client', async () => {
    const portal = await discover(node, 'library-portal', SECRETS.portal);
    const request = await authorize('openid', portal);
    await signIn('alice', PASSWORDS.alice);
    await onCallback();
    const tokens = await redeem(portal, new URL(page.url()), request);

    const logout = client.buildEndSessionUrl(portal, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: `${callback.origin}/signed-out`,
      state: 'bye',
    });
    await page.goto(logout.href);
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await onCallback();
    const back = new URL(page.url());
    expect(back.pathname).toBe('/signed-out');
    expect(back.searchParams.get('state')).toBe('bye');
    // The session's tokens ended with it; the next authorization asks for a sign-in again.
    expect(await client.tokenIntrospection(portal, tokens.refresh_token!)).toEqual({ active: false });
    await authorize('openid', portal);
    expect(await page.getByRole('button', { name: 'Sign in' }).count()).toBe(1);
  });
});
