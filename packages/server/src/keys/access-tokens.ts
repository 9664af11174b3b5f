/**
 * Access tokens as JWTs (RFC 9068, api.md §1): minted with the current `token` key, verified
 * against the `token` keys still published (current and retired-but-unexpired).
 *
 * Verification costs a signature check (~0.3 ms with jose, targets.md), so verified tokens are
 * cached until they expire: a repeated token costs a map lookup, an expiry check against the clock
 * and the revocation hook, which are consulted on every call.
 */

import { randomBytes } from 'node:crypto';
import { decodeProtectedHeader, errors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { KeyService } from './key-service.js';

/** RFC 9068 §2.1: the `typ` header of a JWT access token. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

/** Claims the minting code sets itself; `claims` may not contain them. */
export const RESERVED_ACCESS_TOKEN_CLAIMS: readonly string[] = [
  'iss',
  'sub',
  'aud',
  'exp',
  'iat',
  'nbf',
  'jti',
  'client_id',
  'scope',
];

/** Longest token the verifier reads; anything longer is `token.malformed` without parsing. */
export const MAX_ACCESS_TOKEN_LENGTH = 16 * 1024;

/** What an access token says (RFC 9068 §2.2) plus Gatehouse's claims (`domain`, `roles`, `permissions`…). */
export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id?: string;
  scope?: string;
}

/** Input of mintAccessToken. */
export interface MintAccessTokenInput {
  issuer: string;
  subject: string;
  audience: string | readonly string[];
  /** Lifetime in whole seconds, ≥ 1. */
  ttlSeconds: number;
  /** Granted scopes: a space-separated string or a list. Omitted when empty. */
  scope?: string | readonly string[] | undefined;
  clientId?: string | undefined;
  /** Further claims (`domain`, `roles`, `groups`, `permissions`…); none of RESERVED_ACCESS_TOKEN_CLAIMS. */
  claims?: Readonly<Record<string, unknown>> | undefined;
  /** Issue time (default: the key service's clock). */
  now?: Date | undefined;
}

/**
 * Signs an access token with the current `token` key: header `{ alg, kid, typ: 'at+jwt' }`, claims
 * `iss sub aud exp iat jti` (random jti), `client_id` and `scope` when given, then `claims`.
 * Returns the compact JWS. Throws RangeError for a bad TTL or a reserved claim in `claims`, and
 * what KeyService.currentSigningKey throws.
 */
export async function mintAccessToken(keys: KeyService, input: MintAccessTokenInput): Promise<string> {
  if (!Number.isSafeInteger(input.ttlSeconds) || input.ttlSeconds < 1) {
    throw new RangeError(`ttlSeconds must be a whole number of seconds ≥ 1, not ${input.ttlSeconds}`);
  }
  const extra = input.claims ?? {};
  for (const name of RESERVED_ACCESS_TOKEN_CLAIMS) {
    if (Object.hasOwn(extra, name)) throw new RangeError(`claims may not set "${name}": mintAccessToken sets it`);
  }
  const scope = typeof input.scope === 'string' ? input.scope : (input.scope ?? []).join(' ');
  const iat = Math.floor((input.now ?? keys.clock()).getTime() / 1000);
  const key = await keys.currentSigningKey('token');
  const payload: JWTPayload = { ...extra };
  if (input.clientId !== undefined) payload.client_id = input.clientId;
  if (scope !== '') payload.scope = scope;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYPE })
    .setIssuer(input.issuer)
    .setSubject(input.subject)
    .setAudience(typeof input.audience === 'string' ? input.audience : [...input.audience])
    .setIssuedAt(iat)
    .setExpirationTime(iat + input.ttlSeconds)
    .setJti(randomBytes(16).toString('base64url'))
    .sign(key.privateKey);
}

/** Why a token was refused. Stable: the API maps them to 401 responses. */
export type InvalidTokenCode =
  | 'token.malformed'
  | 'token.signature'
  | 'token.unknown_key'
  | 'token.expired'
  | 'token.not_yet_valid'
  | 'token.issuer'
  | 'token.audience'
  | 'token.type'
  | 'token.revoked';

/** The token is not acceptable; `code` says why. The jose error, if any, is the cause. */
export class InvalidTokenError extends Error {
  readonly code: InvalidTokenCode;
  constructor(code: InvalidTokenCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidTokenError';
    this.code = code;
  }
}

/** Options of an AccessTokenVerifier. */
export interface AccessTokenVerifierOptions {
  keys: KeyService;
  /** The `iss` a token must carry. */
  issuer: string;
  /** Audiences of which the token's `aud` must name one; unchecked when omitted. */
  audience?: string | readonly string[] | undefined;
  /** Tolerance for `exp` and `nbf` (default 30). */
  clockSkewSeconds?: number;
  /** The time (default: the key service's clock). */
  clock?: () => Date;
  /** Most verified tokens kept (default 10,000); expired and least recently used ones go first. */
  cacheSize?: number;
  /**
   * Consulted on every verify, cache hits included; `true` refuses the token (`token.revoked`).
   * An error it throws is passed through (the token is not accepted).
   */
  isRevoked?: ((jti: string, claims: AccessTokenClaims) => boolean | Promise<boolean>) | undefined;
}

interface CacheEntry {
  readonly claims: AccessTokenClaims;
  readonly exp: number;
  readonly kid: string;
  /** The KeyService generation at which `kid` was last seen published. */
  generation: number;
  /** Hit since the eviction scan last passed it (second-chance approximation of LRU). */
  used: boolean;
}

const DEFAULT_CACHE_SIZE = 10_000;
const DEFAULT_CLOCK_SKEW_SECONDS = 30;
/** Most recently used entries one eviction moves to the end before it drops one regardless. */
const EVICTION_SECOND_CHANCES = 32;
/** An unknown kid makes the verifier read the keys again at most this often (a flood of bad kids stays cheap). */
const UNKNOWN_KID_RELOAD_INTERVAL_MS = 1000;

/**
 * Verifies access tokens for one issuer (and audience). Results are cached per token string
 * until the token expires; expiry and revocation are checked on every call.
 */
export class AccessTokenVerifier {
  readonly #keys: KeyService;
  readonly #issuer: string;
  readonly #audience: string | string[] | undefined;
  readonly #skewSeconds: number;
  readonly #clock: () => Date;
  readonly #cacheSize: number;
  readonly #isRevoked: AccessTokenVerifierOptions['isRevoked'];
  readonly #cache = new Map<string, CacheEntry>();
  #lastKidReloadMs = Number.NEGATIVE_INFINITY;

  constructor(options: AccessTokenVerifierOptions) {
    this.#keys = options.keys;
    this.#issuer = options.issuer;
    const audience = options.audience;
    this.#audience = audience === undefined || typeof audience === 'string' ? audience : [...audience];
    this.#skewSeconds = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
    this.#clock = options.clock ?? options.keys.clock;
    this.#cacheSize = Math.max(0, options.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.#isRevoked = options.isRevoked;
  }

  /**
   * The claims of `token` when it is a valid access token for this issuer and audience: signed by
   * a published `token` key, `typ` at+jwt, not expired or not yet valid (with the clock skew), and
   * not revoked. Otherwise throws InvalidTokenError. The returned object is frozen and shared.
   */
  async verify(token: string): Promise<AccessTokenClaims> {
    const hit = this.#cache.get(token);
    // The hit path stays synchronous up to the revocation hook: a cached token costs a map lookup.
    if (hit !== undefined) {
      this.#assertUnexpired(token, hit);
      if (hit.generation === this.#keys.generation || (await this.#keyStillPublished(token, hit))) {
        if (this.#isRevoked !== undefined) await this.#checkRevoked(token, hit.claims);
        return hit.claims;
      }
    }
    const generation = this.#keys.generation;
    const { claims, kid } = await this.#verifyUncached(token);
    if (this.#cacheSize > 0) {
      this.#cache.set(token, { claims, exp: claims.exp, kid, generation, used: false });
      if (this.#cache.size > this.#cacheSize) this.#evictOne();
    }
    if (this.#isRevoked !== undefined) await this.#checkRevoked(token, claims);
    return claims;
  }

  /** Forgets every verified token (e.g. after removing a compromised key). */
  clear(): void {
    this.#cache.clear();
  }

  /** Checks a cache entry's expiry (throws token.expired, dropping it) and marks it used. */
  #assertUnexpired(token: string, hit: CacheEntry): void {
    if (hit.exp <= Math.floor(this.#clock().getTime() / 1000) - this.#skewSeconds) {
      this.#cache.delete(token);
      throw new InvalidTokenError('token.expired', 'the token has expired');
    }
    // Moving the entry to the end of the map on every hit would cost microseconds (the map
    // compacts its deleted slots); a flag costs nothing, and eviction gives used entries a second chance.
    hit.used = true;
  }

  /**
   * Drops one entry: scanning oldest first, an expired or unused entry goes; a used one has its
   * flag cleared and moves to the end (second chance). After EVICTION_SECOND_CHANCES moves the
   * next entry goes anyway, so one eviction never scans the whole cache.
   */
  #evictOne(): void {
    const nowSeconds = Math.floor(this.#clock().getTime() / 1000);
    let chances = EVICTION_SECOND_CHANCES;
    for (const [token, entry] of this.#cache) {
      if (entry.used && chances-- > 0 && entry.exp > nowSeconds - this.#skewSeconds) {
        entry.used = false;
        this.#cache.delete(token);
        this.#cache.set(token, entry);
        continue;
      }
      this.#cache.delete(token);
      return;
    }
  }

  /**
   * After the keys were read again, whether the entry's key is still published (a rotation without
   * overlap withdraws it at once); drops the entry when it is not.
   */
  async #keyStillPublished(token: string, hit: CacheEntry): Promise<boolean> {
    const generation = this.#keys.generation;
    if ((await this.#keys.findVerificationKey('token', hit.kid)) === undefined) {
      this.#cache.delete(token);
      return false;
    }
    hit.generation = generation;
    return true;
  }

  async #checkRevoked(token: string, claims: AccessTokenClaims): Promise<void> {
    if (!(await this.#isRevoked!(claims.jti, claims))) return;
    this.#cache.delete(token);
    throw new InvalidTokenError('token.revoked', 'the token has been revoked');
  }

  async #verifyUncached(token: string): Promise<{ claims: AccessTokenClaims; kid: string }> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_ACCESS_TOKEN_LENGTH) {
      throw new InvalidTokenError('token.malformed', 'the token is empty or too long');
    }
    let kid: unknown;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch (err) {
      throw new InvalidTokenError('token.malformed', 'the token is not a JWS', { cause: err });
    }
    if (typeof kid !== 'string') throw new InvalidTokenError('token.unknown_key', 'the token names no key (kid)');
    let key = await this.#keys.findVerificationKey('token', kid);
    if (key === undefined) {
      // A key made on another node since this one last read them: read once more, at most once a second.
      const now = this.#clock().getTime();
      if (now - this.#lastKidReloadMs >= UNKNOWN_KID_RELOAD_INTERVAL_MS || now < this.#lastKidReloadMs) {
        this.#lastKidReloadMs = now;
        await this.#keys.reload();
        key = await this.#keys.findVerificationKey('token', kid);
      }
    }
    if (key === undefined) {
      throw new InvalidTokenError(
        'token.unknown_key',
        `the token is signed with an unknown key ${JSON.stringify(kid)}`,
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key.publicKey, {
        algorithms: [key.alg],
        typ: ACCESS_TOKEN_TYPE,
        issuer: this.#issuer,
        ...(this.#audience === undefined ? {} : { audience: this.#audience }),
        clockTolerance: this.#skewSeconds,
        currentDate: this.#clock(),
        // RFC 9068 §2.2; client_id is not required: Gatehouse's own tokens may have no client.
        requiredClaims: ['iss', 'sub', 'exp', 'iat', 'jti'],
      }));
    } catch (err) {
      throw invalidTokenOf(err);
    }
    if (typeof payload.jti !== 'string' || typeof payload.sub !== 'string' || typeof payload.iss !== 'string') {
      throw new InvalidTokenError('token.malformed', 'the token has a non-string iss, sub or jti');
    }
    return { claims: deepFreeze(payload) as AccessTokenClaims, kid };
  }
}

/** Maps jose's verification errors to our codes; anything else is not the token's fault and passes through. */
function invalidTokenOf(err: unknown): unknown {
  if (err instanceof errors.JWTExpired) {
    return new InvalidTokenError('token.expired', 'the token has expired', { cause: err });
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    const failed = err.reason === 'check_failed';
    if (err.claim === 'typ') return new InvalidTokenError('token.type', 'the token is not an at+jwt', { cause: err });
    if (err.claim === 'iss' && failed) {
      return new InvalidTokenError('token.issuer', 'the token has another issuer', { cause: err });
    }
    if (err.claim === 'aud' && failed) {
      return new InvalidTokenError('token.audience', 'the token is not for this audience', { cause: err });
    }
    if (err.claim === 'nbf' && failed) {
      return new InvalidTokenError('token.not_yet_valid', 'the token is not valid yet', { cause: err });
    }
    return new InvalidTokenError('token.malformed', `the token's ${err.claim} claim is ${err.reason}`, { cause: err });
  }
  if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JOSEAlgNotAllowed) {
    return new InvalidTokenError('token.signature', 'the token signature does not verify', { cause: err });
  }
  if (err instanceof errors.JOSEError) {
    return new InvalidTokenError('token.malformed', 'the token is not a valid JWT', { cause: err });
  }
  return err;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
