/**
 * OAuth clients: applications of a domain acting for users (config-format.md `clients`). A
 * client id is unique across the server. Confidential clients have a secret (stored only as an
 * argon2id hash; a generated one is returned once); public clients have none and use PKCE.
 * Every write goes through Store.writeInDomain: it bumps the domain's revision and is audited.
 *
 * Contract: ValidationError for bad input (paths relative to the input); ConflictError
 * `client.exists`; NotFoundError `domain.not_found` / `client.not_found`;
 * PreconditionFailedError `revision.stale`. Records and audit events never carry a secret or
 * its hash, only `hasSecret`.
 */

import type { Transaction } from 'kysely';
import { ConflictError, NotFoundError, PreconditionFailedError } from './errors.js';
import { explainConflict } from './explain-conflict.js';
import { IssueCollector } from './issue-collector.js';
import type { Queryable } from './load-domain-model.js';
import { listInDomain } from './paginate.js';
import type { ClientsTable, Database } from './schema.js';
import { generateSecret, SecretHasher, validateSecret } from './secret-hasher.js';
import type { DomainWrite, ListOptions, Page, Store, WriteContext } from './store.js';

/** Limits on client fields. */
export const CLIENT_LIMITS = { clientId: 256, name: 256, uri: 2048, uris: 100 } as const;

/** The grant types a client may have. */
export const CLIENT_GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const;

/** A grant type of a client. */
export type ClientGrantType = (typeof CLIENT_GRANT_TYPES)[number];

/** public (PKCE, no secret) or confidential (a secret). */
export type ClientType = 'public' | 'confidential';

/** A client as the API shows it (never the secret or its hash). */
export interface ClientRecord {
  clientId: string;
  domain: string;
  name: string | null;
  type: ClientType;
  hasSecret: boolean;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  grantTypes: ClientGrantType[];
  /** Third-party clients (false) always get the consent page. */
  firstParty: boolean;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/**
 * What createClient takes. A confidential client without `secret` gets a generated one,
 * returned once; a public client must have none. Defaults: grantTypes [authorization_code],
 * no URIs, firstParty false.
 */
export interface ClientInput {
  clientId: string;
  name?: string | null | undefined;
  type: ClientType;
  secret?: string | undefined;
  redirectUris?: string[] | undefined;
  postLogoutRedirectUris?: string[] | undefined;
  grantTypes?: string[] | undefined;
  firstParty?: boolean | undefined;
}

/**
 * What updateClient changes: the fields present (lists replace the stored ones). The type is
 * fixed at creation; the secret changes with rotateClientSecret.
 */
export interface ClientPatch {
  name?: string | null | undefined;
  redirectUris?: string[] | undefined;
  postLogoutRedirectUris?: string[] | undefined;
  grantTypes?: string[] | undefined;
  firstParty?: boolean | undefined;
}

/** A client write; `secret` is present only when one was generated — shown this once. */
export type ClientWrite = DomainWrite<ClientRecord> & { secret?: string };

/** Options of ClientStore. */
export interface ClientStoreOptions {
  /** Hashes secrets (default: argon2id at OWASP_ARGON2ID). */
  hasher?: SecretHasher;
  /** Generates secrets (default: 32 random bytes, base64url). */
  generateSecret?: () => string;
}

// RFC 6749 §2.2 leaves the client id's syntax open; this one needs no escaping anywhere.
const CLIENT_ID = /^[A-Za-z0-9._~-]+$/;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * Checks a redirect URI: absolute, no fragment (RFC 6749 §3.1.2), https — or http on a loopback
 * host for native apps (RFC 8252 §7.3, §8.3). Returns the problem, or undefined.
 */
export function validateRedirectUri(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `"${uri}" is not an absolute URI`;
  }
  if (!/^https?:\/\//i.test(uri)) {
    return `"${uri}" must be an https URI (or http on 127.0.0.1, [::1] or localhost)`;
  }
  if (uri.includes('#')) return `"${uri}" has a fragment (RFC 6749 §3.1.2 forbids it)`;
  // As written, not as WHATWG URL repairs it (`https:///cb` would become https://cb/).
  if (!/^https?:\/\/[^/?#]/i.test(uri) || url.hostname === '') return `"${uri}" has no host`;
  if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname)) {
    return `"${uri}" uses http on a host other than 127.0.0.1, [::1] or localhost; use https`;
  }
  return undefined;
}

function checkUris(c: IssueCollector, value: unknown, path: string): string[] | undefined {
  const list = c.list(value, path, 'client.invalid_redirect_uri', CLIENT_LIMITS.uris);
  if (list === undefined) return undefined;
  const before = c.issues.length;
  const seen = new Set<string>();
  const uris: string[] = [];
  list.forEach((v, i) => {
    const p = `${path}[${i}]`;
    const uri = c.text(v, p, { code: 'client.invalid_redirect_uri', max: CLIENT_LIMITS.uri, noSpace: true });
    if (uri === undefined) return;
    const problem = validateRedirectUri(uri);
    if (problem) c.add(p, 'client.invalid_redirect_uri', `${p}: ${problem}`);
    else if (seen.has(uri)) c.add(p, 'client.duplicate_redirect_uri', `${p}: "${uri}" is listed twice`);
    seen.add(uri);
    uris.push(uri);
  });
  return c.issues.length === before ? uris : undefined;
}

function checkGrantTypes(c: IssueCollector, value: unknown): ClientGrantType[] | undefined {
  const list = c.list(value, 'grantTypes', 'client.invalid_grant_type', CLIENT_GRANT_TYPES.length);
  if (list === undefined) return undefined;
  const before = c.issues.length;
  const out: ClientGrantType[] = [];
  list.forEach((v, i) => {
    const p = `grantTypes[${i}]`;
    if (!(CLIENT_GRANT_TYPES as readonly unknown[]).includes(v)) {
      c.add(p, 'client.invalid_grant_type', `${p} must be one of ${CLIENT_GRANT_TYPES.join(', ')}`);
    } else if (out.includes(v as ClientGrantType)) {
      c.add(p, 'client.invalid_grant_type', `${p}: grant type "${String(v)}" is listed twice`);
    } else out.push(v as ClientGrantType);
  });
  if (c.issues.length === before && out.length === 0) {
    c.add('grantTypes', 'client.invalid_grant_type', 'a client needs at least one grant type');
  }
  return c.issues.length === before ? out : undefined;
}

/** Checks the rules between fields of a client as it would be stored. */
function checkClientShape(
  c: IssueCollector,
  client: { type: ClientType; grantTypes: readonly ClientGrantType[]; redirectUris: readonly string[] },
): void {
  const i = client.grantTypes.indexOf('client_credentials');
  if (client.type === 'public' && i >= 0) {
    c.add(
      `grantTypes[${i}]`,
      'client.invalid_grant_type',
      'client_credentials needs a confidential client: a public client cannot keep a secret',
    );
  }
  if (client.grantTypes.includes('refresh_token') && !client.grantTypes.includes('authorization_code')) {
    c.add(
      'grantTypes',
      'client.invalid_grant_type',
      'refresh_token needs authorization_code: only the code flow issues refresh tokens',
    );
  }
  if (client.grantTypes.includes('authorization_code') && client.redirectUris.length === 0) {
    c.add('redirectUris', 'client.invalid_redirect_uri', 'the authorization_code grant needs a redirect URI');
  }
}

function clientRecord(row: ClientsTable): ClientRecord {
  return {
    clientId: row.client_id,
    domain: row.domain,
    name: row.name,
    type: row.type,
    hasSecret: row.secret_hash !== null,
    redirectUris: JSON.parse(row.redirect_uris) as string[],
    postLogoutRedirectUris: JSON.parse(row.post_logout_redirect_uris) as string[],
    grantTypes: JSON.parse(row.grant_types) as ClientGrantType[],
    firstParty: row.first_party === 1,
    revision: row.revision,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The storage of OAuth clients. */
export class ClientStore {
  readonly hasher: SecretHasher;
  private readonly newSecret: () => string;

  constructor(
    readonly store: Store,
    options: ClientStoreOptions = {},
  ) {
    this.hasher = options.hasher ?? new SecretHasher();
    this.newSecret = options.generateSecret ?? generateSecret;
  }

  /** Creates a client of `domain`; returns the generated secret once (see ClientInput). */
  async createClient(domain: string, input: ClientInput, ctx: WriteContext): Promise<ClientWrite> {
    const d = String(domain).toLowerCase();
    const c = new IssueCollector();
    const clientId = c.text(input.clientId, 'clientId', {
      code: 'client.invalid_client_id',
      max: CLIENT_LIMITS.clientId,
    });
    if (clientId !== undefined && !CLIENT_ID.test(clientId)) {
      c.add('clientId', 'client.invalid_client_id', `client id "${clientId}" may hold only A-Z a-z 0-9 . _ ~ -`);
    } else if (clientId !== undefined && clientId.includes('.') && !clientId.toLowerCase().startsWith(`${d}.`)) {
      // A client-credentials token names its client as `sub`, and decisions match principals by
      // their dotted domain prefix (`library.*`): a client of one domain must never be able to
      // pass for a principal of another (`library.reader` created in domain `shop`, `user.root`).
      c.add(
        'clientId',
        'client.invalid_client_id',
        `client id "${clientId}" has a dot, so it must start with the client's domain: "${d}.…" (or use no dot)`,
      );
    }
    const name = this.checkName(c, input.name);
    const type = input.type;
    if (type !== 'public' && type !== 'confidential') {
      c.add('type', 'client.invalid_type', 'type must be public or confidential');
    }
    const redirectUris = input.redirectUris === undefined ? [] : checkUris(c, input.redirectUris, 'redirectUris');
    const postLogoutRedirectUris =
      input.postLogoutRedirectUris === undefined
        ? []
        : checkUris(c, input.postLogoutRedirectUris, 'postLogoutRedirectUris');
    const grantTypes =
      input.grantTypes === undefined
        ? (['authorization_code'] as ClientGrantType[])
        : checkGrantTypes(c, input.grantTypes);
    const firstParty =
      input.firstParty === undefined ? false : c.boolean(input.firstParty, 'firstParty', 'client.invalid_first_party');
    let secret: string | undefined;
    const given = input.secret !== undefined && input.secret !== null;
    if (type === 'public' && given) {
      c.add('secret', 'client.secret_not_allowed', 'a public client has no secret (it uses PKCE)');
    } else if (type === 'confidential' && given) {
      const problem = validateSecret(input.secret);
      if (problem) c.add('secret', 'client.invalid_secret', `secret ${problem}`);
      else secret = input.secret;
    }
    if (c.ok) checkClientShape(c, { type, grantTypes: grantTypes!, redirectUris: redirectUris! });
    c.throwIfAny();
    const id = clientId as string;
    const generated = type === 'confidential' && secret === undefined;
    if (generated) secret = this.newSecret();
    const secretHash = secret === undefined ? null : await this.hasher.hash(secret);
    const write = this.store.writeInDomain(d, ctx, async (tx, now) => {
      const conflict = await this.conflictOf(tx, id);
      if (conflict) throw conflict;
      await tx
        .insertInto('clients')
        .values({
          client_id: id,
          domain: d,
          name: name ?? null,
          type,
          secret_hash: secretHash,
          redirect_uris: JSON.stringify(redirectUris),
          post_logout_redirect_uris: JSON.stringify(postLogoutRedirectUris),
          grant_types: JSON.stringify(grantTypes),
          first_party: firstParty ? 1 : 0,
          revision: 1,
          created_at: now,
          updated_at: now,
        })
        .execute();
      const record = await this.getClientIn(tx, d, id);
      return {
        record,
        audit: { action: 'client.create', objectType: 'client', objectName: id, before: null, after: record },
      };
    });
    const result = await explainConflict(
      () => write,
      () => this.conflictOf(this.store.db, id),
    );
    return generated ? { ...result, secret: secret as string } : result;
  }

  /** Gets a client of `domain`; NotFoundError when the domain or the client (in it) does not exist. */
  async getClient(domain: string, clientId: string): Promise<ClientRecord> {
    const d = String(domain).toLowerCase();
    await this.store.getDomain(d);
    return this.getClientIn(this.store.db, d, clientId);
  }

  /** The client with this id, whatever its domain (for the token plane); undefined when none. */
  async findClient(clientId: string): Promise<ClientRecord | undefined> {
    const row = await this.store.db
      .selectFrom('clients')
      .selectAll()
      .where('client_id', '=', String(clientId))
      .executeTakeFirst();
    return row === undefined ? undefined : clientRecord(row);
  }

  /** Lists a domain's clients by client id. */
  async listClients(domain: string, options: ListOptions = {}): Promise<Page<ClientRecord>> {
    const d = String(domain).toLowerCase();
    await this.store.getDomain(d);
    const page = await listInDomain(this.store.db, 'clients', 'client_id', d, options);
    return { ...page, items: page.items.map(clientRecord) };
  }

  /** Changes the fields present in `patch` (optionally only from `expectedRevision`). */
  async updateClient(
    domain: string,
    clientId: string,
    patch: ClientPatch,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<ClientRecord>> {
    const d = String(domain).toLowerCase();
    const c = new IssueCollector();
    if ('type' in patch || 'secret' in patch) {
      c.add(
        'type' in patch ? 'type' : 'secret',
        'client.immutable',
        'type' in patch
          ? 'the type of a client is fixed when it is created'
          : 'the secret changes with rotateClientSecret, not with an update',
      );
    }
    const name = patch.name === undefined ? undefined : this.checkName(c, patch.name);
    const redirectUris =
      patch.redirectUris === undefined ? undefined : checkUris(c, patch.redirectUris, 'redirectUris');
    const postLogoutRedirectUris =
      patch.postLogoutRedirectUris === undefined
        ? undefined
        : checkUris(c, patch.postLogoutRedirectUris, 'postLogoutRedirectUris');
    const grantTypes = patch.grantTypes === undefined ? undefined : checkGrantTypes(c, patch.grantTypes);
    const firstParty =
      patch.firstParty === undefined
        ? undefined
        : c.boolean(patch.firstParty, 'firstParty', 'client.invalid_first_party');
    c.throwIfAny();
    return this.store.writeInDomain(d, ctx, async (tx, now) => {
      const before = await this.getClientIn(tx, d, clientId);
      const shape = new IssueCollector();
      checkClientShape(shape, {
        type: before.type,
        grantTypes: grantTypes ?? before.grantTypes,
        redirectUris: redirectUris ?? before.redirectUris,
      });
      shape.throwIfAny();
      const set: Partial<ClientsTable> = { updated_at: now };
      if (name !== undefined) set.name = name;
      if (redirectUris !== undefined) set.redirect_uris = JSON.stringify(redirectUris);
      if (postLogoutRedirectUris !== undefined) set.post_logout_redirect_uris = JSON.stringify(postLogoutRedirectUris);
      if (grantTypes !== undefined) set.grant_types = JSON.stringify(grantTypes);
      if (firstParty !== undefined) set.first_party = firstParty ? 1 : 0;
      await this.bump(tx, clientId, expectedRevision, before.revision, set);
      const record = await this.getClientIn(tx, d, clientId);
      return {
        record,
        audit: { action: 'client.update', objectType: 'client', objectName: clientId, before, after: record },
      };
    });
  }

  /**
   * Replaces a confidential client's secret: with `secret` given, by that one; else by a
   * generated one, returned once. The old secret stops working at once. A public client has
   * no secret to rotate (ValidationError `client.secret_not_allowed`).
   */
  async rotateClientSecret(
    domain: string,
    clientId: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
    options: { secret?: string | undefined } = {},
  ): Promise<ClientWrite> {
    const d = String(domain).toLowerCase();
    if (options.secret !== undefined) {
      const problem = validateSecret(options.secret);
      if (problem) {
        const c = new IssueCollector();
        c.add('secret', 'client.invalid_secret', `secret ${problem}`);
        c.throwIfAny();
      }
    }
    const secret = options.secret ?? this.newSecret();
    const secretHash = await this.hasher.hash(secret);
    const result = await this.store.writeInDomain(d, ctx, async (tx, now) => {
      const before = await this.getClientIn(tx, d, clientId);
      if (before.type === 'public') {
        const c = new IssueCollector();
        c.add('secret', 'client.secret_not_allowed', `client "${clientId}" is public: it has no secret`);
        c.throwIfAny();
      }
      await this.bump(tx, clientId, expectedRevision, before.revision, { secret_hash: secretHash, updated_at: now });
      const record = await this.getClientIn(tx, d, clientId);
      return {
        record,
        audit: { action: 'client.rotate_secret', objectType: 'client', objectName: clientId, before, after: record },
      };
    });
    return options.secret === undefined ? { ...result, secret } : result;
  }

  /** Deletes a client (optionally only from `expectedRevision`). */
  async deleteClient(
    domain: string,
    clientId: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<null>> {
    const d = String(domain).toLowerCase();
    return this.store.writeInDomain(d, ctx, async (tx) => {
      const before = await this.getClientIn(tx, d, clientId);
      await this.bump(tx, clientId, expectedRevision, before.revision, {});
      await tx.deleteFrom('clients').where('client_id', '=', clientId).execute();
      return {
        record: null,
        audit: { action: 'client.delete', objectType: 'client', objectName: clientId, before, after: null },
      };
    });
  }

  /**
   * True when `secret` is the client's secret. False for a wrong secret, an unknown client or a
   * public one — after the time of a real check.
   */
  async verifyClientSecret(clientId: string, secret: string): Promise<boolean> {
    const row = await this.store.db
      .selectFrom('clients')
      .select('secret_hash')
      .where('client_id', '=', String(clientId))
      .executeTakeFirst();
    const ok = await this.hasher.verify(row?.secret_hash, typeof secret === 'string' ? secret : '');
    return ok && typeof secret === 'string';
  }

  // ---- internals ---------------------------------------------------------------------------

  private checkName(c: IssueCollector, value: unknown): string | null | undefined {
    if (value === undefined || value === null) return value;
    return c.text(value, 'name', { code: 'client.invalid_name', max: CLIENT_LIMITS.name });
  }

  /** The ConflictError creating client `clientId` meets, if any. */
  private async conflictOf(db: Queryable, clientId: string): Promise<ConflictError | undefined> {
    const existing = await db
      .selectFrom('clients')
      .select('domain')
      .where('client_id', '=', clientId)
      .executeTakeFirst();
    if (existing) {
      return new ConflictError(
        'client.exists',
        `client id "${clientId}" is taken by a client of domain ${existing.domain}`,
      );
    }
    // A service's client_id is its principal name `<domain>.<name>`, and principal names are
    // case-insensitive: `Library.Indexer` would name the service too.
    const principal = clientId.toLowerCase();
    const dot = principal.lastIndexOf('.');
    if (dot > 0) {
      const service = await db
        .selectFrom('services')
        .select(['domain', 'name'])
        .where('domain', '=', principal.slice(0, dot))
        .where('name', '=', principal.slice(dot + 1))
        .executeTakeFirst();
      if (service) {
        return new ConflictError(
          'client.exists',
          `client id "${clientId}" is taken by service ${service.domain}.${service.name}`,
        );
      }
    }
    return undefined;
  }

  /**
   * Moves the client to its next revision with `set`, only from `expected` when given: a
   * conditional UPDATE, so of concurrent writes from one revision exactly one wins.
   */
  private async bump(
    tx: Transaction<Database>,
    clientId: string,
    expected: number | undefined,
    current: number,
    set: Partial<ClientsTable>,
  ): Promise<void> {
    const r = await tx
      .updateTable('clients')
      .set({ ...set, revision: current + 1 })
      .where('client_id', '=', clientId)
      .where('revision', '=', expected ?? current)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) {
      throw new PreconditionFailedError(
        'revision.stale',
        `client "${clientId}" is at revision ${current}, not ${String(expected)}`,
        current,
      );
    }
  }

  private async getClientIn(db: Queryable, domain: string, clientId: string): Promise<ClientRecord> {
    const row = await db
      .selectFrom('clients')
      .selectAll()
      .where('client_id', '=', String(clientId))
      .where('domain', '=', domain)
      .executeTakeFirst();
    if (row === undefined) {
      throw new NotFoundError('client.not_found', `client "${clientId}" does not exist in domain ${domain}`);
    }
    return clientRecord(row);
  }
}
