/**
 * Verifies a signed policy bundle (docs/bundles.md): a JWS in General JSON Serialization with
 * exactly two signatures, `signatures[0]` by the control plane's key (`GET /v1/keys/control`) and
 * `signatures[1]` by the token plane's key (`/oidc/jwks`). Each signature is verified on its own,
 * against its own key set only (jose's `generalVerify` would stop at the first signature that
 * verifies), with protected header typ `gatehouse-bundle+jws`; then the payload's domain, revision
 * and expiry are checked. Pure apart from jose: no network, no files.
 */

import { parseInstant, type BundlePayload } from '@gatehouse/engine';
import { createLocalJWKSet, flattenedVerify, type JSONWebKeySet } from 'jose';

/** The `typ` of both signatures' protected headers. */
export const BUNDLE_JWS_TYPE = 'gatehouse-bundle+jws';

/** The algorithms a bundle signature may use (the key service signs with Ed25519 or ES256). */
const ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256'];

/** Why a bundle was refused (or, for `bundle.unavailable`, could not be fetched). */
export type BundleErrorCode =
  | 'bundle.malformed'
  | 'bundle.signature'
  | 'bundle.wrong_domain'
  | 'bundle.rollback'
  | 'bundle.expired'
  | 'bundle.unavailable';

/** A bundle that was refused, with a stable `code`. */
export class BundleError extends Error {
  readonly code: BundleErrorCode;
  constructor(code: BundleErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BundleError';
    this.code = code;
  }
}

/** The two published key sets a bundle is verified against. */
export interface BundleKeys {
  /** `GET /v1/keys/control`. */
  control: JSONWebKeySet;
  /** `GET /oidc/jwks`. */
  token: JSONWebKeySet;
}

/** What the verifier expects of the bundle. */
export interface BundleExpectation {
  /** The domain asked for (any case). */
  domain: string;
  /** The revision held so far: an older one is a rollback. */
  minRevision?: number | undefined;
  now: Date;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isString = (v: unknown): v is string => typeof v === 'string';

/** Checks the payload's shape (enough for `compileBundle`, which checks the rest). */
function parsePayload(bytes: Uint8Array): BundlePayload {
  let p: unknown;
  try {
    p = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new BundleError('bundle.malformed', 'the bundle payload is not JSON', { cause: err });
  }
  if (!isObject(p)) throw new BundleError('bundle.malformed', 'the bundle payload is not an object');
  if (!isString(p.domain) || p.domain === '') throw new BundleError('bundle.malformed', 'the bundle has no domain');
  if (typeof p.revision !== 'number' || !Number.isSafeInteger(p.revision) || p.revision < 0) {
    throw new BundleError('bundle.malformed', 'the bundle revision is not a non-negative integer');
  }
  for (const k of ['issuedAt', 'expiresAt'] as const) {
    if (!isString(p[k]) || parseInstant(p[k]) === undefined) {
      throw new BundleError('bundle.malformed', `the bundle ${k} is not an RFC 3339 instant`);
    }
  }
  for (const k of ['roles', 'groups', 'policies', 'resources'] as const) {
    if (!Array.isArray(p[k])) throw new BundleError('bundle.malformed', `the bundle ${k} is not a list`);
  }
  return p as unknown as BundlePayload;
}

/**
 * Verifies `jws` (a parsed General JWS JSON object) and returns its payload. Throws BundleError:
 * `bundle.malformed` (not a General JWS, or a payload that is not a bundle), `bundle.signature`
 * (not exactly two signatures, a signature that does not verify against its own key set, an
 * unprotected header, typ not `gatehouse-bundle+jws`), `bundle.wrong_domain`, `bundle.rollback`
 * (revision older than `minRevision`), `bundle.expired` (`now` at or after `expiresAt`).
 */
export async function verifyBundle(
  jws: unknown,
  keys: BundleKeys,
  expected: BundleExpectation,
): Promise<BundlePayload> {
  if (!isObject(jws) || !isString(jws.payload) || !Array.isArray(jws.signatures)) {
    throw new BundleError('bundle.malformed', 'the bundle is not a JWS in General JSON Serialization');
  }
  const signatures: unknown[] = jws.signatures;
  if (signatures.length !== 2) {
    throw new BundleError('bundle.signature', `the bundle has ${signatures.length} signatures, not 2 (control, token)`);
  }
  const sets = [
    ['control', keys.control],
    ['token', keys.token],
  ] as const;
  let payload: Uint8Array | undefined;
  for (const [i, [name, set]] of sets.entries()) {
    const s = signatures[i];
    if (!isObject(s) || !isString(s.protected) || !isString(s.signature)) {
      throw new BundleError('bundle.malformed', `the ${name} signature is not a JWS signature object`);
    }
    if (s.header !== undefined)
      throw new BundleError('bundle.signature', `the ${name} signature has an unprotected header`);
    let verified: Awaited<ReturnType<typeof flattenedVerify>>;
    try {
      verified = await flattenedVerify(
        { payload: jws.payload, protected: s.protected, signature: s.signature },
        createLocalJWKSet(set),
        { algorithms: ALGORITHMS },
      );
    } catch (err) {
      throw new BundleError('bundle.signature', `the ${name} signature does not verify with the ${name} keys`, {
        cause: err,
      });
    }
    if (verified.protectedHeader?.typ !== BUNDLE_JWS_TYPE) {
      throw new BundleError('bundle.signature', `the ${name} signature's typ is not ${BUNDLE_JWS_TYPE}`);
    }
    if (verified.protectedHeader?.b64 !== undefined) {
      throw new BundleError('bundle.signature', `the ${name} signature has a b64 header`);
    }
    payload = verified.payload;
  }
  const p = parsePayload(payload!);
  const domain = expected.domain.toLowerCase();
  if (p.domain !== domain) throw new BundleError('bundle.wrong_domain', `the bundle is for ${p.domain}, not ${domain}`);
  if (expected.minRevision !== undefined && p.revision < expected.minRevision) {
    throw new BundleError(
      'bundle.rollback',
      `the bundle of ${domain} has revision ${p.revision}, older than ${expected.minRevision}`,
    );
  }
  if (expected.now.getTime() >= parseInstant(p.expiresAt)!) {
    throw new BundleError('bundle.expired', `the bundle of ${domain} expired at ${p.expiresAt}`);
  }
  return p;
}
