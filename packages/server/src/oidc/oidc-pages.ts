/**
 * The few HTML pages oidc-provider renders itself until the login and consent pages exist (they
 * come with the interactions, docs/oidc.md "Still to come"): the RP-initiated logout
 * confirmation (OpenID Connect RP-Initiated Logout 1.0 §2), its success page, and the error page
 * shown to browsers. Plain HTML that works without JavaScript, with no external resources
 * (oidc-provider's defaults load a web font from Google), every value escaped.
 */

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

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}button{font-size:1rem;margin:.25rem 0;padding:.5rem 1rem;width:100%}</style>
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
  ctx.type = 'html';
  ctx.body = page('Signed out', '<h1>Signed out</h1>\n<p>You have signed out of Gatehouse.</p>');
}

/**
 * renderError: the OAuth error (`error`, `error_description`) for a browser. Never a stack or an
 * internal message: oidc-provider passes `server_error` for anything unexpected.
 */
export async function renderError(ctx: KoaContextWithOIDC, out: Record<string, unknown>): Promise<void> {
  ctx.type = 'html';
  const rows = Object.entries(out)
    .filter(([, value]) => typeof value === 'string' || typeof value === 'number')
    .map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</p>`)
    .join('\n');
  ctx.body = page('Something went wrong', `<h1>Something went wrong</h1>\n${rows}`);
}
