import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CredentialsStore } from '../../src/cli/credentials-store.js';
import { browserLogin, canOpenBrowser, checkAuthorizationResponse, runLogin } from '../../src/cli/login-command.js';
import { listenForRedirect, RedirectError, RedirectTimeoutError } from '../../src/cli/loopback-redirect.js';
import { pkceChallenge, type ServerMetadata } from '../../src/cli/oauth-client.js';
import { capture } from './login-fixture.js';

/**
 * A fake authorization server: discovery and a token endpoint that checks the code exchange
 * (grant type, client, redirect URI, resource, and the PKCE verifier against the challenge the
 * "browser" saw). The authorization endpoint is never called: the tests play the browser.
 */
let fake: Server;
let fakeBase: string;
let tokenRequests: URLSearchParams[];
let expectedChallenge: string | undefined;
let tokenAnswer: { status: number; body: Record<string, unknown> };
let dir: string;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-loopback-'));
  fake = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', fakeBase);
      if (url.pathname === '/oidc/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(metadata()));
        return;
      }
      if (url.pathname === '/oidc/token' && req.method === 'POST') {
        const form = new URLSearchParams(await readBody(req));
        tokenRequests.push(form);
        const ok =
          form.get('grant_type') === 'authorization_code' &&
          form.get('client_id') === 'sys.cli' &&
          form.get('code') === 'the-code' &&
          /^http:\/\/127\.0\.0\.1:\d+\/callback$/.test(form.get('redirect_uri') ?? '') &&
          form.get('resource') === `${fakeBase}/v1` &&
          pkceChallenge(form.get('code_verifier') ?? '') === expectedChallenge;
        const answer = ok ? tokenAnswer : { status: 400, body: { error: 'invalid_grant', error_description: 'bad' } };
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer.body));
        return;
      }
      res.writeHead(404).end();
    })();
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  fakeBase = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
});
afterAll(() => {
  fake.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  tokenRequests = [];
  expectedChallenge = undefined;
  tokenAnswer = {
    status: 200,
    body: { access_token: 'header.e30.sig', token_type: 'Bearer', expires_in: 600, refresh_token: 'the-refresh-token' },
  };
});

function metadata(): ServerMetadata {
  return {
    issuer: `${fakeBase}/oidc`,
    authorization_endpoint: `${fakeBase}/oidc/auth`,
    token_endpoint: `${fakeBase}/oidc/token`,
    authorization_response_iss_parameter_supported: true,
    code_challenge_methods_supported: ['S256'],
  };
}

/** What the authorization URL asked for, as the browser would see it. */
interface Seen {
  url: URL;
  redirectUri: string;
  state: string;
}

function seen(url: string): Seen {
  const u = new URL(url);
  expectedChallenge = u.searchParams.get('code_challenge') ?? undefined;
  return { url: u, redirectUri: u.searchParams.get('redirect_uri')!, state: u.searchParams.get('state')! };
}

/** Plays the browser: the sign-in "happens", then the server's redirect to the loopback URI is followed. */
function browser(
  answer: (s: Seen) => Record<string, string>,
  pages: { status: number; text: string }[] = [],
): (url: string) => Promise<void> {
  return async (url) => {
    const s = seen(url);
    const callback = new URL(s.redirectUri);
    for (const [k, v] of Object.entries(answer(s))) callback.searchParams.set(k, v);
    // The CLI answers once it has exchanged the code (or refused the answer).
    void fetch(callback).then(async (res) => pages.push({ status: res.status, text: await res.text() }));
  };
}

function login(openBrowser: (url: string) => Promise<void>, timeoutMs = 10_000) {
  return browserLogin({
    server: fakeBase,
    metadata: metadata(),
    api: 'management',
    output: capture(),
    openBrowser,
    timeoutMs,
  });
}

async function settled(pages: unknown[]): Promise<void> {
  for (let i = 0; i < 100 && pages.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
}

// RFC 8252 §7.3 (loopback redirect), RFC 7636 (PKCE S256), RFC 6749 §4.1.2 and §10.12 (state),
// RFC 9207 (iss), RFC 8707 (resource).
describe('the browser login: authorization URL and loopback redirect', () => {
  it('asks for a code with PKCE S256, a fresh state, the loopback redirect and the management API', async () => {
    const pages: { status: number; text: string }[] = [];
    let asked: Seen | undefined;
    const tokens = await login(
      browser((s) => {
        asked = s;
        return { code: 'the-code', state: s.state, iss: `${fakeBase}/oidc` };
      }, pages),
    );
    expect(tokens).toEqual({
      access_token: 'header.e30.sig',
      token_type: 'Bearer',
      expires_in: 600,
      refresh_token: 'the-refresh-token',
    });
    const q = asked!.url.searchParams;
    expect(`${asked!.url.origin}${asked!.url.pathname}`).toBe(`${fakeBase}/oidc/auth`);
    expect(Object.fromEntries(q)).toEqual({
      response_type: 'code',
      client_id: 'sys.cli',
      redirect_uri: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/callback$/),
      scope: 'openid offline_access',
      resource: `${fakeBase}/v1`,
      state: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      code_challenge_method: 'S256',
    });
    // The verifier sent with the code is the one whose S256 challenge the browser carried.
    expect(tokenRequests).toHaveLength(1);
    expect(pkceChallenge(tokenRequests[0]!.get('code_verifier')!)).toBe(q.get('code_challenge'));
    expect(tokenRequests[0]!.get('redirect_uri')).toBe(q.get('redirect_uri'));
    await settled(pages);
    expect(pages).toEqual([{ status: 200, text: expect.stringContaining('You can close this window') }]);
    // One answer only: the listener is closed afterwards.
    await expect(fetch(q.get('redirect_uri')!)).rejects.toThrow();
  });

  it('uses a new state, verifier and port every time', async () => {
    const asked: Seen[] = [];
    for (let i = 0; i < 2; i++) {
      await login(
        browser((s) => {
          asked.push(s);
          return { code: 'the-code', state: s.state, iss: `${fakeBase}/oidc` };
        }),
      );
    }
    expect(asked[0]!.state).not.toBe(asked[1]!.state);
    expect(asked[0]!.url.searchParams.get('code_challenge')).not.toBe(asked[1]!.url.searchParams.get('code_challenge'));
  });

  it('refuses an answer with another state, and exchanges nothing', async () => {
    const pages: { status: number; text: string }[] = [];
    await expect(
      login(browser(() => ({ code: 'the-code', state: 'forged', iss: `${fakeBase}/oidc` }), pages)),
    ).rejects.toThrow('The answer does not belong to this sign-in (its state is not the one sent), so it was not used');
    expect(tokenRequests).toEqual([]);
    await settled(pages);
    expect(pages[0]!.status).toBe(400);
    expect(pages[0]!.text).toContain('Sign-in failed');
    expect(pages[0]!.text).toContain('does not belong to this sign-in');
  });

  it('handles an answer that comes while the browser is still being opened (or driven)', async () => {
    // The opener returns only after the redirect was answered: a denial meanwhile must be the
    // command's error, not an unhandled rejection.
    const pages: { status: number; text: string }[] = [];
    const slow = async (url: string): Promise<void> => {
      const s = seen(url);
      const callback = new URL(s.redirectUri);
      callback.search = new URLSearchParams({
        error: 'access_denied',
        state: s.state,
        iss: `${fakeBase}/oidc`,
      }).toString();
      const res = await fetch(callback);
      pages.push({ status: res.status, text: await res.text() });
    };
    await expect(login(slow)).rejects.toThrow('The sign-in was denied (access_denied)');
    expect(pages[0]!.status).toBe(400);
  });

  it('reports a denial clearly (access_denied), and exchanges nothing', async () => {
    const pages: { status: number; text: string }[] = [];
    await expect(
      login(
        browser(
          (s) => ({
            error: 'access_denied',
            error_description: 'the <user> said no',
            state: s.state,
            iss: `${fakeBase}/oidc`,
          }),
          pages,
        ),
      ),
    ).rejects.toThrow('The sign-in was denied (access_denied: the <user> said no)');
    expect(tokenRequests).toEqual([]);
    await settled(pages);
    // The description is shown escaped.
    expect(pages[0]!.text).toContain('access_denied: the &lt;user&gt; said no');
    expect(pages[0]!.text).not.toContain('<user>');
  });

  it('checks iss (RFC 9207): another issuer, or none from a server that says it sends one', async () => {
    await expect(
      login(browser((s) => ({ code: 'the-code', state: s.state, iss: 'https://evil.example/oidc' }))),
    ).rejects.toThrow(`The answer comes from https://evil.example/oidc, not from ${fakeBase}/oidc, so it was not used`);
    await expect(login(browser((s) => ({ code: 'the-code', state: s.state })))).rejects.toThrow(/no iss/);
    expect(tokenRequests).toEqual([]);
    const q = (o: Record<string, string>) => new URLSearchParams(o);
    // A server that does not advertise iss may leave it out.
    expect(
      checkAuthorizationResponse(q({ code: 'c', state: 's' }), { state: 's', issuer: 'i', issRequired: false }),
    ).toBe('c');
    expect(() =>
      checkAuthorizationResponse(q({ state: 's', iss: 'i' }), { state: 's', issuer: 'i', issRequired: true }),
    ).toThrow(RedirectError);
    expect(() =>
      checkAuthorizationResponse(q({ error: 'server_error', state: 's', iss: 'i' }), {
        state: 's',
        issuer: 'i',
        issRequired: true,
      }),
    ).toThrow('The server refused the sign-in (server_error).');
  });

  it('says so when the token endpoint refuses the code', async () => {
    const pages: { status: number; text: string }[] = [];
    tokenAnswer = { status: 400, body: { error: 'invalid_grant', error_description: 'grant request is invalid' } };
    await expect(
      login(browser((s) => ({ code: 'the-code', state: s.state, iss: `${fakeBase}/oidc` }), pages)),
    ).rejects.toThrow(
      'the server refused the code: invalid_grant (grant request is invalid); run gatehouse login again',
    );
    await settled(pages);
    expect(pages[0]!.status).toBe(400);
    expect(pages[0]!.text).toContain('The server did not give a token for the sign-in');
  });

  it('gives up after the timeout and closes the listener', async () => {
    let redirectUri = '';
    const started = Date.now();
    await expect(
      login(async (url) => {
        redirectUri = new URL(url).searchParams.get('redirect_uri')!;
      }, 300),
    ).rejects.toThrow('no answer from the browser within 0.3 seconds; run gatehouse login again');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    await expect(fetch(redirectUri)).rejects.toThrow();
  });

  it('answers other paths with 404 without counting them, and only GET /callback', async () => {
    const receiver = await listenForRedirect({ timeoutMs: 5000 });
    const waiting = receiver.wait(async (q) => q.get('code'));
    const origin = new URL(receiver.redirectUri).origin;
    expect((await fetch(`${origin}/favicon.ico`)).status).toBe(404);
    expect((await fetch(receiver.redirectUri, { method: 'POST' })).status).toBe(404);
    const page = await fetch(`${receiver.redirectUri}?code=abc`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await waiting).toBe('abc');
    await expect(fetch(receiver.redirectUri)).rejects.toThrow();
  });

  it('times out with RedirectTimeoutError', async () => {
    const receiver = await listenForRedirect({ timeoutMs: 50 });
    await expect(receiver.wait(async () => 1)).rejects.toBeInstanceOf(RedirectTimeoutError);
  });

  it('with --no-browser only prints the URL; the whole login then stores the token', async () => {
    const env = { GATEHOUSE_CONFIG_DIR: join(dir, 'no-browser') };
    let opened = false;
    const pages: { status: number; text: string }[] = [];
    const output = capture();
    // The user copies the printed URL into a browser: here, the fake browser reads it from stderr.
    const err = output.err;
    output.err = (text) => {
      err(text);
      const url = /\n {2}(http\S+)\n/.exec(text)?.[1];
      if (url !== undefined)
        void browser((s) => ({ code: 'the-code', state: s.state, iss: `${fakeBase}/oidc` }), pages)(url);
    };
    await runLogin({ server: fakeBase, browser: false }, output, {
      env,
      timeoutMs: 10_000,
      openBrowser: () => {
        opened = true;
      },
    });
    expect(opened).toBe(false);
    expect(output.stderr[0]).toMatch(
      /^Open this URL in a browser to sign in to http:\/\/127\.0\.0\.1:\d+:\n\n {2}http/,
    );
    expect(output.stdout[0]).toMatch(/^Logged in to http:\/\/127\.0\.0\.1:\d+: a token for the management API/);
    expect(new CredentialsStore(env.GATEHOUSE_CONFIG_DIR).get(fakeBase)).toMatchObject({
      grantType: 'authorization_code',
      clientId: 'sys.cli',
      accessToken: 'header.e30.sig',
      refreshToken: 'the-refresh-token',
    });
  });
});

describe('opening the browser', () => {
  it.runIf(process.platform === 'linux')('is tried on Linux only with a display', () => {
    expect(canOpenBrowser({})).toBe(false);
    expect(canOpenBrowser({ DISPLAY: ':0' })).toBe(true);
    expect(canOpenBrowser({ WAYLAND_DISPLAY: 'wayland-0' })).toBe(true);
  });
});

describe('PKCE', () => {
  it('computes the S256 challenge of RFC 7636 Appendix B', () => {
    expect(pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    );
  });
});
