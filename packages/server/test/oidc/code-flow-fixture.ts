import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { chromium, type Browser } from 'playwright-core';
import { expect } from 'vitest';
import type { OidcNode } from './oidc-fixture.js';

/** The API of the code-flow tests, and the domain's users' passwords. */
export const CATALOG = 'https://catalog.library.example';
export const PASSWORDS = { alice: 'alice-password-1', bob: 'bob-password-12' } as const;
export const SECRETS = {
  web: 'library-web-secret-0123456789',
  portal: 'library-portal-secret-012345',
  indexer: 'library-indexer-secret-01234',
} as const;

/**
 * A loopback HTTP server standing in for the clients' redirect URIs (RFC 8252 §7.3): it answers
 * every request with a small page and remembers the URLs it saw.
 */
export interface Callback {
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string;
  /** `{origin}/callback`. */
  readonly uri: string;
  readonly seen: URL[];
  close(): Promise<void>;
}

export async function startCallback(): Promise<Callback> {
  const seen: URL[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(new URL(req.url ?? '/', origin));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!DOCTYPE html><html lang="en"><title>Back at the client</title><h1>Back at the client</h1></html>');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    uri: `${origin}/callback`,
    seen,
    async close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

/**
 * Domain `library`: alice (staff, readers) may read and update books, bob (readers) may read
 * them, and so may the service `library.indexer`; nobody may delete them. The API `catalog`
 * declares book scopes and a role scope. Clients:
 * `library-web` (confidential, third party), `library-app` (public, a native app on loopback),
 * `library-portal` (confidential, first party).
 */
export function codeFlowConfig(callback: Callback): string {
  return `
users:
  - { name: alice, password: "${PASSWORDS.alice}", email: Alice@Example.com, displayName: Alice Liddell }
  - { name: bob, password: "${PASSWORDS.bob}" }
domains:
  - name: library
    roles:
      - { name: readers, members: [user.alice, user.bob, library.indexer] }
      - { name: staff, members: [user.alice] }
    policies:
      - name: books
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
          - { effect: allow, action: update, resource: "library:book/*", role: staff }
    services:
      - { name: indexer, secret: "${SECRETS.indexer}" }
    apis:
      - name: catalog
        audience: ${CATALOG}
        scopes: ["book:read", "book:update", "book:delete", "library:role.staff"]
        permissionsClaim: true
    clients:
      - clientId: library-web
        name: Library Web
        type: confidential
        secret: "${SECRETS.web}"
        redirectUris: ["${callback.uri}"]
        postLogoutRedirectUris: ["${callback.origin}/signed-out"]
        grantTypes: [authorization_code, refresh_token]
      - clientId: library-app
        type: public
        redirectUris: ["http://127.0.0.1/callback"]
        grantTypes: [authorization_code, refresh_token]
      - clientId: library-portal
        name: Library Portal
        type: confidential
        secret: "${SECRETS.portal}"
        firstParty: true
        redirectUris: ["${callback.uri}"]
        postLogoutRedirectUris: ["${callback.origin}/signed-out"]
        grantTypes: [authorization_code, refresh_token]
`;
}

/** openid-client's view of `node` for a client (a secret, or none for a public client). */
export function discover(node: OidcNode, clientId: string, secret?: string): Promise<client.Configuration> {
  return client.discovery(
    new URL(node.issuer),
    clientId,
    undefined,
    secret === undefined ? client.None() : client.ClientSecretBasic(secret),
    { execute: [client.allowInsecureRequests] },
  );
}

/** An authorization request with PKCE (S256), state and nonce, as openid-client builds it. */
export interface AuthorizationRequest {
  readonly url: URL;
  readonly verifier: string;
  readonly state: string;
  readonly nonce: string;
}

export async function authorizationRequest(
  config: client.Configuration,
  redirectUri: string,
  scope: string,
  extra: Record<string, string> = {},
): Promise<AuthorizationRequest> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}

/** Redeems the code in `callbackUrl` with openid-client: it checks state, nonce, iss, aud, the ID token's signature. */
export function redeem(
  config: client.Configuration,
  callbackUrl: URL,
  request: AuthorizationRequest,
): Promise<client.TokenEndpointResponse & client.TokenEndpointResponseHelpers> {
  return client.authorizationCodeGrant(config, callbackUrl, {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
}

/**
 * A tiny browser for protocol tests that need exact statuses and headers: fetch without following
 * redirects, with a cookie jar (RFC 6265 §5.4, enough of it: name, path, expiry by Max-Age or
 * Expires in the past).
 */
export class FormAgent {
  readonly #cookies = new Map<string, { name: string; value: string; path: string }>();

  async get(url: string | URL, headers: Record<string, string> = {}): Promise<Response> {
    return this.#send(url, { method: 'GET', headers });
  }

  async post(url: string | URL, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    return this.#send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });
  }

  /** Follows redirects (GET) from `url` until one leaves `origin` or a page answers; returns the last response and its URL. */
  async follow(url: string | URL, origin: string, first?: Response): Promise<{ response: Response; url: URL }> {
    let current = new URL(url);
    let response = first ?? (await this.get(current));
    for (let hops = 0; hops < 10 && response.status >= 300 && response.status < 400; hops++) {
      const next = new URL(response.headers.get('location')!, current);
      await response.body?.cancel();
      current = next;
      if (next.origin !== origin) return { response, url: next };
      response = await this.get(next);
    }
    return { response, url: current };
  }

  async #send(url: string | URL, init: RequestInit & { headers: Record<string, string> }): Promise<Response> {
    const target = new URL(url);
    const cookie = [...this.#cookies.values()]
      .filter(
        (c) => target.pathname === c.path || target.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
      )
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    const response = await fetch(target, {
      ...init,
      redirect: 'manual',
      headers: { ...init.headers, ...(cookie !== '' ? { cookie } : {}) },
    });
    for (const header of response.headers.getSetCookie()) this.#store(header);
    return response;
  }

  #store(header: string): void {
    const [pair, ...attributes] = header.split(';').map((p) => p.trim());
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq);
    const value = pair!.slice(eq + 1);
    let path = '/';
    let expired = false;
    for (const a of attributes) {
      const [k, v = ''] = a.split('=');
      const key = k!.toLowerCase();
      if (key === 'path') path = v;
      if (key === 'max-age' && Number(v) <= 0) expired = true;
      if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
    }
    const id = `${name} ${path}`;
    if (expired) this.#cookies.delete(id);
    else this.#cookies.set(id, { name, value, path });
  }
}

/** The value of the hidden `csrf` field of a page. */
export function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  expect(match, 'the page has a csrf field').not.toBeNull();
  return match![1]!;
}

/** The action of the page's first form. */
export function actionOf(html: string): string {
  const match = /<form method="post" action="([^"]+)"/.exec(html);
  expect(match, 'the page has a form').not.toBeNull();
  return match![1]!.replace(/&amp;/g, '&');
}

/**
 * Signs in through the login page with `agent` (fetch, no browser), from the authorization URL to
 * the page that follows the login (consent) or to the client's redirect; returns where it ended.
 */
export async function signInWithForms(
  agent: FormAgent,
  node: OidcNode,
  authorizationUrl: URL,
  username: string,
  password: string,
): Promise<{ response: Response; url: URL }> {
  const login = await agent.follow(authorizationUrl, node.base);
  expect(login.url.pathname).toMatch(/^\/oidc\/interaction\/[\w-]+$/);
  const html = await login.response.text();
  expect(html).toContain('Sign in');
  const posted = await agent.post(new URL(actionOf(html), node.base), { csrf: csrfOf(html), username, password });
  expect(posted.status).toBe(303);
  return agent.follow(new URL(posted.headers.get('location')!, node.base), node.base, undefined);
}

/** Allows (or denies) on the consent page `page` reached at `url`; returns where the browser ends. */
export async function answerConsent(
  agent: FormAgent,
  node: OidcNode,
  page: { response: Response; url: URL },
  decision: 'allow' | 'deny',
): Promise<{ response: Response; url: URL }> {
  expect(page.url.pathname).toMatch(/^\/oidc\/interaction\/[\w-]+$/);
  const html = await page.response.text();
  expect(html).toContain('Allow');
  const posted = await agent.post(new URL(actionOf(html), node.base), { csrf: csrfOf(html), decision });
  expect(posted.status).toBe(303);
  return agent.follow(new URL(posted.headers.get('location')!, node.base), node.base);
}

/** Debian's chromium, driven by playwright-core (never a downloaded browser). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Whether the browser tests run: always in CI (a missing chromium then fails them), elsewhere
 * only when chromium is installed — with a visible notice when it is not (style.md: nothing is
 * skipped silently).
 */
export const BROWSER_TESTS = existsSync(CHROMIUM) || process.env.CI === 'true' || process.env.CI === '1';
if (!BROWSER_TESTS) {
  console.warn(
    `${CHROMIUM} is missing: the browser tests of the code flow are skipped (apt-get install -y --no-install-recommends chromium)`,
  );
}

/** Launches chromium headless; throws (and fails the test) when it cannot. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
