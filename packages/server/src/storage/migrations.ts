/**
 * Forward-only migrations, run at start-up (and by `gatehouse migrate`). Each is written once
 * with Kysely's schema builder using column types both SQLite and PostgreSQL accept, and never
 * changed after it ships: a new change is a new migration.
 */

import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

const initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('domains')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('description', 'text')
      .addColumn('enabled', 'integer', (c) => c.notNull())
      .addColumn('attributes', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('roles')
      .addColumn('domain', 'text', (c) => c.notNull().references('domains.name').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('trust', 'text')
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('roles_pk', ['domain', 'name'])
      .execute();
    await db.schema
      .createTable('groups')
      .addColumn('domain', 'text', (c) => c.notNull().references('domains.name').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('parent', 'text')
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('groups_pk', ['domain', 'name'])
      .execute();
    await db.schema
      .createTable('members')
      .addColumn('domain', 'text', (c) => c.notNull().references('domains.name').onDelete('cascade'))
      .addColumn('owner_kind', 'text', (c) => c.notNull())
      .addColumn('owner_name', 'text', (c) => c.notNull())
      .addColumn('member', 'text', (c) => c.notNull())
      .addColumn('expires', 'text')
      .addColumn('disabled', 'integer', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('include_subgroups', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('members_pk', ['domain', 'owner_kind', 'owner_name', 'member'])
      .execute();
    await db.schema.createIndex('members_by_member').on('members').columns(['member']).execute();
    await db.schema
      .createTable('policies')
      .addColumn('domain', 'text', (c) => c.notNull().references('domains.name').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('active', 'integer', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('assertions', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('policies_pk', ['domain', 'name', 'version'])
      .execute();
    await db.schema
      .createTable('resources')
      .addColumn('domain', 'text', (c) => c.notNull().references('domains.name').onDelete('cascade'))
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('properties', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('resources_pk', ['domain', 'type', 'id'])
      .execute();
    await db.schema
      .createTable('users')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('email', 'text', (c) => c.unique())
      .addColumn('display_name', 'text')
      .addColumn('password_hash', 'text')
      .addColumn('attributes', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('user_external_ids')
      .addColumn('external_id', 'text', (c) => c.primaryKey())
      .addColumn('user_name', 'text', (c) => c.notNull().references('users.name').onDelete('cascade'))
      .execute();
    await db.schema
      .createTable('services')
      .addColumn('domain', 'text', (c) => c.notNull().references('domains.name').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('secret_hash', 'text')
      .addColumn('public_keys', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('services_pk', ['domain', 'name'])
      .execute();
    await db.schema
      .createTable('apis')
      .addColumn('domain', 'text', (c) => c.notNull().references('domains.name').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('audience', 'text', (c) => c.notNull().unique())
      .addColumn('scopes', 'text', (c) => c.notNull())
      .addColumn('permissions_claim', 'integer', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('apis_pk', ['domain', 'name'])
      .execute();
    await db.schema
      .createTable('clients')
      .addColumn('client_id', 'text', (c) => c.primaryKey())
      .addColumn('domain', 'text', (c) => c.notNull().references('domains.name').onDelete('cascade'))
      .addColumn('name', 'text')
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('secret_hash', 'text')
      .addColumn('redirect_uris', 'text', (c) => c.notNull())
      .addColumn('post_logout_redirect_uris', 'text', (c) => c.notNull())
      .addColumn('grant_types', 'text', (c) => c.notNull())
      .addColumn('first_party', 'integer', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('audit_events')
      .addColumn('seq', 'bigint', (c) => c.primaryKey())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('domain', 'text')
      .addColumn('object_type', 'text', (c) => c.notNull())
      .addColumn('object_name', 'text', (c) => c.notNull())
      .addColumn('before', 'text')
      .addColumn('after', 'text')
      .addColumn('request_id', 'text')
      .addColumn('prev_hash', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_by_domain').on('audit_events').columns(['domain', 'seq']).execute();
    await db.schema.createIndex('audit_by_actor').on('audit_events').columns(['actor', 'seq']).execute();
    await db.schema
      .createTable('audit_head')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await sql`insert into audit_head (id, seq, hash) values (1, 0, ${GENESIS_HASH})`.execute(db);
    await db.schema
      .createTable('keys')
      .addColumn('kid', 'text', (c) => c.primaryKey())
      .addColumn('purpose', 'text', (c) => c.notNull())
      .addColumn('alg', 'text', (c) => c.notNull())
      .addColumn('public_jwk', 'text', (c) => c.notNull())
      .addColumn('private_jwk', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('retired_at', 'text')
      .addColumn('expires_at', 'text')
      .execute();
  },
};

/** The hash the audit chain starts from. */
export const GENESIS_HASH = '0'.repeat(64);

const oneCurrentKey: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    // At most one current (not retired) signing key per purpose, enforced by the database.
    await db.schema
      .createIndex('keys_one_current')
      .on('keys')
      .column('purpose')
      .unique()
      .where(sql.ref('retired_at'), 'is', null)
      .execute();
  },
};

const oidcPayloads: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    // oidc-provider's state (tokens, codes, grants, sessions, interactions…), one row per model
    // instance; see oidc/database-adapter.ts. Instants are epoch milliseconds (bigint).
    await db.schema
      .createTable('oidc_payloads')
      .addColumn('model', 'text', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('grant_id', 'text')
      .addColumn('user_code', 'text')
      .addColumn('uid', 'text')
      .addColumn('expires_at', 'bigint')
      .addColumn('consumed_at', 'bigint')
      .addPrimaryKeyConstraint('oidc_payloads_pk', ['model', 'id'])
      .execute();
    // Partial indexes: most rows have no grant, no user code and no uid.
    await db.schema
      .createIndex('oidc_payloads_by_grant')
      .on('oidc_payloads')
      .column('grant_id')
      .where(sql.ref('grant_id'), 'is not', null)
      .execute();
    await db.schema
      .createIndex('oidc_payloads_by_uid')
      .on('oidc_payloads')
      .columns(['model', 'uid'])
      .where(sql.ref('uid'), 'is not', null)
      .execute();
    await db.schema
      .createIndex('oidc_payloads_by_user_code')
      .on('oidc_payloads')
      .columns(['model', 'user_code'])
      .where(sql.ref('user_code'), 'is not', null)
      .execute();
    // The purge deletes the oldest expired rows first, a bounded batch at a time.
    await db.schema
      .createIndex('oidc_payloads_by_expiry')
      .on('oidc_payloads')
      .column('expires_at')
      .where(sql.ref('expires_at'), 'is not', null)
      .execute();
  },
};

/** Every migration, in order. Names sort in the order they run. */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_initial': initial,
  '0002_keys_one_current': oneCurrentKey,
  '0003_oidc_payloads': oidcPayloads,
};

/** Serves MIGRATIONS to Kysely's Migrator. */
export const migrationProvider: MigrationProvider = {
  getMigrations: async () => ({ ...MIGRATIONS }),
};
