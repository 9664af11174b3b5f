/**
 * Hashing of passwords and client secrets with argon2id (@node-rs/argon2), and generation of
 * random secrets. Only hashes are stored; a secret is shown once, when it is generated.
 */

import { randomBytes } from 'node:crypto';
import { hash, parseOptions, verify, type Algorithm, type Options } from '@node-rs/argon2';

/** The cost parameters of argon2id. */
export interface Argon2Parameters {
  /** Memory in KiB. */
  memoryCost: number;
  /** Passes over the memory. */
  timeCost: number;
  parallelism: number;
}

/** OWASP Password Storage Cheat Sheet, argon2id minimum: m=19456 KiB (19 MiB), t=2, p=1. */
export const OWASP_ARGON2ID: Readonly<Argon2Parameters> = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

/**
 * Upper bounds on the parameters of an imported hash (`passwordHash`): verifying runs with the
 * hash's own parameters, so an unbounded one would let a config file make every login cost
 * gigabytes of memory.
 */
export const ARGON2_IMPORT_LIMITS = { memoryCost: 1_048_576, timeCost: 16, parallelism: 16, length: 512 } as const;

// `Algorithm` is an ambient const enum, which isolatedModules cannot read: 2 is Argon2id.
const ARGON2ID = 2 as Algorithm;

/** The PHC string form of an argon2id hash of version 19 (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`). */
const ARGON2ID_PHC = /^\$argon2id\$v=19\$m=\d{1,10},t=\d{1,10},p=\d{1,3}\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$/;

/**
 * Checks that `text` is an argon2id PHC string whose parameters are within ARGON2_IMPORT_LIMITS.
 * Returns the problem as a message, or undefined when it is acceptable.
 */
export function validateArgon2idHash(text: string): string | undefined {
  if (text.length > ARGON2_IMPORT_LIMITS.length) {
    return `is ${text.length} characters; at most ${ARGON2_IMPORT_LIMITS.length} are allowed`;
  }
  if (!ARGON2ID_PHC.test(text)) return 'must be an argon2id hash in PHC form ($argon2id$v=19$m=…,t=…,p=…$salt$hash)';
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(text);
  } catch {
    return 'is not a valid argon2id hash';
  }
  for (const k of ['memoryCost', 'timeCost', 'parallelism'] as const) {
    if (parsed[k] > ARGON2_IMPORT_LIMITS[k]) {
      return `has ${k} ${parsed[k]}; at most ${ARGON2_IMPORT_LIMITS[k]} is accepted`;
    }
  }
  return undefined;
}

/** Limits on a secret chosen by the caller (generated ones are 43 characters). */
export const SECRET_LIMITS = { min: 16, max: 1024 } as const;

/**
 * Checks a client or service secret chosen by the caller: SECRET_LIMITS characters of VSCHAR
 * (RFC 6749 Appendix A.2: %x20-7E). Returns the problem, or undefined when acceptable.
 */
export function validateSecret(secret: unknown): string | undefined {
  if (typeof secret !== 'string') return 'must be a string';
  if (secret.length < SECRET_LIMITS.min) {
    return `is ${secret.length} characters; at least ${SECRET_LIMITS.min} are needed`;
  }
  if (secret.length > SECRET_LIMITS.max) {
    return `is ${secret.length} characters; at most ${SECRET_LIMITS.max} are allowed`;
  }
  if (!/^[\x20-\x7e]*$/.test(secret)) return 'may hold only printable ASCII characters (RFC 6749 Appendix A.2)';
  return undefined;
}

/** Generates a secret of 32 random bytes, base64url (43 characters). */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Hashes and verifies secrets with argon2id at fixed cost parameters (injected: tests use cheap
 * ones). Verification is constant-time in the secret (argon2's own comparison), and a check
 * against no hash at all spends the time of a real one on a dummy, so that timing does not tell
 * whether the user, service or client exists.
 */
export class SecretHasher {
  private dummy: Promise<string> | undefined;
  private readonly options: Options;

  constructor(readonly parameters: Readonly<Argon2Parameters> = OWASP_ARGON2ID) {
    this.options = { ...parameters, algorithm: ARGON2ID };
  }

  /** The argon2id PHC string of `secret`, with a fresh random salt. */
  hash(secret: string): Promise<string> {
    return hash(secret, this.options);
  }

  /**
   * True when `secret` matches `hashed`. When `hashed` is null or undefined, verifies against a
   * dummy hash of the same cost and returns false.
   */
  async verify(hashed: string | null | undefined, secret: string): Promise<boolean> {
    if (hashed === null || hashed === undefined) {
      this.dummy ??= this.hash(generateSecret());
      await verify(await this.dummy, secret);
      return false;
    }
    return verify(hashed, secret);
  }
}
