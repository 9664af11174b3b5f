/**
 * The HTML pages oidc-provider renders itself — the RP-initiated logout confirmation (OpenID
 * Connect RP-Initiated Logout 1.0 §2), its success page, and the error page shown to browsers —
 * and the page layout they share with the login, consent and grants pages
 * (interaction-pages.ts). Plain HTML that works without JavaScript, with no external resources
 * (oidc-provider's defaults load a web font from Google), every value escaped.
 */

import { createHash } from 'node:crypto';
import type { KoaContextWithOIDC } from 'oidc-provider';

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * The pages' only style, inline (no external resources). Colours meet WCAG 2.2 AA contrast
 * (text ≥ 4.5:1, focus ring and borders ≥ 3:1 against white); every focusable element shows a
 * visible focus ring. The pages' Content-Security-Policy allows exactly this text by its hash.
 */
export const PAGE_STYLE =
  'body{font:1rem/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff;max-width:30rem;margin:3rem auto;padding:0 1rem}' +
  'h1{font-size:1.5rem;line-height:1.25}h2{font-size:1.15rem}' +
  'label{display:block;font-weight:600;margin:1rem 0 .25rem}' +
  'input{box-sizing:border-box;width:100%;font:inherit;padding:.5rem;border:1px solid #555;border-radius:4px;color:#1a1a1a;background:#fff}' +
  'button{font:inherit;margin:.5rem 0;padding:.6rem 1rem;width:100%;border:2px solid #0b4f9c;border-radius:4px;background:#0b4f9c;color:#fff;cursor:pointer}' +
  'button.secondary{background:#fff;color:#0b4f9c}' +
  'a{color:#0b4f9c}' +
  ':focus-visible{outline:3px solid #b35c00;outline-offset:2px}' +
  '[role=alert]{border-left:4px solid #b00020;padding:.5rem .75rem;background:#fdecee;color:#7a0016}' +
  '.granted{color:#1b5e20;font-weight:600}.denied{color:#8a1c1c;font-weight:600}' +
  'code{font-family:ui-monospace,monospace;overflow-wrap:anywhere}';

/** The CSP hash source of PAGE_STYLE. */
export const PAGE_STYLE_HASH = `'sha256-${createHash('sha256').update(PAGE_STYLE).digest('base64')}'`;

/**
 * The headers of oidc-provider's pages: only their style loads, they cannot be framed (a framed
 * "Yes, sign me out" button could be clicked by trickery), nothing leaks through Referer. Forms
 * stay unrestricted: the logout form's redirect goes to the client's post-logout URI.
 */
function setPageHeaders(ctx: KoaContextWithOIDC): void {
  ctx.set(
    'content-security-policy',
    `default-src 'none'; style-src ${PAGE_STYLE_HASH}; frame-ancestors 'none'; base-uri 'none'`,
  );
  ctx.set('x-frame-options', 'DENY');
  ctx.set('referrer-policy', 'no-referrer');
}

/** A whole page: `body` is HTML (escape what goes into it), `title` is text. */
export function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

/**
 * features.rpInitiatedLogout.logoutSource: asks whether to sign out. `form` is oidc-provider's
 * form (with its XSRF field); the buttons submit it, "logout=yes" signs out.
 */
export async function logoutSource(ctx: KoaContextWithOIDC, form: string): Promise<void> {
  setPageHeaders(ctx);
  ctx.type = 'html';
  ctx.body = page(
    'Sign out',
    `<h1>Sign out</h1>
<p>Do you want to sign out of Gatehouse?</p>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`,
  );
}

/** features.rpInitiatedLogout.postLogoutSuccessSource: shown when there is no redirect back. */
export async function postLogoutSuccessSource(ctx: KoaContextWithOIDC): Promise<void> {
  setPageHeaders(ctx);
  ctx.type = 'html';
  ctx.body = page('Signed out', '<h1>Signed out</h1>\n<p>You have signed out of Gatehouse.</p>');
}

/**
 * renderError: the OAuth error (`error`, `error_description`) for a browser. Never a stack or an
 * internal message: oidc-provider passes `server_error` for anything unexpected.
 */
export async function renderError(ctx: KoaContextWithOIDC, out: Record<string, unknown>): Promise<void> {
  setPageHeaders(ctx);
  ctx.type = 'html';
  const rows = Object.entries(out)
    .filter(([, value]) => typeof value === 'string' || typeof value === 'number')
    .map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</p>`)
    .join('\n');
  ctx.body = page('Something went wrong', `<h1>Something went wrong</h1>\n${rows}`);
}
