/**
 * Encryption at rest of private signing keys (architecture.md "Cross-cutting": keys). With a
 * master key (GATEHOUSE_MASTER_KEY, 32 bytes) a private JWK is stored as
 * `v1.<nonce>.<ciphertext+tag>` (base64url): AES-256-GCM under a key derived with HKDF-SHA256
 * (empty salt, info `gatehouse keys v1`), a random 96-bit nonce, and the kid as additional
 * authenticated data, so a ciphertext moved to another row does not decrypt. Without a master key
 * it is stored as `plain.<JSON>`.
 *
 * Decryption never returns garbage: a wrong or missing master key, a tampered value or a swapped
 * kid throws KeyDecryptionError. A `plain.` value is accepted even when a master key is set, so
 * that a deployment can turn encryption on later; the key service re-encrypts such rows at start-up
 * (see docs/keys.md).
 */

import { Buffer } from 'node:buffer';
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';

/** Length of GATEHOUSE_MASTER_KEY in bytes. */
export const MASTER_KEY_BYTES = 32;

const HKDF_INFO = 'gatehouse keys v1';
const SEALED_PREFIX = 'v1.';
const PLAIN_PREFIX = 'plain.';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Why a stored private key could not be read. */
export type KeyDecryptionReason = 'no_master_key' | 'wrong_key_or_tampered' | 'malformed';

/**
 * A stored private key cannot be decrypted: the master key is missing or wrong, the value was
 * changed, or it belongs to another kid. `code` is always `key.decryption_failed`.
 */
export class KeyDecryptionError extends Error {
  readonly code = 'key.decryption_failed';
  readonly kid: string;
  readonly reason: KeyDecryptionReason;
  constructor(kid: string, reason: KeyDecryptionReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeyDecryptionError';
    this.kid = kid;
    this.reason = reason;
  }
}

/**
 * Seals and opens private JWKs for the `keys.private_jwk` column. Construct with the master key, or
 * `undefined` to store keys unencrypted. Throws RangeError when the master key is not 32 bytes.
 */
export class MasterKeyCipher {
  readonly #key: KeyObject | undefined;

  constructor(masterKey: Uint8Array | undefined) {
    if (masterKey !== undefined && masterKey.byteLength !== MASTER_KEY_BYTES) {
      throw new RangeError(`the master key must be ${MASTER_KEY_BYTES} bytes, not ${masterKey.byteLength}`);
    }
    this.#key =
      masterKey === undefined
        ? undefined
        : createSecretKey(Buffer.from(hkdfSync('sha256', masterKey, new Uint8Array(0), HKDF_INFO, 32)));
  }

  /** Whether a master key is set (new values are encrypted). */
  get encrypts(): boolean {
    return this.#key !== undefined;
  }

  /** Whether a stored value is unencrypted (`plain.`). */
  static isPlain(stored: string): boolean {
    return stored.startsWith(PLAIN_PREFIX);
  }

  /** The stored form of `privateJwk` for the row of `kid`: `v1.…` with a master key, `plain.…` without. */
  encrypt(kid: string, privateJwk: JWK): string {
    const json = JSON.stringify(privateJwk);
    if (this.#key === undefined) return PLAIN_PREFIX + json;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(kid, 'utf8'));
    const sealed = Buffer.concat([cipher.update(json, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${SEALED_PREFIX}${nonce.toString('base64url')}.${sealed.toString('base64url')}`;
  }

  /**
   * The private JWK stored as `stored` in the row of `kid`. Throws KeyDecryptionError when it
   * cannot be decrypted or is not a JWK object; never returns anything else.
   */
  decrypt(kid: string, stored: string): JWK {
    if (stored.startsWith(PLAIN_PREFIX)) return parseJwk(kid, stored.slice(PLAIN_PREFIX.length));
    if (!stored.startsWith(SEALED_PREFIX)) {
      throw new KeyDecryptionError(kid, 'malformed', `the private key of ${kid} is stored in an unknown format`);
    }
    if (this.#key === undefined) {
      throw new KeyDecryptionError(
        kid,
        'no_master_key',
        `the private key of ${kid} is encrypted, but GATEHOUSE_MASTER_KEY is not set`,
      );
    }
    const parts = stored.slice(SEALED_PREFIX.length).split('.');
    const nonce = Buffer.from(parts[0] ?? '', 'base64url');
    const sealed = Buffer.from(parts[1] ?? '', 'base64url');
    if (parts.length !== 2 || nonce.length !== NONCE_BYTES || sealed.length <= TAG_BYTES) {
      throw new KeyDecryptionError(kid, 'malformed', `the encrypted private key of ${kid} is malformed`);
    }
    let json: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(kid, 'utf8'));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      json = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]).toString(
        'utf8',
      );
    } catch (err) {
      // GCM authentication failed: another master key, a changed value, or another row's value.
      throw new KeyDecryptionError(
        kid,
        'wrong_key_or_tampered',
        `the private key of ${kid} does not decrypt: the master key is wrong or the stored value was changed`,
        { cause: err },
      );
    }
    return parseJwk(kid, json);
  }
}

function parseJwk(kid: string, json: string): JWK {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new KeyDecryptionError(kid, 'malformed', `the private key of ${kid} is not valid JSON`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof (value as JWK).kty !== 'string') {
    throw new KeyDecryptionError(kid, 'malformed', `the private key of ${kid} is not a JWK`);
  }
  return value as JWK;
}
