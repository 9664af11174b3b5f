/**
 * The token plane's reads of the control plane's tables: OAuth clients and services as
 * authenticating clients (with their secret hashes, which the stores never hand out), and APIs by
 * audience. Read-only, one small query each, the same on SQLite and PostgreSQL.
 *
 * Contract: every function returns undefined (or an empty list) when nothing matches, including
 * for an input no row can match (too long, NUL, wrong case for a service principal); it never
 * throws for its input, and passes database errors through (oidc-provider answers them as
 * `server_error`, and they are logged with the request id).
 */

import type { Kysely } from 'kysely';
import { CLIENT_LIMITS } from '../storage/client-store.js';
import { API_LIMITS } from '../storage/api-store.js';
import type { Database } from '../storage/schema.js';

/** An OAuth client row, as the token plane needs it. */
export interface ClientRow {
  readonly clientId: string;
  readonly domain: string;
  readonly name: string | null;
  readonly type: 'public' | 'confidential';
  readonly secretHash: string | null;
  readonly redirectUris: readonly string[];
  readonly postLogoutRedirectUris: readonly string[];
  readonly grantTypes: readonly string[];
  readonly firstParty: boolean;
}

/** A service row, as the token plane needs it: its client_id is `<domain>.<name>`. */
export interface ServiceRow {
  readonly domain: string;
  readonly name: string;
  readonly secretHash: string | null;
  readonly publicKeys: readonly Record<string, unknown>[];
}

/** An API row, as the token plane needs it. */
export interface ApiRow {
  readonly domain: string;
  readonly name: string;
  readonly audience: string;
  readonly scopes: readonly string[];
  readonly permissionsClaim: boolean;
}

/** Longest principal name (`<domain>.<name>`): domains and names are bounded well below this. */
const MAX_PRINCIPAL_LENGTH = 1024;

function isLookupKey(value: unknown, max: number): value is string {
  // PostgreSQL text cannot hold NUL: a lookup with one would make the driver throw.
  return typeof value === 'string' && value.length > 0 && value.length <= max && !value.includes('\0');
}

/** The OAuth client with exactly this client_id (ids are case-sensitive, RFC 6749 §2.2). */
export async function findClientRow(db: Kysely<Database>, clientId: string): Promise<ClientRow | undefined> {
  if (!isLookupKey(clientId, CLIENT_LIMITS.clientId)) return undefined;
  const row = await db
    .selectFrom('clients')
    .select([
      'client_id',
      'domain',
      'name',
      'type',
      'secret_hash',
      'redirect_uris',
      'post_logout_redirect_uris',
      'grant_types',
      'first_party',
    ])
    .where('client_id', '=', clientId)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  return {
    clientId: row.client_id,
    domain: row.domain,
    name: row.name,
    type: row.type,
    secretHash: row.secret_hash,
    redirectUris: JSON.parse(row.redirect_uris) as string[],
    postLogoutRedirectUris: JSON.parse(row.post_logout_redirect_uris) as string[],
    grantTypes: JSON.parse(row.grant_types) as string[],
    firstParty: row.first_party === 1,
  };
}

/**
 * The service whose principal name is exactly `clientId` (`library.indexer`). Principal names are
 * stored lower-case and a client_id is case-sensitive, so `Library.Indexer` names no service.
 */
export async function findServiceRow(db: Kysely<Database>, clientId: string): Promise<ServiceRow | undefined> {
  if (!isLookupKey(clientId, MAX_PRINCIPAL_LENGTH) || clientId !== clientId.toLowerCase()) return undefined;
  const dot = clientId.lastIndexOf('.');
  if (dot <= 0 || dot === clientId.length - 1) return undefined;
  const row = await db
    .selectFrom('services')
    .select(['domain', 'name', 'secret_hash', 'public_keys'])
    .where('domain', '=', clientId.slice(0, dot))
    .where('name', '=', clientId.slice(dot + 1))
    .executeTakeFirst();
  if (row === undefined) return undefined;
  return {
    domain: row.domain,
    name: row.name,
    secretHash: row.secret_hash,
    publicKeys: JSON.parse(row.public_keys) as Record<string, unknown>[],
  };
}

/** The API whose audience is exactly `audience`. */
export async function findApiRow(db: Kysely<Database>, audience: string): Promise<ApiRow | undefined> {
  if (!isLookupKey(audience, API_LIMITS.audience)) return undefined;
  const row = await db
    .selectFrom('apis')
    .select(['domain', 'name', 'audience', 'scopes', 'permissions_claim'])
    .where('audience', '=', audience)
    .executeTakeFirst();
  return row === undefined ? undefined : apiRow(row);
}

/** Up to `limit` audiences of `domain`'s APIs, by name. */
export async function listApiAudiences(db: Kysely<Database>, domain: string, limit: number): Promise<string[]> {
  if (!isLookupKey(domain, MAX_PRINCIPAL_LENGTH)) return [];
  const rows = await db
    .selectFrom('apis')
    .select('audience')
    .where('domain', '=', domain)
    .orderBy('name')
    .limit(limit)
    .execute();
  return rows.map((r) => r.audience);
}

function apiRow(row: {
  domain: string;
  name: string;
  audience: string;
  scopes: string;
  permissions_claim: number;
}): ApiRow {
  return {
    domain: row.domain,
    name: row.name,
    audience: row.audience,
    scopes: JSON.parse(row.scopes) as string[],
    permissionsClaim: row.permissions_claim === 1,
  };
}
