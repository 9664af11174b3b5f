/**
 * The database schema as Kysely sees it. The same tables on SQLite and PostgreSQL: text, integer
 * and bigint columns only — booleans are 0/1, instants are RFC 3339 text, JSON is text — so that
 * every query is the same on both.
 */

import type { Generated } from 'kysely';

/** A domain. `revision` increases with every change inside the domain. */
export interface DomainsTable {
  name: string;
  description: string | null;
  enabled: number;
  attributes: string;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** A role of a domain; its members are in `members`. */
export interface RolesTable {
  domain: string;
  name: string;
  description: string | null;
  trust: string | null;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** A group of a domain; its members are in `members`. */
export interface GroupsTable {
  domain: string;
  name: string;
  description: string | null;
  parent: string | null;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** A member entry of a role (`owner_kind` 'role') or a group ('group'). */
export interface MembersTable {
  domain: string;
  owner_kind: 'role' | 'group';
  owner_name: string;
  member: string;
  expires: string | null;
  disabled: number;
  state: 'approved' | 'pending';
  include_subgroups: number;
  created_at: string;
}

/** One version of a policy; `version` is '' for an unversioned policy. */
export interface PoliciesTable {
  domain: string;
  name: string;
  version: string;
  active: number;
  description: string | null;
  assertions: string;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** A registered resource with stored properties. */
export interface ResourcesTable {
  domain: string;
  type: string;
  id: string;
  properties: string;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** A user (principal `user.<name>`). */
export interface UsersTable {
  name: string;
  email: string | null;
  display_name: string | null;
  password_hash: string | null;
  attributes: string;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** An external id (an upstream IdP's subject) of a user; unique across users. */
export interface UserExternalIdsTable {
  external_id: string;
  user_name: string;
}

/** A service (principal `<domain>.<name>`). */
export interface ServicesTable {
  domain: string;
  name: string;
  description: string | null;
  secret_hash: string | null;
  public_keys: string;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** An API (resource server): audience and permission scopes. */
export interface ApisTable {
  domain: string;
  name: string;
  audience: string;
  scopes: string;
  permissions_claim: number;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** An OAuth client acting for users. */
export interface ClientsTable {
  client_id: string;
  domain: string;
  name: string | null;
  type: 'public' | 'confidential';
  secret_hash: string | null;
  redirect_uris: string;
  post_logout_redirect_uris: string;
  grant_types: string;
  first_party: number;
  revision: number;
  created_at: string;
  updated_at: string;
}

/** One audit event; `seq` is gap-free and `hash` chains each event to the one before. */
export interface AuditEventsTable {
  seq: number | string;
  at: string;
  actor: string;
  action: string;
  domain: string | null;
  object_type: string;
  object_name: string;
  before: string | null;
  after: string | null;
  request_id: string | null;
  prev_hash: string;
  hash: string;
}

/** The head of the audit chain: one row, updated in every audited transaction. */
export interface AuditHeadTable {
  id: number;
  seq: number | string;
  hash: string;
}

/** Signing keys; private keys encrypted when a master key is set. */
export interface KeysTable {
  kid: string;
  purpose: 'token' | 'control';
  alg: string;
  public_jwk: string;
  private_jwk: string;
  created_at: string;
  retired_at: string | null;
  expires_at: string | null;
}

/**
 * One stored oidc-provider model instance (oidc/database-adapter.ts): `payload` is its JSON without
 * `consumed`, which lives in `consumed_at`; `grant_id`, `user_code` and `uid` copy the payload's
 * `grantId`, `userCode` and `uid` for lookups. Instants are epoch milliseconds; `expires_at` null
 * means the row does not expire.
 */
export interface OidcPayloadsTable {
  model: string;
  id: string;
  payload: string;
  grant_id: string | null;
  user_code: string | null;
  uid: string | null;
  expires_at: number | null;
  consumed_at: number | null;
}

/** Every table. */
export interface Database {
  domains: DomainsTable;
  roles: RolesTable;
  groups: GroupsTable;
  members: MembersTable;
  policies: PoliciesTable;
  resources: ResourcesTable;
  users: UsersTable;
  user_external_ids: UserExternalIdsTable;
  services: ServicesTable;
  apis: ApisTable;
  clients: ClientsTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  keys: KeysTable;
  oidc_payloads: OidcPayloadsTable;
}

/** Marks a column the database fills in. */
export type DatabaseGenerated<T> = Generated<T>;
