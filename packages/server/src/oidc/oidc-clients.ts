/**
 * oidc-provider's clients, from our tables rather than from `oidc_payloads` (docs/oidc.md
 * "Clients"): the `Client` adapter's `find(clientId)` builds RFC 7591 metadata for
 *
 * - a **service** `<domain>.<name>` (its principal name is its client_id): the client
 *   credentials grant only; `client_secret_basic` / `client_secret_post` with its secret, or
 *   `private_key_jwt` (RFC 7523) with its public keys as `jwks`;
 * - an **OAuth client** of a domain: its redirect URIs and grant types; a public client
 *   authenticates with `none` and must use PKCE (oidc-provider's default pkce.required), a
 *   confidential one with its secret.
 *
 * A client or service of a disabled domain (or of one this node's catalog does not hold) is not
 * found: it cannot authenticate. Secrets are stored as argon2id hashes; the hash travels as
 * `client_secret` and the provider's secret comparison is replaced to verify against it (see
 * create-oidc-provider.ts and client-secret-cache.ts) — the hash is never a usable secret, and
 * no symmetric algorithm that would key on `client_secret` is enabled.
 *
 * Metadata changes (a rotated secret, new keys, other URIs) give a different object, and
 * oidc-provider caches clients by a hash of their metadata, so every change takes effect on the
 * next request.
 */

import type { Catalog } from '@gatehouse/engine';
import type { Kysely } from 'kysely';
import type { ClientMetadata } from 'oidc-provider';
import type { Database } from '../storage/schema.js';
import { findClientRow, findServiceRow, type ClientRow, type ServiceRow } from './token-plane-reads.js';

/** Gatehouse's own client metadata (oidc-provider `extraClientMetadata.properties`). */
export const GATEHOUSE_CLIENT_METADATA = ['gatehouse_kind', 'gatehouse_domain', 'gatehouse_first_party'] as const;

/** What kind of client a client_id names. */
export type GatehouseClientKind = 'service' | 'client';

/** The Gatehouse facts of a client as oidc-provider holds it (its extra metadata). */
export interface GatehouseClientFacts {
  readonly kind: GatehouseClientKind;
  readonly domain: string;
}

/** Reads the Gatehouse facts off a client oidc-provider found; undefined for any other object. */
export function gatehouseFactsOf(
  client: Readonly<Record<string, unknown>> | undefined,
): GatehouseClientFacts | undefined {
  const kind = client?.gatehouse_kind;
  const domain = client?.gatehouse_domain;
  if ((kind !== 'service' && kind !== 'client') || typeof domain !== 'string') return undefined;
  return { kind, domain };
}

/** Options of a ClientLookup. */
export interface ClientLookupOptions {
  db: Kysely<Database>;
  /** The catalog: a client of a domain it does not hold enabled is not found. */
  catalog: () => Catalog;
  clock: () => Date;
  /**
   * How long a client read from the database is used at most (default 1,000 ms; 0: always read).
   * Within it an entry also stays only while its domain's revision is unchanged (below).
   */
  ttlMs?: number;
  /** Most clients remembered (default 10,000). */
  maxEntries?: number;
}

/** Default ClientLookupOptions.ttlMs. */
export const DEFAULT_CLIENT_CACHE_TTL_MS = 1000;

interface CachedClient {
  readonly row: { kind: 'service'; service: ServiceRow } | { kind: 'client'; client: ClientRow };
  readonly domain: string;
  readonly revision: number;
  readonly atMs: number;
}

/**
 * Finds clients and services by client_id for the token plane (the `Client` adapter's `find`).
 *
 * The token endpoint looks its client up on every request, so what was read is remembered
 * briefly: an entry is used only while the catalog holds its domain at the revision it had when
 * the row was read, and for at most `ttlMs`. Every change to a client or service — a rotated
 * secret, new keys, new redirect URIs, a deletion — is a write in its domain, which bumps the
 * domain's revision; on the node that made it the catalog holds the new revision before the
 * write returns, so the change applies to the next request there. Other nodes see it when their
 * catalog does (the change feed, docs/scale-out.md) or after `ttlMs`, whichever comes first.
 * Unknown ids are never remembered.
 */
export class ClientLookup {
  readonly #db: Kysely<Database>;
  readonly #catalog: () => Catalog;
  readonly #clock: () => Date;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, CachedClient>();

  constructor(options: ClientLookupOptions) {
    this.#db = options.db;
    this.#catalog = options.catalog;
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? DEFAULT_CLIENT_CACHE_TTL_MS;
    this.#maxEntries = options.maxEntries ?? 10_000;
    if (!Number.isFinite(this.#ttlMs) || this.#ttlMs < 0) throw new RangeError('ttlMs must be a finite number ≥ 0');
  }

  /**
   * The metadata of the client or service `clientId`, or undefined when there is none (or none
   * that can authenticate, or its domain is disabled). `usesClientAssertion`: see
   * serviceMetadata. Passes database errors through.
   */
  async find(clientId: string, usesClientAssertion: boolean): Promise<ClientMetadata | undefined> {
    const entry = await this.#entry(clientId);
    if (entry === undefined || this.#catalog().domains.get(entry.domain)?.enabled !== true) return undefined;
    return entry.row.kind === 'service'
      ? serviceMetadata(entry.row.service, usesClientAssertion)
      : oauthClientMetadata(entry.row.client);
  }

  /** Forgets every remembered client. */
  clear(): void {
    this.#entries.clear();
  }

  async #entry(clientId: string): Promise<CachedClient | undefined> {
    const nowMs = this.#clock().getTime();
    const cached = this.#entries.get(clientId);
    if (cached !== undefined) {
      if (
        this.#catalog().domains.get(cached.domain)?.revision === cached.revision &&
        nowMs - cached.atMs < this.#ttlMs
      ) {
        return cached;
      }
      this.#entries.delete(clientId);
    }
    // The catalog as it was before the queries (it is replaced whole on every change): a write
    // landing meanwhile leaves the entry tagged with an older revision, so it is read again.
    const before = this.#catalog();
    // A lower-case dotted id may be a service; ids are unique across services and clients.
    const service = await findServiceRow(this.#db, clientId);
    const row =
      service !== undefined
        ? { kind: 'service' as const, service }
        : await findClientRow(this.#db, clientId).then((client) =>
            client === undefined ? undefined : { kind: 'client' as const, client },
          );
    if (row === undefined) return undefined;
    const domain = row.kind === 'service' ? row.service.domain : row.client.domain;
    const revision = before.domains.get(domain)?.revision;
    if (revision === undefined) return undefined;
    const entry: CachedClient = { row, domain, revision, atMs: nowMs };
    if (this.#ttlMs > 0 && this.#maxEntries > 0) {
      if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value as string);
      this.#entries.set(clientId, entry);
    }
    return entry;
  }
}

/** A service: client credentials only (RFC 6749 §4.4). Undefined when it has no way to authenticate. */
export function serviceMetadata(service: ServiceRow, usesClientAssertion: boolean): ClientMetadata | undefined {
  const hasKeys = service.publicKeys.length > 0;
  const hasSecret = service.secretHash !== null;
  if (!hasKeys && !hasSecret) return undefined;
  const byKey = hasKeys && (!hasSecret || usesClientAssertion);
  return {
    client_id: `${service.domain}.${service.name}`,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    // client_secret_basic also admits client_secret_post (oidc-provider's client_auth.js).
    token_endpoint_auth_method: byKey ? 'private_key_jwt' : 'client_secret_basic',
    ...(byKey ? { jwks: { keys: service.publicKeys.map((k) => ({ ...k })) } } : { client_secret: service.secretHash }),
    gatehouse_kind: 'service',
    gatehouse_domain: service.domain,
  };
}

/**
 * An OAuth client. Its client_credentials grant is dropped when its id, lower-cased, is a user's
 * principal name (`user.…`): client-credentials tokens carry the client_id as `sub`, and the
 * management API and the PDP take `sub` as the caller (docs/oidc.md "Limits").
 */
export function oauthClientMetadata(client: ClientRow): ClientMetadata {
  const isPublic = client.type === 'public';
  const grantTypes = client.grantTypes.filter(
    (g) => g !== 'client_credentials' || !client.clientId.toLowerCase().startsWith('user.'),
  );
  return {
    client_id: client.clientId,
    ...(client.name !== null ? { client_name: client.name } : {}),
    grant_types: grantTypes,
    response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
    redirect_uris: [...client.redirectUris],
    post_logout_redirect_uris: [...client.postLogoutRedirectUris],
    // RFC 8252 §7.3: a public client redirecting only to http loopback addresses is a native
    // app, whose redirect port may vary (oidc-provider compares those URIs without the port).
    application_type:
      isPublic && client.redirectUris.length > 0 && client.redirectUris.every(isLoopbackHttp) ? 'native' : 'web',
    token_endpoint_auth_method: isPublic ? 'none' : 'client_secret_basic',
    ...(!isPublic && client.secretHash !== null ? { client_secret: client.secretHash } : {}),
    gatehouse_kind: 'client',
    gatehouse_domain: client.domain,
    gatehouse_first_party: client.firstParty,
  };
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

function isLoopbackHttp(uri: string): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  return url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
}
