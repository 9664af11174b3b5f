/**
 * Verification of client and service secrets at the token plane's endpoints, with a short memory
 * of recent successes.
 *
 * Secrets are stored as argon2id hashes (secret-hasher.ts), which cost ~50 ms of CPU and 19 MiB
 * by design. A machine client asking for a token every few seconds would pay that on every
 * request, and the token endpoint could not reach its throughput target (targets.md: ≥ 70 % of a
 * bare oidc-provider, ≈ 2,000 tokens/s). So a successful check is remembered for a short while:
 *
 * - keyed by (client_id, SHA-256 of the presented secret) — the secret itself is never kept;
 * - together with the stored hash it was verified against: a hit counts only while the client's
 *   stored hash is still that one. Rotating a secret writes a new hash (argon2 salts are random),
 *   so the old secret stops working at once, on every node, and so does a client that was deleted
 *   and created again under the same id; no invalidation message is needed;
 * - for `ttlMs` (default 5 minutes) after the verification, not after the last use, so a secret
 *   is re-verified against argon2 at least that often;
 * - at most `maxEntries` (default 10,000) pairs; when full, the oldest verification goes first.
 *
 * Failures are never remembered: a wrong secret always costs a full argon2 verification (that is
 * the point of argon2), and an unknown client the same (SecretHasher spends it on a dummy hash).
 */

import { createHash } from 'node:crypto';
import { SECRET_LIMITS, type SecretHasher } from '../storage/secret-hasher.js';

/** Options of a ClientSecretCache. */
export interface ClientSecretCacheOptions {
  /** Verifies a secret against a stored argon2id hash (the stores' hasher). */
  hasher: Pick<SecretHasher, 'verify'>;
  /** How long a verification is trusted, in milliseconds (default 300,000). */
  ttlMs?: number;
  /** Most remembered verifications (default 10,000). */
  maxEntries?: number;
  /** The time (default: the system clock). */
  clock?: () => Date;
}

interface Entry {
  /** The stored hash the secret matched. */
  readonly hash: string;
  readonly expiresAtMs: number;
}

const DEFAULT_TTL_MS = 5 * 60 * 1000;
const DEFAULT_MAX_ENTRIES = 10_000;

/** Checks presented secrets against stored hashes, remembering recent successes (see the module). */
export class ClientSecretCache {
  readonly #hasher: Pick<SecretHasher, 'verify'>;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #clock: () => Date;
  readonly #entries = new Map<string, Entry>();

  constructor(options: ClientSecretCacheOptions) {
    this.#hasher = options.hasher;
    this.#ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#clock = options.clock ?? (() => new Date());
    if (!Number.isFinite(this.#ttlMs) || this.#ttlMs < 0) throw new RangeError('ttlMs must be a finite number ≥ 0');
    if (!Number.isSafeInteger(this.#maxEntries) || this.#maxEntries < 0) {
      throw new RangeError('maxEntries must be a whole number ≥ 0');
    }
  }

  /** How many verifications are remembered now (expired ones included until they are met). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * True when `secret` is the secret whose argon2id hash is `storedHash` (the client's current
   * one, read from the store for this request). False for a wrong secret, a missing hash (a
   * client without a secret: the time of a real check is spent anyway) and a secret longer than
   * SECRET_LIMITS.max characters (no client has one; argon2 is not run on it). Throws what the
   * hasher throws for a malformed stored hash.
   */
  async verify(clientId: string, storedHash: string | null | undefined, secret: string): Promise<boolean> {
    if (typeof secret !== 'string' || secret.length === 0 || secret.length > SECRET_LIMITS.max) return false;
    const key = cacheKey(clientId, secret);
    const now = this.#clock().getTime();
    const hit = this.#entries.get(key);
    if (hit !== undefined) {
      if (storedHash !== null && storedHash !== undefined && hit.hash === storedHash && now < hit.expiresAtMs) {
        return true;
      }
      // Expired, or the client's secret changed since: verify again from scratch.
      this.#entries.delete(key);
    }
    const ok = await this.#hasher.verify(storedHash, secret);
    if (ok && storedHash !== null && storedHash !== undefined) this.#remember(key, storedHash, now);
    return ok;
  }

  /** Forgets every remembered verification. */
  clear(): void {
    this.#entries.clear();
  }

  #remember(key: string, hash: string, now: number): void {
    if (this.#maxEntries === 0 || this.#ttlMs === 0) return;
    this.#entries.delete(key);
    while (this.#entries.size >= this.#maxEntries) {
      // A Map iterates in insertion order: the first key is the oldest verification.
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { hash, expiresAtMs: now + this.#ttlMs });
  }
}

/** `client_id`, NUL, SHA-256 of the secret (base64url): ids never contain NUL, so keys never collide. */
function cacheKey(clientId: string, secret: string): string {
  return `${clientId}\0${createHash('sha256').update(secret, 'utf8').digest('base64url')}`;
}
