/**
 * Backoff on failed sign-ins (docs/oidc.md "Rate limits"): once a key — an account name, or a
 * client address — has failed `threshold` times, each further attempt must wait a delay that
 * doubles with every failure (`baseDelayMs`, 2×, 4×, … up to `maxDelayMs`). A key is forgotten
 * `windowMs` after its last failure, and an account's key when it signs in.
 *
 * Memory is bounded: at most `maxEntries` keys per throttle, the least recently failed evicted
 * first. State is per node, in memory: behind a load balancer each node counts on its own, so an
 * attacker spread over N nodes gets N times the attempts (still with growing delays on each).
 */

/** Options of a LoginThrottle. */
export interface LoginThrottleOptions {
  /** Failures allowed before delays start (default 5). */
  threshold: number;
  /** How long after its last failure a key is forgotten (default 15 minutes). */
  windowMs: number;
  /** The wait after the `threshold`-th failure; it doubles with every further one (default 1 s). */
  baseDelayMs: number;
  /** The longest wait (default 15 minutes). */
  maxDelayMs: number;
  /** Most keys remembered (default 10,000); the least recently failed go first. */
  maxEntries: number;
}

/** Defaults of LoginThrottleOptions. */
export const DEFAULT_LOGIN_THROTTLE: Readonly<LoginThrottleOptions> = {
  threshold: 5,
  windowMs: 15 * 60_000,
  baseDelayMs: 1000,
  maxDelayMs: 15 * 60_000,
  maxEntries: 10_000,
};

interface Failures {
  count: number;
  lastMs: number;
}

/** Counts failed sign-ins per key and says how long the next attempt must wait. */
export class LoginThrottle {
  readonly options: Readonly<LoginThrottleOptions>;
  readonly #clock: () => Date;
  /** Insertion order = order of the last failure: the first entry is the one to evict. */
  readonly #entries = new Map<string, Failures>();

  /** Throws RangeError for options that are not positive whole numbers. */
  constructor(clock: () => Date, options: Partial<LoginThrottleOptions> = {}) {
    this.options = { ...DEFAULT_LOGIN_THROTTLE, ...options };
    for (const [name, value] of Object.entries(this.options)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number ≥ 1`);
    }
    this.#clock = clock;
  }

  /** Keys remembered now (expired ones included until they are looked at or evicted). */
  get size(): number {
    return this.#entries.size;
  }

  /** Milliseconds before an attempt for `key` may be made; 0 when it may be made now. */
  waitMs(key: string): number {
    const entry = this.#live(key);
    if (entry === undefined || entry.count < this.options.threshold) return 0;
    return Math.max(0, entry.lastMs + this.#delayMs(entry.count) - this.#now());
  }

  /** Records a failed attempt for `key`. */
  recordFailure(key: string): void {
    const entry = this.#live(key) ?? { count: 0, lastMs: 0 };
    entry.count += 1;
    entry.lastMs = this.#now();
    // Re-inserted: the map stays ordered by last failure.
    this.#entries.delete(key);
    if (this.#entries.size >= this.options.maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
    this.#entries.set(key, entry);
  }

  /** Forgets `key` (an account that signed in). */
  reset(key: string): void {
    this.#entries.delete(key);
  }

  #live(key: string): Failures | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined && this.#now() - entry.lastMs >= this.options.windowMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #delayMs(count: number): number {
    const doublings = Math.min(count - this.options.threshold, 40);
    return Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** doublings);
  }

  #now(): number {
    return this.#clock().getTime();
  }
}
