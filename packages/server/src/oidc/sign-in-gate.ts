/**
 * The password check of the login page, behind its throttles (docs/oidc.md "Rate limits"): one
 * LoginThrottle per account name and one per client address. An attempt made while either says
 * to wait is refused without checking the password; a failure counts against both; a success
 * clears the account's count (not the address's: an attacker signing in to an account of their
 * own between guesses must not clear it).
 *
 * Nothing here tells whether a user exists: unknown names are counted and throttled like real
 * ones, and the UserStore checks an unknown user's password against a dummy hash of the same cost.
 */

import { USER_LIMITS, validateUserName } from '../storage/user-store.js';
import { LoginThrottle, type LoginThrottleOptions } from './login-throttle.js';

/** The per-address throttle's defaults: more failures than per account, for shared addresses (NAT). */
export const ADDRESS_THROTTLE_DEFAULTS: Readonly<Partial<LoginThrottleOptions>> = { threshold: 20 };

/** What a sign-in attempt came to. */
export type SignInOutcome =
  | { readonly outcome: 'signed-in'; readonly accountId: string }
  | { readonly outcome: 'failed' }
  | { readonly outcome: 'throttled'; readonly retryAfterSeconds: number };

/** Options of a SignInGate. */
export interface SignInGateOptions {
  users: { verifyPassword(name: string, password: string): Promise<boolean> };
  clock: () => Date;
  /** Throttle per account name (LoginThrottle defaults). */
  account?: Partial<LoginThrottleOptions> | undefined;
  /** Throttle per client address (ADDRESS_THROTTLE_DEFAULTS over LoginThrottle's). */
  address?: Partial<LoginThrottleOptions> | undefined;
}

/** Checks passwords, with backoff per account and per address. */
export class SignInGate {
  readonly #users: SignInGateOptions['users'];
  readonly #accounts: LoginThrottle;
  readonly #addresses: LoginThrottle;

  /** Throws RangeError for bad throttle options. */
  constructor(options: SignInGateOptions) {
    this.#users = options.users;
    this.#accounts = new LoginThrottle(options.clock, options.account);
    this.#addresses = new LoginThrottle(options.clock, { ...ADDRESS_THROTTLE_DEFAULTS, ...options.address });
  }

  /**
   * Signs `username` in with `password`, from the client address `address`. The account is
   * `user.<name>` (names are case-insensitive). Passes the UserStore's errors through.
   */
  async attempt(username: string, password: string, address: string): Promise<SignInOutcome> {
    const { name } = validateUserName(username);
    const accountKey = name.slice(0, 256);
    const waitMs = Math.max(this.#accounts.waitMs(accountKey), this.#addresses.waitMs(address));
    if (waitMs > 0) return { outcome: 'throttled', retryAfterSeconds: Math.ceil(waitMs / 1000) };
    // A password no user can have is refused without hashing it: its length says nothing about the user.
    const ok = password.length <= USER_LIMITS.passwordMax && (await this.#users.verifyPassword(username, password));
    if (!ok) {
      this.#accounts.recordFailure(accountKey);
      this.#addresses.recordFailure(address);
      return { outcome: 'failed' };
    }
    this.#accounts.reset(accountKey);
    return { outcome: 'signed-in', accountId: `user.${name}` };
  }
}
