/**
 * CSRF tokens of the sign-in, consent and grants forms: HMAC-SHA256 of what the form acts on (an
 * interaction's uid, a session's uid) under a key derived from the cookie key (cookie-keys.ts),
 * so every node computes the same token without storing anything. A token is bound to its
 * purpose and subject: the token of one interaction is no good for another, nor for the grants
 * page.
 *
 * This is the token half of the defence; the other half is the cookies themselves: an
 * interaction's POST needs its interaction cookie and the grants page the session cookie, both
 * SameSite=Lax, so a cross-site form post carries neither.
 */

import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

const HKDF_INFO = 'gatehouse oidc form tokens v1';

/** What a form token is for. */
export type FormPurpose = 'interaction' | 'grants';

/** Issues and checks form tokens. */
export class FormTokens {
  readonly #key: Buffer;

  /** `cookieKey`: the first of oidc-provider's cookie keys (loadCookieKeys), base64url. */
  constructor(cookieKey: string) {
    this.#key = Buffer.from(hkdfSync('sha256', Buffer.from(cookieKey, 'base64url'), new Uint8Array(0), HKDF_INFO, 32));
  }

  /** The token of `purpose` for `subject` (base64url, 43 characters). */
  issue(purpose: FormPurpose, subject: string): string {
    return createHmac('sha256', this.#key).update(`${purpose}\n${subject}`).digest('base64url');
  }

  /** Whether `token` is the token of `purpose` for `subject`; compared in constant time. */
  verify(purpose: FormPurpose, subject: string, token: unknown): boolean {
    if (typeof token !== 'string' || token.length !== 43) return false;
    const expected = Buffer.from(this.issue(purpose, subject));
    const actual = Buffer.from(token);
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }
}
