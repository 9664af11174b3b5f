import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FormTokens } from '../../src/oidc/form-tokens.js';
import { consentPage, formTargetOf, grantsPage, loginPage, securityHeaders } from '../../src/oidc/interaction-pages.js';
import { PAGE_STYLE, PAGE_STYLE_HASH } from '../../src/oidc/oidc-pages.js';

describe('the interaction pages', () => {
  const hostile = '<script>alert("x")</script>&\'';

  it('escape every value they show', () => {
    const pages = [
      loginPage({ client: hostile, action: '/a', csrf: hostile, username: hostile, error: hostile }),
      consentPage({
        client: hostile,
        account: hostile,
        action: '/a',
        csrf: 'c',
        oidcScopes: ['openid', hostile],
        permissions: [{ scope: hostile, api: hostile, granted: false, known: false }],
        grantsUrl: '/g',
      }),
      grantsPage({
        account: hostile,
        grants: [{ clientId: hostile, client: hostile, scopes: [hostile], since: new Date(0) }],
        action: '/r',
        csrf: 'c',
      }),
    ];
    for (const html of pages) {
      expect(html).not.toContain('<script>');
      expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;');
    }
  });

  it('name the fields and buttons as api.md §1 does', () => {
    const login = loginPage({ client: 'Web', action: '/a', csrf: 'c' });
    expect(login).toMatch(/<input id="username" name="username"[^>]*autofocus/);
    expect(login).toMatch(/<input id="password" name="password" type="password"/);
    expect(login).toContain('<button type="submit">Sign in</button>');
    expect(login).not.toContain('role="alert"');
    const consent = consentPage({
      client: 'Web',
      account: 'alice',
      action: '/a',
      csrf: 'c',
      oidcScopes: [],
      permissions: [],
      grantsUrl: '/g',
    });
    expect(consent).toContain('>Allow</button>');
    expect(consent).toContain('>Deny</button>');
  });

  it('allow exactly their own style by its hash', () => {
    expect(loginPage({ client: 'Web', action: '/a', csrf: 'c' })).toContain(`<style>${PAGE_STYLE}</style>`);
    expect(PAGE_STYLE_HASH).toBe(`'sha256-${createHash('sha256').update(PAGE_STYLE).digest('base64')}'`);
    expect(securityHeaders(['http://127.0.0.1:8080', 'http://127.0.0.1:8080'])['content-security-policy']).toBe(
      `default-src 'none'; style-src ${PAGE_STYLE_HASH}; form-action 'self' http://127.0.0.1:8080; frame-ancestors 'none'; base-uri 'none'`,
    );
  });

  it.each([
    ['https://app.example.com/callback?x=1', 'https://app.example.com'],
    ['http://127.0.0.1:5173/cb', 'http://127.0.0.1:5173'],
    // CSP host-sources cannot name an IPv6 literal, and private-use schemes have no origin.
    ['http://[::1]:5173/cb', 'http:'],
    ['com.example.app:/oauth2redirect', 'com.example.app:'],
    ['not a url', undefined],
  ])('let a form lead to %s through %s', (uri, target) => {
    expect(formTargetOf(uri)).toBe(target);
  });
});

describe('FormTokens', () => {
  const key = Buffer.alloc(32, 7).toString('base64url');

  it('binds a token to its purpose and subject', () => {
    const tokens = new FormTokens(key);
    const token = tokens.issue('interaction', 'uid-1');
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(tokens.verify('interaction', 'uid-1', token)).toBe(true);
    expect(tokens.verify('interaction', 'uid-2', token)).toBe(false);
    expect(tokens.verify('grants', 'uid-1', token)).toBe(false);
    expect(tokens.verify('interaction', 'uid-1', undefined)).toBe(false);
    expect(tokens.verify('interaction', 'uid-1', `${token}x`)).toBe(false);
    expect(new FormTokens(Buffer.alloc(32, 8).toString('base64url')).verify('interaction', 'uid-1', token)).toBe(false);
  });
});
