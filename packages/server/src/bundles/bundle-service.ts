/**
 * Signed policy bundles (api.md §4, docs/bundles.md): the bundle payload of a domain as this node's
 * catalog holds it (`toBundlePayload`: roles without members, group hierarchy, active policy
 * versions, registered resources), with `issuedAt` = now and `expiresAt` = now + the bundle TTL,
 * serialised as RFC 8785 canonical JSON and signed as a JWS in General JSON Serialization (RFC 7515
 * §7.2.1) by two key holders: the control plane's current `control` key and the token plane's
 * current `token` key. Each signature's protected header is `{ alg, kid, typ }` with
 * typ `gatehouse-bundle+jws`.
 *
 * Signing costs two signatures, so a signed bundle is kept per domain and handed out again while
 * the domain's revision and both current kids are unchanged and more than half the TTL remains.
 */

import { toBundlePayload, type BundlePayload, type CompiledDomain } from '@gatehouse/engine';
import { GeneralSign, type GeneralJWS } from 'jose';
import type { CatalogHolder } from '../catalog/catalog-holder.js';
import type { KeyService } from '../keys/key-service.js';
import { canonicalJson } from '../storage/canonical-json.js';

/** The `typ` of both signatures' protected headers. */
export const BUNDLE_JWS_TYPE = 'gatehouse-bundle+jws';

/** The media type of a bundle (a General JWS JSON Serialization). */
export const BUNDLE_MEDIA_TYPE = 'application/jose+json';

/** A signed bundle. */
export interface SignedBundle {
  readonly domain: string;
  readonly revision: number;
  /** When it was signed and until when it is valid (epoch ms; the payload holds both as RFC 3339). */
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  /** The kids of the two signatures. */
  readonly controlKid: string;
  readonly tokenKid: string;
  /** The JWS (General JSON Serialization) as sent: `{"payload":…,"signatures":[control, token]}`. */
  readonly body: string;
}

export interface BundleServiceOptions {
  catalog: CatalogHolder;
  keys: KeyService;
  /** How long a bundle is valid (GATEHOUSE_BUNDLE_TTL_SECONDS). */
  ttlSeconds: number;
  clock?: () => Date;
}

/** Builds, signs and caches the bundles of the domains in this node's catalog. */
export class BundleService {
  readonly #catalog: CatalogHolder;
  readonly #keys: KeyService;
  readonly #ttlMs: number;
  readonly #clock: () => Date;
  /** The last bundle signed (or being signed) per domain. */
  readonly #cache = new Map<string, Promise<SignedBundle>>();

  constructor(options: BundleServiceOptions) {
    this.#catalog = options.catalog;
    this.#keys = options.keys;
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#clock = options.clock ?? (() => new Date());
  }

  /** The compiled domain `name` (any case) this node holds, or undefined. */
  domain(name: string): CompiledDomain | undefined {
    return this.#catalog.catalog.domains.get(name.toLowerCase());
  }

  /**
   * The signed bundle of domain `name` (any case) at the revision the catalog holds; undefined when
   * the catalog holds no such domain. Throws what the key service throws (no key, a key that does
   * not decrypt).
   */
  async bundle(name: string): Promise<SignedBundle | undefined> {
    const key = name.toLowerCase();
    const compiled = this.domain(key);
    if (compiled === undefined) {
      this.#cache.delete(key);
      return undefined;
    }
    const [control, token] = await Promise.all([
      this.#keys.currentSigningKey('control'),
      this.#keys.currentSigningKey('token'),
    ]);
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      const b = await cached.catch(() => undefined);
      if (
        b !== undefined &&
        b.revision === compiled.revision &&
        b.controlKid === control.kid &&
        b.tokenKid === token.kid &&
        b.expiresAtMs - this.#clock().getTime() > this.#ttlMs / 2
      ) {
        return b;
      }
    }
    const signing = this.#sign(compiled, control, token);
    this.#cache.set(key, signing);
    signing.catch(() => {
      if (this.#cache.get(key) === signing) this.#cache.delete(key);
    });
    return signing;
  }

  async #sign(
    compiled: CompiledDomain,
    control: Awaited<ReturnType<KeyService['currentSigningKey']>>,
    token: Awaited<ReturnType<KeyService['currentSigningKey']>>,
  ): Promise<SignedBundle> {
    const issuedAtMs = this.#clock().getTime();
    const expiresAtMs = issuedAtMs + this.#ttlMs;
    const payload: BundlePayload = toBundlePayload(
      { ...compiled.model, revision: compiled.revision },
      new Date(issuedAtMs),
      new Date(expiresAtMs),
    );
    const jws: GeneralJWS = await new GeneralSign(new TextEncoder().encode(canonicalJson(payload)))
      .addSignature(control.privateKey)
      .setProtectedHeader({ alg: control.alg, kid: control.kid, typ: BUNDLE_JWS_TYPE })
      .addSignature(token.privateKey)
      .setProtectedHeader({ alg: token.alg, kid: token.kid, typ: BUNDLE_JWS_TYPE })
      .sign();
    return {
      domain: payload.domain,
      revision: payload.revision,
      issuedAtMs,
      expiresAtMs,
      controlKid: control.kid,
      tokenKid: token.kid,
      body: JSON.stringify(jws),
    };
  }
}
