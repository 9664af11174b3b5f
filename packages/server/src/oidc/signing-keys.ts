/**
 * The token plane's signing keys as oidc-provider sees them: `ExternalSigningKey`s
 * (features.externalSigningSupport), so that private keys never leave the KeyService
 * (docs/keys.md) and oidc-provider never holds private key material. The current `token` key
 * signs with the KeyService's non-extractable CryptoKey; the retired keys still published (tokens
 * they signed are still valid) are listed after it, public only, so that `/oidc/jwks` publishes
 * them — current first — and oidc-provider can verify what they signed (id_token_hint), but
 * never signs with them.
 *
 * Signing goes through node:crypto's `sign` with the KeyObject of that CryptoKey (KeyObject.from:
 * the same key in memory, nothing exported), in its callback form: the signature is computed on
 * libuv's thread pool, so a second core signs while the main thread serves the next request.
 * Measured with bench/token on 2 cores: ~3,400–3,800 tokens/s against ~2,400–2,700 signing
 * synchronously on the main thread (WebCrypto's `subtle.sign` also uses the pool, but cost three
 * times as much per token).
 */

import { createPublicKey, KeyObject, sign, type JsonWebKey, type SignKeyObjectInput } from 'node:crypto';
import type { JWK } from 'jose';
import type { ExternalSigningKey } from 'oidc-provider';
import type { KeyService, SigningAlgorithm } from '../keys/key-service.js';

/** The keys one Provider is built with. */
export interface SigningKeySet {
  /** Current key first, then the retired keys still published. */
  readonly keys: ExternalSigningKey[];
  /** The algorithm of the current key: tokens and ID tokens are signed with it. */
  readonly alg: SigningAlgorithm;
  /** Identifies this set: the current kid, then every published kid. */
  readonly fingerprint: string;
}

/** What the current keys of the KeyService are, without building anything. */
export async function signingKeyFingerprint(keys: KeyService): Promise<string> {
  const [current, published] = await Promise.all([keys.currentSigningKey('token'), keys.publicJwks('token')]);
  return fingerprintOf(current.kid, published.keys);
}

/**
 * The ExternalSigningKeys of the KeyService's published `token` keys, built on `Base`
 * (oidc-provider's ExternalSigningKey class, which is only known once the module is loaded).
 * Throws what KeyService.currentSigningKey throws.
 */
export async function loadSigningKeySet(Base: typeof ExternalSigningKey, keys: KeyService): Promise<SigningKeySet> {
  const [current, published] = await Promise.all([keys.currentSigningKey('token'), keys.publicJwks('token')]);
  const ordered = [
    ...published.keys.filter((k) => k.kid === current.kid),
    ...published.keys.filter((k) => k.kid !== current.kid),
  ];
  if (ordered[0]?.kid !== current.kid) {
    // The current key is always published; a set without it would sign with a key nobody can verify.
    throw new Error(`the current token key ${current.kid} is not in the published JWKS`);
  }
  const Key = gatehouseSigningKeyOf(Base);
  const list = ordered.map((jwk) => new Key(jwk, jwk.kid === current.kid ? current.privateKey : undefined));
  return { keys: list, alg: current.alg, fingerprint: fingerprintOf(current.kid, published.keys) };
}

function fingerprintOf(currentKid: string, published: readonly JWK[]): string {
  return [currentKid, ...published.map((k) => k.kid ?? '')].join(' ');
}

/** How node:crypto signs for a JWS algorithm: its digest (null for EdDSA) and signature encoding. */
interface SignMethod {
  readonly digest: string | null;
  /** RFC 7518 §3.4: an ECDSA JWS signature is r‖s (IEEE P1363), not DER. */
  readonly dsaEncoding: SignKeyObjectInput['dsaEncoding'];
}

function signMethodOf(alg: string): SignMethod {
  switch (alg) {
    case 'EdDSA':
      // RFC 8037 §3.1: Ed25519 signs the message itself.
      return { digest: null, dsaEncoding: undefined };
    case 'ES256':
      return { digest: 'sha256', dsaEncoding: 'ieee-p1363' };
    default:
      throw new Error(`unsupported signing algorithm ${alg}`);
  }
}

const classes = new WeakMap<typeof ExternalSigningKey, GatehouseSigningKeyConstructor>();

type GatehouseSigningKeyConstructor = new (jwk: JWK, privateKey: CryptoKeyLike | undefined) => ExternalSigningKey;

/** The KeyService's CryptoKey (jose's type is WebCrypto's, declared apart). */
type CryptoKeyLike = object;

function gatehouseSigningKeyOf(Base: typeof ExternalSigningKey): GatehouseSigningKeyConstructor {
  let cls = classes.get(Base);
  if (cls === undefined) {
    cls = class GatehouseSigningKey extends Base {
      readonly #publicKey: KeyObject;
      readonly #privateKey: KeyObject | undefined;
      readonly #method: SignMethod;

      constructor(jwk: JWK, privateKey: CryptoKeyLike | undefined) {
        super();
        if (typeof jwk.kid !== 'string' || typeof jwk.alg !== 'string')
          throw new TypeError('a signing key needs kid and alg');
        this.kid = jwk.kid;
        this.alg = jwk.alg;
        this.#method = signMethodOf(jwk.alg);
        this.#publicKey = createPublicKey({ key: publicMembers(jwk), format: 'jwk' });
        this.#privateKey =
          privateKey === undefined ? undefined : KeyObject.from(privateKey as Parameters<typeof KeyObject.from>[0]);
      }

      override keyObject(): KeyObject {
        return this.#publicKey;
      }

      override async sign(data: Buffer): Promise<Uint8Array> {
        if (this.#privateKey === undefined) {
          // Only the current key is handed a private key; oidc-provider picks the first key
          // of an algorithm, which is the current one.
          throw new Error(`token key ${this.kid} is retired: it verifies, it does not sign`);
        }
        const { digest, dsaEncoding } = this.#method;
        const key = dsaEncoding === undefined ? this.#privateKey : { key: this.#privateKey, dsaEncoding };
        return new Promise((resolve, reject) =>
          sign(digest, data, key, (err, signature) => (err ? reject(err) : resolve(signature))),
        );
      }
    };
    classes.set(Base, cls);
  }
  return cls;
}

/** The public members of `jwk` (whatever else it carries stays out of Node's import). */
function publicMembers(jwk: JWK): JsonWebKey {
  const out: JsonWebKey = {};
  for (const name of ['kty', 'crv', 'x', 'y', 'n', 'e'] as const) {
    const value = jwk[name];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}
