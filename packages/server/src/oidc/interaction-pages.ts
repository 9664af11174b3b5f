/**
 * The login, consent and grants pages (docs/oidc.md "Login and consent"): server-rendered HTML
 * that works without JavaScript, loads nothing else, and is accessible — `<html lang>`, every
 * input with its label, autofocus on the first field, errors in a `role="alert"` element that
 * screen readers announce, visible focus, AA contrast (oidc-pages.ts PAGE_STYLE). Every value is
 * escaped. Field names and button texts are part of the interface (api.md §1): `username`,
 * `password`, "Sign in"; "Allow" and "Deny".
 *
 * Also here: the security headers the routes send with them (securityHeaders).
 */

import { escapeHtml, page, PAGE_STYLE_HASH } from './oidc-pages.js';

/** The message of every failed sign-in: it never says whether the user exists. */
export const LOGIN_FAILED_MESSAGE = 'The username or password is incorrect.';

/** What the login page shows. */
export interface LoginView {
  /** The client's name (or id). */
  readonly client: string;
  /** Where the form posts (relative URL). */
  readonly action: string;
  readonly csrf: string;
  /** The name typed before, shown again after a failure. */
  readonly username?: string;
  readonly error?: string;
}

/** The login form (fields `username`, `password`; button "Sign in"). */
export function loginPage(view: LoginView): string {
  const error = view.error === undefined ? '' : `<p role="alert" id="login-error">${escapeHtml(view.error)}</p>\n`;
  const described = view.error === undefined ? '' : ' aria-describedby="login-error"';
  return page(
    'Sign in',
    `<main>
<h1>Sign in</h1>
<p>to continue to <strong>${escapeHtml(view.client)}</strong></p>
${error}<form method="post" action="${escapeHtml(view.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(view.csrf)}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus value="${escapeHtml(view.username ?? '')}"${described}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${described}>
<button type="submit">Sign in</button>
</form>
</main>`,
  );
}

/** One requested permission scope and whether it will be granted. */
export interface ScopeLine {
  readonly scope: string;
  /** The API (its audience) the scope is for. */
  readonly api: string;
  readonly granted: boolean;
  /** Whether the API declares the scope at all. */
  readonly known: boolean;
}

/** What the consent page shows. */
export interface ConsentView {
  readonly client: string;
  /** Who is signed in. */
  readonly account: string;
  readonly action: string;
  readonly csrf: string;
  /** The OpenID scopes requested (openid, profile, email, offline_access). */
  readonly oidcScopes: readonly string[];
  readonly permissions: readonly ScopeLine[];
  /** Where the user manages remembered grants. */
  readonly grantsUrl: string;
}

const OIDC_SCOPE_TEXT: Readonly<Record<string, string>> = {
  openid: 'Know who you are: your user name, and your roles and features in its domain',
  profile: 'See your display name',
  email: 'See your email address',
  offline_access: 'Keep its access while you are signed out',
};

/** The consent page: what the client asks for, per permission whether it will be granted. */
export function consentPage(view: ConsentView): string {
  const identity = view.oidcScopes.map((s) => `<li>${escapeHtml(OIDC_SCOPE_TEXT[s] ?? s)}</li>`).join('\n');
  const showApi = new Set(view.permissions.map((p) => p.api)).size > 1;
  const permissions = view.permissions
    .map((p) => {
      const on = showApi ? ` on <code>${escapeHtml(p.api)}</code>` : '';
      const verdict = p.granted
        ? '<span class="granted">will be granted</span>'
        : `<span class="denied">will not be granted</span> (${p.known ? 'you do not have this permission' : 'no such permission'})`;
      return `<li data-scope="${escapeHtml(p.scope)}"><code>${escapeHtml(p.scope)}</code>${on}: ${verdict}</li>`;
    })
    .join('\n');
  return page(
    'Allow access?',
    `<main>
<h1>Allow <strong>${escapeHtml(view.client)}</strong> to act for you?</h1>
<p>You are signed in as <strong>${escapeHtml(view.account)}</strong>.</p>
${identity === '' ? '' : `<h2>It asks to</h2>\n<ul>\n${identity}\n</ul>\n`}${
      permissions === '' ? '' : `<h2>Permissions</h2>\n<ul>\n${permissions}\n</ul>\n`
    }<form method="post" action="${escapeHtml(view.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(view.csrf)}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</form>
<p>Gatehouse remembers your answer. You can revoke it on <a href="${escapeHtml(view.grantsUrl)}">your grants</a>.</p>
</main>`,
  );
}

/** One remembered grant on the grants page. */
export interface GrantLine {
  readonly clientId: string;
  readonly client: string;
  readonly scopes: readonly string[];
  /** When it was first allowed. */
  readonly since: Date | undefined;
}

/** What the grants page shows. */
export interface GrantsView {
  readonly account: string;
  readonly grants: readonly GrantLine[];
  /** Where the Revoke forms post. */
  readonly action: string;
  readonly csrf: string;
}

/** The user's remembered grants, each with a Revoke button. */
export function grantsPage(view: GrantsView): string {
  const items = view.grants
    .map((g) => {
      const since = g.since === undefined ? '' : ` since ${escapeHtml(g.since.toISOString().slice(0, 10))}`;
      const scopes = g.scopes.length === 0 ? 'nothing' : g.scopes.map((s) => `<code>${escapeHtml(s)}</code>`).join(' ');
      return `<li data-client="${escapeHtml(g.clientId)}">
<p><strong>${escapeHtml(g.client)}</strong> (<code>${escapeHtml(g.clientId)}</code>)${since}: ${scopes}</p>
<form method="post" action="${escapeHtml(view.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(view.csrf)}">
<input type="hidden" name="client_id" value="${escapeHtml(g.clientId)}">
<button type="submit" class="secondary" aria-label="Revoke ${escapeHtml(g.client)}">Revoke</button>
</form>
</li>`;
    })
    .join('\n');
  return page(
    'Your grants',
    `<main>
<h1>Your grants</h1>
<p>Signed in as <strong>${escapeHtml(view.account)}</strong>. These applications may act for you. Revoking one ends its access at once: its tokens stop working, and it must ask you again.</p>
${items === '' ? '<p>You have not allowed any application.</p>' : `<ul>\n${items}\n</ul>`}
</main>`,
  );
}

/** A page with a heading and one paragraph (expired forms, not signed in, …). */
export function messagePage(title: string, text: string, alert = false): string {
  return page(
    title,
    `<main>\n<h1>${escapeHtml(title)}</h1>\n<p${alert ? ' role="alert"' : ''}>${escapeHtml(text)}</p>\n</main>`,
  );
}

/**
 * The headers of every page: nothing but the page's own style may load, the page may not be
 * framed (clickjacking), nothing leaks through Referer, nothing is cached. `formTargets` are the
 * origins (or schemes) forms may lead to besides this one: CSP `form-action` also governs the
 * redirects that follow a submission (CSP Level 3 §6.4.1), and signing in or allowing ends with a
 * redirect to the client's redirect URI.
 */
export function securityHeaders(formTargets: readonly string[] = []): Record<string, string> {
  const formAction = ["'self'", ...new Set(formTargets)].join(' ');
  return {
    'content-security-policy': `default-src 'none'; style-src ${PAGE_STYLE_HASH}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    pragma: 'no-cache',
  };
}

const HOST_SOURCE = /^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?$/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:$/;

/**
 * The CSP source that lets a form's redirect reach `uri`: its origin, or — when CSP cannot name
 * the host (an IPv6 literal) or the URI has no origin (a private-use scheme, RFC 8252 §7.1) —
 * its scheme. Undefined for what is not a URL.
 */
export function formTargetOf(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return undefined;
  }
  if (HOST_SOURCE.test(url.origin)) return url.origin;
  return SCHEME.test(url.protocol) ? url.protocol : undefined;
}
