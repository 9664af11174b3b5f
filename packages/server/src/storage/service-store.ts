/**
 * Services: machine principals `<domain>.<name>` (config-format.md `services`), whose OAuth
 * client_id is that principal name. They authenticate with a secret (stored only as an argon2id
 * hash; a generated one is returned once) and/or public JWKs (private_key_jwt). Every write goes
 * through Store.writeInDomain: it bumps the domain's revision and is audited.
 *
 * Contract: ValidationError for bad input (paths relative to the input); ConflictError
 * `service.exists`, `service.client_id_taken`; NotFoundError `domain.not_found` /
 * `service.not_found`; PreconditionFailedError `revision.stale`. Records and audit events never
 * carry a secret or its hash, only `hasSecret`.
 */

import { validatePrincipalName, type PrincipalModel } from '@gatehouse/engine';
import type { Transaction } from 'kysely';
import { notifyChange } from './change-notice.js';
import { ConflictError, NotFoundError, PreconditionFailedError } from './errors.js';
import { explainConflict } from './explain-conflict.js';
import { IssueCollector } from './issue-collector.js';
import type { Queryable } from './load-domain-model.js';
import { listInDomain } from './paginate.js';
import type { Database, ServicesTable } from './schema.js';
import { generateSecret, SecretHasher, validateSecret } from './secret-hasher.js';
import type { DomainWrite, ListOptions, Page, Store, WriteContext } from './store.js';

/** Limits on service fields. */
export const SERVICE_LIMITS = {
  description: 1024,
  publicKeys: 20,
  /** Characters of one JWK as JSON. */
  publicKey: 8192,
  kid: 256,
} as const;

/** A public JSON Web Key (RFC 7517). */
export type PublicJwk = Record<string, unknown> & { kty: string };

/** A service as the API shows it (never the secret or its hash). */
export interface ServiceRecord {
  domain: string;
  name: string;
  /** `<domain>.<name>`: the principal name and the OAuth client_id. */
  principal: string;
  description: string | null;
  publicKeys: PublicJwk[];
  hasSecret: boolean;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/**
 * What createService takes. `secret`: a string is used as given; null means none; absent means
 * generate one — unless `publicKeys` are given, so that a key-only service gets no secret nobody
 * asked for.
 */
export interface ServiceInput {
  name: string;
  description?: string | null | undefined;
  secret?: string | null | undefined;
  publicKeys?: Record<string, unknown>[] | undefined;
}

/** What updateService changes: the fields present (`publicKeys` replaces the list). */
export interface ServicePatch {
  description?: string | null | undefined;
  publicKeys?: Record<string, unknown>[] | undefined;
}

/** A service write; `secret` is present only when one was generated — shown this once. */
export type ServiceWrite = DomainWrite<ServiceRecord> & { secret?: string };

/** Options of ServiceStore. */
export interface ServiceStoreOptions {
  /** Hashes secrets (default: argon2id at OWASP_ARGON2ID). */
  hasher?: SecretHasher;
  /** Generates secrets (default: 32 random bytes, base64url). */
  generateSecret?: () => string;
}

/** JWK members that only private or symmetric keys have (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** The members each public key type needs, and the curves it may have (RFC 7518 §6, RFC 8037 §2). */
const JWK_TYPES: Record<string, { members: string[]; curves?: string[] }> = {
  RSA: { members: ['n', 'e'] },
  EC: { members: ['crv', 'x', 'y'], curves: ['P-256', 'P-384', 'P-521'] },
  OKP: { members: ['crv', 'x'], curves: ['Ed25519', 'Ed448'] },
};

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Checks a list of public JWKs at `path`, adding issues with the codes
 * (`service.invalid_public_key`, `service.private_key`). Returns the keys, or undefined.
 */
function checkPublicKeys(c: IssueCollector, value: unknown, path: string): PublicJwk[] | undefined {
  const list = c.list(value, path, 'service.invalid_public_key', SERVICE_LIMITS.publicKeys);
  if (list === undefined) return undefined;
  const kids = new Set<string>();
  const keys: PublicJwk[] = [];
  const before = c.issues.length;
  list.forEach((v, i) => {
    const p = `${path}[${i}]`;
    const jwk = c.jsonObject(v, p, 'service.invalid_public_key', SERVICE_LIMITS.publicKey);
    if (jwk === undefined) return;
    const privateMembers = PRIVATE_JWK_MEMBERS.filter((m) => m in jwk);
    if (privateMembers.length > 0) {
      c.add(
        p,
        'service.private_key',
        `${p} is a private or symmetric key (it has ${privateMembers.join(', ')}); give the public key only`,
      );
      return;
    }
    const type = typeof jwk.kty === 'string' ? JWK_TYPES[jwk.kty] : undefined;
    if (type === undefined) {
      c.add(`${p}.kty`, 'service.invalid_public_key', `${p}.kty must be RSA, EC or OKP`);
      return;
    }
    for (const m of type.members) {
      const v = jwk[m];
      if (typeof v !== 'string' || (m !== 'crv' && !BASE64URL.test(v))) {
        c.add(`${p}.${m}`, 'service.invalid_public_key', `a ${String(jwk.kty)} key needs ${m} (base64url)`);
      }
    }
    if (type.curves && typeof jwk.crv === 'string' && !type.curves.includes(jwk.crv)) {
      c.add(
        `${p}.crv`,
        'service.invalid_public_key',
        `curve "${jwk.crv}" is not one of ${type.curves.join(', ')} for a ${String(jwk.kty)} key`,
      );
    }
    if (jwk.use !== undefined && jwk.use !== 'sig') {
      c.add(`${p}.use`, 'service.invalid_public_key', `${p}.use must be "sig": the key verifies client assertions`);
    }
    if (jwk.kid !== undefined) {
      const kid = c.text(jwk.kid, `${p}.kid`, { code: 'service.invalid_public_key', max: SERVICE_LIMITS.kid });
      if (kid !== undefined) {
        if (kids.has(kid)) c.add(`${p}.kid`, 'service.invalid_public_key', `kid "${kid}" is used by two keys`);
        kids.add(kid);
      }
    }
    keys.push(jwk as PublicJwk);
  });
  return c.issues.length === before ? keys : undefined;
}

/** Checks a service name of `domain`: one label, and `<domain>.<name>` a principal name. */
function checkServiceName(c: IssueCollector, domain: string, value: unknown): string | undefined {
  const name = c.label(value, 'name', 'service.invalid_name', 'service name');
  if (name === undefined) return undefined;
  if (domain === 'user' || domain.startsWith('user.')) {
    c.add('name', 'service.reserved_domain', `domain "${domain}" holds users: ${domain}.${name} would be a user`);
    return undefined;
  }
  const problem = validatePrincipalName(`${domain}.${name}`);
  if (problem) {
    c.add('name', 'service.invalid_name', problem.message);
    return undefined;
  }
  return name;
}

function checkDescription(c: IssueCollector, value: unknown): string | null | undefined {
  if (value === undefined || value === null) return value;
  return c.text(value, 'description', { code: 'service.invalid_description', max: SERVICE_LIMITS.description });
}

function serviceRecord(row: ServicesTable): ServiceRecord {
  return {
    domain: row.domain,
    name: row.name,
    principal: `${row.domain}.${row.name}`,
    description: row.description,
    publicKeys: JSON.parse(row.public_keys) as PublicJwk[],
    hasSecret: row.secret_hash !== null,
    revision: row.revision,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Every service as a principal (`<domain>.<name>`), ordered by name, for the decision catalog. */
export async function loadServicesAsPrincipals(db: Queryable): Promise<PrincipalModel[]> {
  const rows = await db.selectFrom('services').select(['domain', 'name']).orderBy('domain').orderBy('name').execute();
  return rows.map((r) => ({ name: `${r.domain}.${r.name}`, attributes: {} }));
}

/** The storage of services. */
export class ServiceStore {
  readonly hasher: SecretHasher;
  private readonly newSecret: () => string;

  constructor(
    readonly store: Store,
    options: ServiceStoreOptions = {},
  ) {
    this.hasher = options.hasher ?? new SecretHasher();
    this.newSecret = options.generateSecret ?? generateSecret;
  }

  /** Creates a service; returns the generated secret once (see ServiceInput). */
  async createService(domain: string, input: ServiceInput, ctx: WriteContext): Promise<ServiceWrite> {
    const d = String(domain).toLowerCase();
    const c = new IssueCollector();
    const name = checkServiceName(c, d, input.name);
    const description = checkDescription(c, input.description);
    const publicKeys = input.publicKeys === undefined ? [] : checkPublicKeys(c, input.publicKeys, 'publicKeys');
    let secret: string | undefined;
    let generated = false;
    if (input.secret !== undefined && input.secret !== null) {
      const problem = validateSecret(input.secret);
      if (problem) c.add('secret', 'service.invalid_secret', `secret ${problem}`);
      else secret = input.secret;
    } else if (input.secret === undefined && (publicKeys?.length ?? 0) === 0) {
      secret = this.newSecret();
      generated = true;
    }
    c.throwIfAny();
    const n = name as string;
    const secretHash = secret === undefined ? null : await this.hasher.hash(secret);
    const write = this.store.writeInDomain(d, ctx, async (tx, now) => {
      const conflict = await this.conflictOf(tx, d, n);
      if (conflict) throw conflict;
      await tx
        .insertInto('services')
        .values({
          domain: d,
          name: n,
          description: description ?? null,
          secret_hash: secretHash,
          public_keys: JSON.stringify(publicKeys ?? []),
          revision: 1,
          created_at: now,
          updated_at: now,
        })
        .execute();
      // The domain's notice recompiles it elsewhere; this one updates the nodes' directories.
      await notifyChange(tx, this.store.database.kind, { kind: 'service', principal: `${d}.${n}` });
      const record = await this.getServiceIn(tx, d, n);
      return {
        record,
        audit: { action: 'service.create', objectType: 'service', objectName: n, before: null, after: record },
      };
    });
    const result = await explainConflict(
      () => write,
      () => this.conflictOf(this.store.db, d, n),
    );
    return generated ? { ...result, secret: secret as string } : result;
  }

  /** Gets a service; NotFoundError when the domain or the service does not exist. */
  async getService(domain: string, name: string): Promise<ServiceRecord> {
    const d = String(domain).toLowerCase();
    await this.store.getDomain(d);
    return this.getServiceIn(this.store.db, d, String(name).toLowerCase());
  }

  /** The service whose principal name (= client_id) is `principal`, if any (`library.indexer`). */
  async findServiceByPrincipal(principal: string): Promise<ServiceRecord | undefined> {
    const lower = String(principal).toLowerCase();
    const dot = lower.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const row = await this.store.db
      .selectFrom('services')
      .selectAll()
      .where('domain', '=', lower.slice(0, dot))
      .where('name', '=', lower.slice(dot + 1))
      .executeTakeFirst();
    return row === undefined ? undefined : serviceRecord(row);
  }

  /** Lists a domain's services by name. */
  async listServices(domain: string, options: ListOptions = {}): Promise<Page<ServiceRecord>> {
    const d = String(domain).toLowerCase();
    await this.store.getDomain(d);
    const page = await listInDomain(this.store.db, 'services', 'name', d, options);
    return { ...page, items: page.items.map(serviceRecord) };
  }

  /** Changes a service's description and/or public keys (optionally only from `expectedRevision`). */
  async updateService(
    domain: string,
    name: string,
    patch: ServicePatch,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<ServiceRecord>> {
    const d = String(domain).toLowerCase();
    const n = String(name).toLowerCase();
    const c = new IssueCollector();
    const description = checkDescription(c, patch.description);
    const publicKeys = patch.publicKeys === undefined ? undefined : checkPublicKeys(c, patch.publicKeys, 'publicKeys');
    c.throwIfAny();
    return this.store.writeInDomain(d, ctx, async (tx, now) => {
      const before = await this.getServiceIn(tx, d, n);
      const set: Partial<ServicesTable> = { updated_at: now };
      if (description !== undefined) set.description = description;
      if (publicKeys !== undefined) set.public_keys = JSON.stringify(publicKeys);
      await this.bump(tx, d, n, expectedRevision, before.revision, set);
      const record = await this.getServiceIn(tx, d, n);
      return {
        record,
        audit: { action: 'service.update', objectType: 'service', objectName: n, before, after: record },
      };
    });
  }

  /**
   * Replaces a service's secret: with `secret` given, by that one; else by a generated one,
   * returned once. The old secret stops working at once.
   */
  async rotateServiceSecret(
    domain: string,
    name: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
    options: { secret?: string | undefined } = {},
  ): Promise<ServiceWrite> {
    const d = String(domain).toLowerCase();
    const n = String(name).toLowerCase();
    if (options.secret !== undefined) {
      const problem = validateSecret(options.secret);
      if (problem) {
        const c = new IssueCollector();
        c.add('secret', 'service.invalid_secret', `secret ${problem}`);
        c.throwIfAny();
      }
    }
    const secret = options.secret ?? this.newSecret();
    const secretHash = await this.hasher.hash(secret);
    const result = await this.store.writeInDomain(d, ctx, async (tx, now) => {
      const before = await this.getServiceIn(tx, d, n);
      await this.bump(tx, d, n, expectedRevision, before.revision, { secret_hash: secretHash, updated_at: now });
      const record = await this.getServiceIn(tx, d, n);
      return {
        record,
        audit: { action: 'service.rotate_secret', objectType: 'service', objectName: n, before, after: record },
      };
    });
    return options.secret === undefined ? { ...result, secret } : result;
  }

  /** Deletes a service (optionally only from `expectedRevision`). */
  async deleteService(
    domain: string,
    name: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<null>> {
    const d = String(domain).toLowerCase();
    const n = String(name).toLowerCase();
    return this.store.writeInDomain(d, ctx, async (tx) => {
      const before = await this.getServiceIn(tx, d, n);
      await this.bump(tx, d, n, expectedRevision, before.revision, {});
      await tx.deleteFrom('services').where('domain', '=', d).where('name', '=', n).execute();
      await notifyChange(tx, this.store.database.kind, { kind: 'service', principal: `${d}.${n}` });
      return {
        record: null,
        audit: { action: 'service.delete', objectType: 'service', objectName: n, before, after: null },
      };
    });
  }

  /**
   * True when `secret` is the service's secret. False for a wrong secret, an unknown service or
   * one without a secret — after the time of a real check.
   */
  async verifyServiceSecret(domain: string, name: string, secret: string): Promise<boolean> {
    const row = await this.store.db
      .selectFrom('services')
      .select('secret_hash')
      .where('domain', '=', String(domain).toLowerCase())
      .where('name', '=', String(name).toLowerCase())
      .executeTakeFirst();
    const ok = await this.hasher.verify(row?.secret_hash, typeof secret === 'string' ? secret : '');
    return ok && typeof secret === 'string';
  }

  // ---- internals ---------------------------------------------------------------------------

  /** The ConflictError creating service `name` of `domain` meets, if any. */
  private async conflictOf(db: Queryable, domain: string, name: string): Promise<ConflictError | undefined> {
    const s = await db
      .selectFrom('services')
      .select('name')
      .where('domain', '=', domain)
      .where('name', '=', name)
      .executeTakeFirst();
    if (s) return new ConflictError('service.exists', `service ${domain}.${name} already exists`);
    // A service's client_id is its principal name: no OAuth client may have it too, in any case
    // (client ids are ASCII, so SQL lower() is the same on both databases).
    const client = await db
      .selectFrom('clients')
      .select(['client_id', 'domain'])
      .where((eb) => eb(eb.fn<string>('lower', ['client_id']), '=', `${domain}.${name}`))
      .executeTakeFirst();
    if (client) {
      return new ConflictError(
        'service.client_id_taken',
        `client id "${client.client_id}" (the principal name of service ${domain}.${name}) is taken by a client of domain ${client.domain}`,
      );
    }
    return undefined;
  }

  /**
   * Moves the service to its next revision with `set`, only from `expected` when given: a
   * conditional UPDATE, so of concurrent writes from one revision exactly one wins.
   */
  private async bump(
    tx: Transaction<Database>,
    domain: string,
    name: string,
    expected: number | undefined,
    current: number,
    set: Partial<ServicesTable>,
  ): Promise<void> {
    const r = await tx
      .updateTable('services')
      .set({ ...set, revision: current + 1 })
      .where('domain', '=', domain)
      .where('name', '=', name)
      .where('revision', '=', expected ?? current)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) {
      throw new PreconditionFailedError(
        'revision.stale',
        `service ${domain}.${name} is at revision ${current}, not ${String(expected)}`,
        current,
      );
    }
  }

  private async getServiceIn(db: Queryable, domain: string, name: string): Promise<ServiceRecord> {
    const row = await db
      .selectFrom('services')
      .selectAll()
      .where('domain', '=', domain)
      .where('name', '=', name)
      .executeTakeFirst();
    if (row === undefined) {
      throw new NotFoundError('service.not_found', `service "${name}" does not exist in domain ${domain}`);
    }
    return serviceRecord(row);
  }
}
