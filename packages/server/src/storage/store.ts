/**
 * The store: every control-plane write as one transaction that changes rows, bumps the domain's
 * revision, validates the resulting domain with the engine (so nothing invalid is ever stored),
 * and appends the audit event. Reads return records; writes return the record and the domain as
 * compiled after the change, so the caller can swap it into the decision catalog.
 *
 * Contract: NotFoundError when the object (or its domain) does not exist; ConflictError when a
 * unique key is taken or a deletion would leave references behind; PreconditionFailedError when
 * an expected revision is stale; ValidationError (with every issue) when the change would make
 * the domain invalid. Each write is atomic: it happens whole or not at all.
 */

import {
  ADMIN_POLICY,
  ADMIN_ROLE,
  adminAssertion,
  compileDomainCollecting,
  parseDomainName,
  type AssertionModel,
  type CompiledDomain,
  type MemberEntry,
  type ModelIssue,
} from '@gatehouse/engine';
import { sql, type Transaction } from 'kysely';
import { appendAudit } from './audit-log.js';
import { notifyChange } from './change-notice.js';
import { ConflictError, constraintKind, NotFoundError, PreconditionFailedError } from './errors.js';
import { loadDomainModel, memberEntryOf, type Queryable } from './load-domain-model.js';
import type { OpenDatabase } from './open-database.js';
import { keyOfCursor, pageLimit, paginate, type ListOptions, type Page } from './paginate.js';
import type { Database } from './schema.js';

/** Who makes a change, for the audit trail. */
export interface WriteContext {
  actor: string;
  requestId?: string | undefined;
}

/** The change would make a domain invalid; carries every issue with its path. */
export class ValidationError extends Error {
  readonly code = 'model.invalid';
  readonly issues: readonly ModelIssue[];
  constructor(issues: readonly ModelIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('; '));
    this.name = 'ValidationError';
    this.issues = issues;
  }
}

export { PAGE_LIMITS, type ListOptions, type Page } from './paginate.js';

/** A domain as the API shows it. */
export interface DomainRecord {
  name: string;
  description: string | null;
  enabled: boolean;
  attributes: Record<string, unknown>;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** A role with its member entries. */
export interface RoleRecord {
  domain: string;
  name: string;
  description: string | null;
  trust: string | null;
  members: MemberEntry[];
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** A group with its member entries. */
export interface GroupRecord {
  domain: string;
  name: string;
  description: string | null;
  parent: string | null;
  members: MemberEntry[];
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** One version of a policy. */
export interface PolicyRecord {
  domain: string;
  name: string;
  version: string | null;
  active: boolean;
  description: string | null;
  assertions: AssertionModel[];
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** The two kinds of member owners: roles (with `trust`) and groups (with `parent`). */
type OwnerKind = 'role' | 'group';
const OWNERS = {
  role: { table: 'roles', link: 'trust' },
  group: { table: 'groups', link: 'parent' },
} as const;
/** A role or a group. */
type OwnerRecord = RoleRecord | GroupRecord;
/** What creating or replacing a role or group takes; `link` is the trust domain or the parent group. */
interface OwnerInput {
  description?: string | null | undefined;
  link?: string | null | undefined;
  members?: MemberEntry[] | undefined;
}

/** The outcome of a write inside a domain. */
export interface DomainWrite<T> {
  record: T;
  /** The domain's revision after the change. */
  revision: number;
  /**
   * The domain as compiled after the change: undefined when the domain was deleted, or inside
   * `transaction({ deferValidation })` (then the transaction's result carries it).
   */
  compiled: CompiledDomain | undefined;
}

function lower(name: string): string {
  return name.toLowerCase();
}

/** The control-plane store over one open database. */
export class Store {
  /** The store's clock (injected in tests). */
  readonly clock: () => Date;

  /** Inside `transaction()`: the open transaction every call of this store runs in. */
  private readonly handle: Transaction<Database> | undefined;
  /** Inside `transaction({ deferValidation })`: domains written and not validated yet. */
  private readonly deferred: Map<string, IssueTarget | undefined> | undefined;

  constructor(
    readonly database: OpenDatabase,
    options: { clock?: () => Date; handle?: Transaction<Database>; deferValidation?: boolean } = {},
  ) {
    this.clock = options.clock ?? (() => new Date());
    this.handle = options.handle;
    this.deferred = options.handle && options.deferValidation ? new Map() : undefined;
  }

  /** The Kysely instance (the open transaction, inside `transaction()`), for reads the store does not wrap. */
  get db(): OpenDatabase['db'] {
    return this.handle ?? this.database.db;
  }

  /**
   * Runs `fn` in a transaction — or, inside `transaction()`, in the transaction already open —
   * so that writes compose: several store calls can make one atomic change.
   */
  run<T>(fn: (tx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.handle ? fn(this.handle) : this.database.db.transaction().execute(fn);
  }

  /**
   * Runs `fn` with a store bound to one transaction: every write it makes commits together or
   * not at all. With `deferValidation`, each written domain is validated once, at the end,
   * instead of after every write (for large changes such as `gatehouse apply`); the domains as
   * compiled then are returned beside `fn`'s result. With `rollback`, everything is done and
   * validated, then undone (a dry run).
   */
  async transaction<T>(
    fn: (store: Store) => Promise<T>,
    options: { deferValidation?: boolean; rollback?: boolean } = {},
  ): Promise<{ result: T; compiled: Map<string, CompiledDomain> }> {
    let outcome: { result: T; compiled: Map<string, CompiledDomain> } | undefined;
    try {
      return await this.translate(() =>
        this.run(async (tx) => {
          const inner = new Store(this.database, {
            clock: this.clock,
            handle: tx,
            deferValidation: options.deferValidation === true,
          });
          const result = await fn(inner);
          const compiled = new Map<string, CompiledDomain>();
          if (inner.deferred) {
            for (const [domain, target] of inner.deferred) {
              const exists = await tx
                .selectFrom('domains')
                .select('name')
                .where('name', '=', domain)
                .executeTakeFirst();
              if (exists !== undefined) compiled.set(domain, await inner.validateDomain(tx, domain, target));
            }
          }
          if (options.rollback) {
            // A dry run: everything was done and validated; now undo it.
            outcome = { result, compiled };
            throw new RollbackSignal();
          }
          return { result, compiled };
        }),
      );
    } catch (err) {
      if (err instanceof RollbackSignal && outcome !== undefined) return outcome;
      throw err;
    }
  }

  /** Resolves when the database answers a trivial query. */
  async ready(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  /** Closes the database. */
  close(): Promise<void> {
    return this.database.close();
  }

  /**
   * Runs `change` in a transaction inside domain `domain`, then bumps the domain's revision,
   * validates the domain as it now stands, and appends the audit event — all or nothing. The
   * building block of every write inside a domain (other modules compose their writes with it).
   * NotFoundError when the domain does not exist; driver constraint errors become ConflictError.
   */
  async writeInDomain<T>(
    domain: string,
    ctx: WriteContext,
    change: (
      tx: Transaction<Database>,
      now: string,
    ) => Promise<{ record: T; audit: DomainAudit; target?: IssueTarget }>,
  ): Promise<DomainWrite<T>> {
    return this.translate(() =>
      this.run(async (tx) => {
        const now = this.clock().toISOString();
        // Bumping first takes the domain's row lock (PostgreSQL): writes to one domain serialise.
        const bumped = await tx
          .updateTable('domains')
          .set({ revision: sql`revision + 1`, updated_at: now })
          .where('name', '=', domain)
          .returning('revision')
          .executeTakeFirst();
        if (bumped === undefined) throw new NotFoundError('domain.not_found', `domain "${domain}" does not exist`);
        // Other nodes reload the domain when (and only if) this transaction commits.
        await notifyChange(tx, this.database.kind, { kind: 'domain', name: domain, revision: bumped.revision });
        const { record, audit, target } = await change(tx, now);
        let compiled: CompiledDomain | undefined;
        if (this.deferred) {
          if (!this.deferred.has(domain)) this.deferred.set(domain, target);
        } else compiled = await this.validateDomain(tx, domain, target);
        await appendAudit(tx, {
          ...audit,
          domain,
          actor: ctx.actor,
          requestId: ctx.requestId,
          at: new Date(now),
        });
        return { record, revision: bumped.revision, compiled };
      }),
    );
  }

  /**
   * Validates a domain as stored inside `tx` (itself and its references to other domains).
   * Issue paths name objects, not positions: `roles[readers].members[0].name`; the paths of
   * `target` (the object being written) are relative to it: `members[0].name`.
   */
  private async validateDomain(
    tx: Transaction<Database>,
    domain: string,
    target?: IssueTarget,
  ): Promise<CompiledDomain> {
    const model = await loadDomainModel(tx, domain);
    if (model === undefined) throw new NotFoundError('domain.not_found', `domain "${domain}" does not exist`);
    const { compiled, issues } = compileDomainCollecting(model);
    for (const ref of compiled.references) {
      const other = await tx.selectFrom('domains').select('name').where('name', '=', ref.domain).executeTakeFirst();
      if (other === undefined) {
        issues.push({ path: ref.path, code: 'domain.not_found', message: `domain "${ref.domain}" does not exist` });
      } else if (ref.kind === 'group' && ref.name !== undefined) {
        const g = await tx
          .selectFrom('groups')
          .select('name')
          .where('domain', '=', ref.domain)
          .where('name', '=', ref.name)
          .executeTakeFirst();
        if (g === undefined) {
          issues.push({
            path: ref.path,
            code: 'group.not_found',
            message: `group "${ref.name}" is not a group of domain ${ref.domain}`,
          });
        }
      }
    }
    if (issues.length > 0) throw new ValidationError(relocateIssues(model, issues, target));
    return compiled;
  }

  /** Maps driver errors to storage errors; everything else passes through. */
  async translate<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const kind = constraintKind(err);
      if (kind === 'unique')
        throw new ConflictError('conflict', 'an object with that name already exists', { cause: err });
      if (kind === 'foreign_key')
        throw new ConflictError('reference.missing', 'the change refers to something that does not exist', {
          cause: err,
        });
      throw err;
    }
  }

  // ---- domains -------------------------------------------------------------------------------

  /**
   * Creates a domain with its built-in `admin` role (members `admins`) and `admin` policy. A
   * subdomain needs its parent. Throws ConflictError when the name is taken.
   */
  async createDomain(
    input: {
      name: string;
      description?: string | null;
      enabled?: boolean;
      attributes?: Record<string, unknown>;
      admins?: MemberEntry[];
    },
    ctx: WriteContext,
  ): Promise<DomainWrite<DomainRecord>> {
    const name = parseDomainName(input.name);
    return this.translate(() =>
      this.run(async (tx) => {
        const now = this.clock().toISOString();
        const dot = name.lastIndexOf('.');
        if (dot > 0) {
          const parent = name.slice(0, dot);
          const p = await tx.selectFrom('domains').select('name').where('name', '=', parent).executeTakeFirst();
          if (p === undefined)
            throw new NotFoundError(
              'domain.parent_not_found',
              `subdomain "${name}" needs its parent domain "${parent}"`,
            );
        }
        const existing = await tx.selectFrom('domains').select('name').where('name', '=', name).executeTakeFirst();
        if (existing !== undefined) throw new ConflictError('domain.exists', `domain "${name}" already exists`);
        await tx
          .insertInto('domains')
          .values({
            name,
            description: input.description ?? null,
            enabled: input.enabled === false ? 0 : 1,
            attributes: JSON.stringify(input.attributes ?? {}),
            revision: 1,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await tx
          .insertInto('roles')
          .values({
            domain: name,
            name: ADMIN_ROLE,
            description: 'Built-in: may do everything in the domain',
            trust: null,
            revision: 1,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await this.insertMembers(tx, name, 'role', ADMIN_ROLE, input.admins ?? [], now);
        await tx
          .insertInto('policies')
          .values({
            domain: name,
            name: ADMIN_POLICY,
            version: '',
            active: 1,
            description: 'Built-in: allow * on the domain to role admin',
            assertions: JSON.stringify([adminAssertion(name)]),
            revision: 1,
            created_at: now,
            updated_at: now,
          })
          .execute();
        let compiled: CompiledDomain | undefined;
        if (this.deferred) this.deferred.set(name, undefined);
        else compiled = await this.validateDomain(tx, name);
        await notifyChange(tx, this.database.kind, { kind: 'domain', name, revision: 1 });
        const record = await this.getDomainIn(tx, name);
        await appendAudit(tx, {
          actor: ctx.actor,
          requestId: ctx.requestId,
          at: new Date(now),
          action: 'domain.create',
          domain: name,
          objectType: 'domain',
          objectName: name,
          before: null,
          after: { ...record, admins: input.admins ?? [] },
        });
        return { record, revision: 1, compiled };
      }),
    );
  }

  private async getDomainIn(db: Queryable, name: string): Promise<DomainRecord> {
    const d = await db.selectFrom('domains').selectAll().where('name', '=', name).executeTakeFirst();
    if (d === undefined) throw new NotFoundError('domain.not_found', `domain "${name}" does not exist`);
    return {
      name: d.name,
      description: d.description,
      enabled: d.enabled === 1,
      attributes: JSON.parse(d.attributes) as Record<string, unknown>,
      revision: d.revision,
      createdAt: d.created_at,
      updatedAt: d.updated_at,
    };
  }

  /** Gets a domain; NotFoundError when it does not exist. */
  getDomain(name: string): Promise<DomainRecord> {
    return this.getDomainIn(this.db, lower(name));
  }

  /** Lists domains by name, optionally under a parent (`prefix.`). */
  async listDomains(options: ListOptions & { parent?: string | undefined } = {}): Promise<Page<DomainRecord>> {
    const limit = pageLimit(options.limit);
    let q = this.db
      .selectFrom('domains')
      .select('name')
      .orderBy('name')
      .limit(limit + 1);
    const after = keyOfCursor(options.cursor);
    if (after !== undefined) q = q.where('name', '>', after);
    if (options.parent !== undefined)
      q = q.where('name', 'like', `${lower(options.parent).replace(/[\\%_]/g, '\\$&')}.%`);
    const rows = await q.execute();
    const page = paginate(rows, limit, (r) => r.name);
    return { ...page, items: await Promise.all(page.items.map((r) => this.getDomainIn(this.db, r.name))) };
  }

  /** Updates a domain's description, enabled flag or attributes. */
  updateDomain(
    name: string,
    patch: { description?: string | null; enabled?: boolean; attributes?: Record<string, unknown> },
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<DomainRecord>> {
    const domain = lower(name);
    return this.writeInDomain(domain, ctx, async (tx) => {
      const before = await this.getDomainIn(tx, domain);
      // The bump already happened: the expected revision is the one before it.
      if (expectedRevision !== undefined && before.revision - 1 !== expectedRevision) {
        throw new PreconditionFailedError(
          'revision.stale',
          `domain "${domain}" is at revision ${before.revision - 1}, not ${expectedRevision}`,
          before.revision - 1,
        );
      }
      const set: Partial<Database['domains']> = {};
      if (patch.description !== undefined) set.description = patch.description;
      if (patch.enabled !== undefined) set.enabled = patch.enabled ? 1 : 0;
      if (patch.attributes !== undefined) set.attributes = JSON.stringify(patch.attributes);
      if (Object.keys(set).length > 0) await tx.updateTable('domains').set(set).where('name', '=', domain).execute();
      const record = await this.getDomainIn(tx, domain);
      return {
        record,
        audit: {
          action: 'domain.update',
          objectType: 'domain',
          objectName: domain,
          before: { ...before, revision: before.revision - 1 },
          after: record,
        },
      };
    });
  }

  /**
   * Deletes a domain and everything inside it. Refused (ConflictError) for reserved domains,
   * domains with subdomains, and domains other domains refer to (trust, group entries).
   */
  async deleteDomain(name: string, expectedRevision: number | undefined, ctx: WriteContext): Promise<void> {
    const domain = lower(name);
    if (['sys', 'sys.auth', 'user'].includes(domain))
      throw new ConflictError('domain.reserved', `domain "${domain}" is reserved`);
    await this.translate(() =>
      this.run(async (tx) => {
        const now = this.clock().toISOString();
        const before = await this.getDomainIn(tx, domain);
        if (expectedRevision !== undefined && before.revision !== expectedRevision) {
          throw new PreconditionFailedError(
            'revision.stale',
            `domain "${domain}" is at revision ${before.revision}, not ${expectedRevision}`,
            before.revision,
          );
        }
        const sub = await tx
          .selectFrom('domains')
          .select('name')
          .where('name', 'like', `${domain.replace(/[\\%_]/g, '\\$&')}.%`)
          .executeTakeFirst();
        if (sub !== undefined)
          throw new ConflictError(
            'domain.has_subdomains',
            `domain "${domain}" has subdomains (${sub.name}); delete them first`,
          );
        await this.refuseIfReferenced(tx, domain, `${domain}:group.`, 'domain');
        const trusting = await tx
          .selectFrom('roles')
          .select(['domain', 'name'])
          .where('trust', '=', domain)
          .executeTakeFirst();
        if (trusting !== undefined) {
          throw new ConflictError(
            'domain.referenced',
            `role ${trusting.domain}:role.${trusting.name} trusts domain "${domain}"`,
          );
        }
        await tx.deleteFrom('domains').where('name', '=', domain).execute();
        // Its services went with it (on delete cascade): other nodes drop those too.
        await notifyChange(tx, this.database.kind, { kind: 'domain', name: domain, revision: null });
        await appendAudit(tx, {
          actor: ctx.actor,
          requestId: ctx.requestId,
          at: new Date(now),
          action: 'domain.delete',
          domain,
          objectType: 'domain',
          objectName: domain,
          before,
          after: null,
        });
      }),
    );
  }

  /** Refuses (ConflictError) when another domain names something starting with `prefix`. */
  private async refuseIfReferenced(
    tx: Transaction<Database>,
    domain: string,
    prefix: string,
    what: string,
  ): Promise<void> {
    const escaped = prefix.replace(/[\\%_]/g, '\\$&');
    const member = await tx
      .selectFrom('members')
      .select(['domain', 'owner_kind', 'owner_name', 'member'])
      .where('domain', '<>', domain)
      .where((eb) => eb.or([eb('member', '=', prefix.replace(/\.$/, '')), eb('member', 'like', `${escaped}%`)]))
      .executeTakeFirst();
    if (member !== undefined) {
      throw new ConflictError(
        `${what}.referenced`,
        `${member.domain}:${member.owner_kind}.${member.owner_name} has the member entry ${member.member}`,
      );
    }
    const policy = await tx
      .selectFrom('policies')
      .select(['domain', 'name'])
      .where('domain', '<>', domain)
      .where('assertions', 'like', `%"group":"${escaped}%`)
      .executeTakeFirst();
    if (policy !== undefined) {
      throw new ConflictError(
        `${what}.referenced`,
        `policy ${policy.domain}:policy.${policy.name} names ${prefix.replace(/\.$/, '')}…`,
      );
    }
  }

  // ---- member entries ----------------------------------------------------------------------

  private async insertMembers(
    tx: Transaction<Database>,
    domain: string,
    kind: 'role' | 'group',
    owner: string,
    members: readonly MemberEntry[],
    now: string,
  ): Promise<void> {
    const seen = new Set<string>();
    for (const m of members) {
      const name = lower(m.name);
      if (seen.has(name))
        throw new ValidationError([
          { path: 'members', code: 'member.duplicate', message: `member "${name}" is listed twice` },
        ]);
      seen.add(name);
    }
    // Insert in chunks: both databases bound the number of parameters per statement.
    const rows = members.map((m) => ({
      domain,
      owner_kind: kind,
      owner_name: owner,
      member: lower(m.name),
      expires: m.expires ?? null,
      disabled: m.disabled ? 1 : 0,
      state: m.state === 'pending' ? ('pending' as const) : ('approved' as const),
      include_subgroups: m.includeSubgroups ? 1 : 0,
      created_at: now,
    }));
    for (let i = 0; i < rows.length; i += 500)
      await tx
        .insertInto('members')
        .values(rows.slice(i, i + 500))
        .execute();
  }

  private async membersOf(
    db: Queryable,
    domain: string,
    kind: 'role' | 'group',
    owner: string,
  ): Promise<MemberEntry[]> {
    const rows = await db
      .selectFrom('members')
      .selectAll()
      .where('domain', '=', domain)
      .where('owner_kind', '=', kind)
      .where('owner_name', '=', owner)
      .orderBy('member')
      .execute();
    return rows.map(memberEntryOf);
  }

  // ---- roles and groups: member owners ------------------------------------------------------
  // Roles and groups are stored alike: a row (with `trust` for roles, `parent` for groups) and
  // member entries in `members`. One implementation serves both.

  private async getOwnerIn(db: Queryable, kind: OwnerKind, domain: string, name: string): Promise<OwnerRecord> {
    const { table, link } = OWNERS[kind];
    const r = (await db
      .selectFrom(table as 'roles')
      .selectAll()
      .where('domain', '=', domain)
      .where('name', '=', name)
      .executeTakeFirst()) as (Database['roles'] & Database['groups']) | undefined;
    if (r === undefined)
      throw new NotFoundError(`${kind}.not_found`, `${kind} "${name}" does not exist in domain ${domain}`);
    return {
      domain,
      name: r.name,
      description: r.description,
      [link]: r[link],
      members: await this.membersOf(db, domain, kind, r.name),
      revision: r.revision,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    } as unknown as OwnerRecord;
  }

  private async getOwner(kind: OwnerKind, domain: string, name: string): Promise<OwnerRecord> {
    const d = lower(domain);
    await this.getDomainIn(this.db, d);
    return this.getOwnerIn(this.db, kind, d, lower(name));
  }

  private async listOwners(kind: OwnerKind, domain: string, options: ListOptions): Promise<Page<OwnerRecord>> {
    const d = lower(domain);
    await this.getDomainIn(this.db, d);
    const limit = pageLimit(options.limit);
    let q = this.db
      .selectFrom(OWNERS[kind].table as 'roles')
      .select('name')
      .where('domain', '=', d)
      .orderBy('name')
      .limit(limit + 1);
    const after = keyOfCursor(options.cursor);
    if (after !== undefined) q = q.where('name', '>', after);
    const page = paginate(await q.execute(), limit, (r) => r.name);
    return { ...page, items: await Promise.all(page.items.map((r) => this.getOwnerIn(this.db, kind, d, r.name))) };
  }

  private createOwner(
    kind: OwnerKind,
    domain: string,
    input: OwnerInput & { name: string },
    ctx: WriteContext,
  ): Promise<DomainWrite<OwnerRecord>> {
    const { table, link } = OWNERS[kind];
    const d = lower(domain);
    const name = lower(input.name);
    return this.writeInDomain(d, ctx, async (tx, now) => {
      const exists = await tx
        .selectFrom(table as 'roles')
        .select('name')
        .where('domain', '=', d)
        .where('name', '=', name)
        .executeTakeFirst();
      if (exists !== undefined)
        throw new ConflictError(`${kind}.exists`, `${kind} "${name}" already exists in domain ${d}`);
      await tx
        .insertInto(table as 'roles')
        .values({
          domain: d,
          name,
          description: input.description ?? null,
          [link]: input.link ? lower(input.link) : null,
          revision: 1,
          created_at: now,
          updated_at: now,
        } as unknown as Database['roles'])
        .execute();
      await this.insertMembers(tx, d, kind, name, input.members ?? [], now);
      const record = await this.getOwnerIn(tx, kind, d, name);
      return {
        record,
        target: { kind, name },
        audit: { action: `${kind}.create`, objectType: kind, objectName: name, before: null, after: record },
      };
    });
  }

  private replaceOwner(
    kind: OwnerKind,
    domain: string,
    name: string,
    input: OwnerInput,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<OwnerRecord>> {
    const { table, link } = OWNERS[kind];
    const d = lower(domain);
    const owner = lower(name);
    const builtin = kind === 'role' && owner === ADMIN_ROLE;
    return this.writeInDomain(d, ctx, async (tx, now) => {
      const before = await this.getOwnerIn(tx, kind, d, owner);
      if (builtin && (input.link ?? null) !== null) {
        throw new ValidationError([
          { path: 'trust', code: 'role.builtin', message: 'the built-in admin role cannot be delegated' },
        ]);
      }
      await this.bumpObject(tx, kind, d, owner, expectedRevision, before.revision, now);
      await tx
        .updateTable(table as 'roles')
        // The built-in admin role keeps its description: only its members change.
        .set({
          description: builtin ? before.description : (input.description ?? null),
          [link]: input.link ? lower(input.link) : null,
        } as Partial<Database['roles']>)
        .where('domain', '=', d)
        .where('name', '=', owner)
        .execute();
      await tx
        .deleteFrom('members')
        .where('domain', '=', d)
        .where('owner_kind', '=', kind)
        .where('owner_name', '=', owner)
        .execute();
      await this.insertMembers(tx, d, kind, owner, input.members ?? [], now);
      const record = await this.getOwnerIn(tx, kind, d, owner);
      return {
        record,
        target: { kind, name: owner },
        audit: { action: `${kind}.update`, objectType: kind, objectName: owner, before, after: record },
      };
    });
  }

  private deleteOwner(
    kind: OwnerKind,
    domain: string,
    name: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<null>> {
    const d = lower(domain);
    const owner = lower(name);
    if (kind === 'role' && owner === ADMIN_ROLE) {
      return Promise.reject(new ConflictError('role.builtin', 'the built-in admin role cannot be deleted'));
    }
    return this.writeInDomain(d, ctx, async (tx) => {
      const before = await this.getOwnerIn(tx, kind, d, owner);
      if (expectedRevision !== undefined && before.revision !== expectedRevision) {
        throw new PreconditionFailedError(
          'revision.stale',
          `${kind} "${owner}" is at revision ${before.revision}, not ${expectedRevision}`,
          before.revision,
        );
      }
      // Other domains may name a group in their member entries and assertions.
      if (kind === 'group') await this.refuseIfReferenced(tx, d, `${d}:group.${owner}`, 'group');
      await tx
        .deleteFrom('members')
        .where('domain', '=', d)
        .where('owner_kind', '=', kind)
        .where('owner_name', '=', owner)
        .execute();
      await tx
        .deleteFrom(OWNERS[kind].table as 'roles')
        .where('domain', '=', d)
        .where('name', '=', owner)
        .execute();
      return {
        record: null,
        audit: { action: `${kind}.delete`, objectType: kind, objectName: owner, before, after: null },
      };
    });
  }

  // ---- roles ---------------------------------------------------------------------------------

  /** Gets a role with its members. */
  getRole(domain: string, name: string): Promise<RoleRecord> {
    return this.getOwner('role', domain, name) as Promise<RoleRecord>;
  }

  /** Lists a domain's roles by name, with their members. */
  listRoles(domain: string, options: ListOptions = {}): Promise<Page<RoleRecord>> {
    return this.listOwners('role', domain, options) as Promise<Page<RoleRecord>>;
  }

  /** Creates a role. ConflictError when it exists; ValidationError when the domain would be invalid. */
  createRole(
    domain: string,
    input: { name: string; description?: string | null; trust?: string | null; members?: MemberEntry[] },
    ctx: WriteContext,
  ): Promise<DomainWrite<RoleRecord>> {
    const { trust, ...rest } = input;
    return this.createOwner('role', domain, { ...rest, link: trust }, ctx) as Promise<DomainWrite<RoleRecord>>;
  }

  /**
   * Replaces a role's description, trust and members as a whole. With `expectedRevision`, the
   * write happens only if the role is still at that revision (PreconditionFailedError otherwise):
   * of many concurrent updates from the same revision exactly one wins.
   */
  replaceRole(
    domain: string,
    name: string,
    input: { description?: string | null; trust?: string | null; members?: MemberEntry[] },
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<RoleRecord>> {
    const { trust, ...rest } = input;
    return this.replaceOwner('role', domain, name, { ...rest, link: trust }, expectedRevision, ctx) as Promise<
      DomainWrite<RoleRecord>
    >;
  }

  /** Deletes a role. The built-in admin role cannot be deleted. */
  deleteRole(
    domain: string,
    name: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<null>> {
    return this.deleteOwner('role', domain, name, expectedRevision, ctx);
  }

  /**
   * Atomically moves an object's revision from `expected` (when given) to the next one; the
   * conditional UPDATE is what makes exactly one of many concurrent writers win.
   */
  private async bumpObject(
    tx: Transaction<Database>,
    kind: OwnerKind,
    domain: string,
    name: string,
    expected: number | undefined,
    current: number,
    now: string,
  ): Promise<number> {
    let q = tx
      .updateTable(OWNERS[kind].table as 'roles')
      .set({ revision: sql`revision + 1`, updated_at: now })
      .where('domain', '=', domain)
      .where('name', '=', name);
    if (expected !== undefined) q = q.where('revision', '=', expected);
    const r = await q.returning('revision').executeTakeFirst();
    if (r === undefined) {
      throw new PreconditionFailedError(
        'revision.stale',
        `${kind} "${name}" is at revision ${current}, not ${String(expected)}`,
        current,
      );
    }
    return r.revision;
  }

  /**
   * Adds (or replaces) one member entry of a role or group, bumping its revision: concurrent
   * additions never lose each other. With `expectedRevision`, only from that revision.
   */
  putMember(
    kind: 'role' | 'group',
    domain: string,
    owner: string,
    entry: MemberEntry,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<RoleRecord | GroupRecord>> {
    const d = lower(domain);
    const name = lower(owner);
    return this.writeInDomain(d, ctx, async (tx, now) => {
      const before = await this.getOwnerIn(tx, kind, d, name);
      await this.bumpObject(tx, kind, d, name, expectedRevision, before.revision, now);
      const member = lower(entry.name);
      await tx
        .deleteFrom('members')
        .where('domain', '=', d)
        .where('owner_kind', '=', kind)
        .where('owner_name', '=', name)
        .where('member', '=', member)
        .execute();
      await this.insertMembers(tx, d, kind, name, [entry], now);
      const record = await this.getOwnerIn(tx, kind, d, name);
      const index = record.members.findIndex((m) => m.name === member);
      return {
        record,
        target: { kind, name },
        audit: {
          action: `${kind}.member.put`,
          objectType: kind,
          objectName: name,
          before: { member: before.members.find((m) => m.name === member) ?? null },
          after: { member: record.members[index] },
        },
      };
    });
  }

  /** Removes one member entry of a role or group (NotFoundError when it is not there). */
  deleteMember(
    kind: 'role' | 'group',
    domain: string,
    owner: string,
    member: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<RoleRecord | GroupRecord>> {
    const d = lower(domain);
    const name = lower(owner);
    const m = lower(member);
    return this.writeInDomain(d, ctx, async (tx, now) => {
      const before = await this.getOwnerIn(tx, kind, d, name);
      const existing = before.members.find((x) => x.name === m);
      if (existing === undefined)
        throw new NotFoundError('member.not_found', `${m} is not a member of ${kind} "${name}"`);
      await this.bumpObject(tx, kind, d, name, expectedRevision, before.revision, now);
      await tx
        .deleteFrom('members')
        .where('domain', '=', d)
        .where('owner_kind', '=', kind)
        .where('owner_name', '=', name)
        .where('member', '=', m)
        .execute();
      const record = await this.getOwnerIn(tx, kind, d, name);
      return {
        record,
        target: { kind, name },
        audit: {
          action: `${kind}.member.delete`,
          objectType: kind,
          objectName: name,
          before: { member: existing },
          after: { member: null },
        },
      };
    });
  }

  // ---- groups --------------------------------------------------------------------------------

  /** Gets a group with its members. */
  getGroup(domain: string, name: string): Promise<GroupRecord> {
    return this.getOwner('group', domain, name) as Promise<GroupRecord>;
  }

  /** Lists a domain's groups by name. */
  listGroups(domain: string, options: ListOptions = {}): Promise<Page<GroupRecord>> {
    return this.listOwners('group', domain, options) as Promise<Page<GroupRecord>>;
  }

  /** Creates a group (optionally a subgroup of `parent`). */
  createGroup(
    domain: string,
    input: { name: string; description?: string | null; parent?: string | null; members?: MemberEntry[] },
    ctx: WriteContext,
  ): Promise<DomainWrite<GroupRecord>> {
    const { parent, ...rest } = input;
    return this.createOwner('group', domain, { ...rest, link: parent }, ctx) as Promise<DomainWrite<GroupRecord>>;
  }

  /** Replaces a group's description, parent and members, optionally only from `expectedRevision`. */
  replaceGroup(
    domain: string,
    name: string,
    input: { description?: string | null; parent?: string | null; members?: MemberEntry[] },
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<GroupRecord>> {
    const { parent, ...rest } = input;
    return this.replaceOwner('group', domain, name, { ...rest, link: parent }, expectedRevision, ctx) as Promise<
      DomainWrite<GroupRecord>
    >;
  }

  /** Deletes a group; refused while another domain refers to it. */
  deleteGroup(
    domain: string,
    name: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<null>> {
    return this.deleteOwner('group', domain, name, expectedRevision, ctx);
  }

  // ---- policies ------------------------------------------------------------------------------

  private policyRecord(domain: string, p: Database['policies']): PolicyRecord {
    return {
      domain,
      name: p.name,
      version: p.version === '' ? null : p.version,
      active: p.active === 1,
      description: p.description,
      assertions: JSON.parse(p.assertions) as AssertionModel[],
      revision: p.revision,
      createdAt: p.created_at,
      updatedAt: p.updated_at,
    };
  }

  /** Every version of a policy, active first. NotFoundError when there is none. */
  async getPolicy(domain: string, name: string): Promise<PolicyRecord[]> {
    const d = lower(domain);
    await this.getDomainIn(this.db, d);
    const rows = await this.db
      .selectFrom('policies')
      .selectAll()
      .where('domain', '=', d)
      .where('name', '=', lower(name))
      .orderBy('version')
      .execute();
    if (rows.length === 0)
      throw new NotFoundError('policy.not_found', `policy "${lower(name)}" does not exist in domain ${d}`);
    return rows.map((r) => this.policyRecord(d, r)).sort((a, b) => Number(b.active) - Number(a.active));
  }

  /** Lists a domain's policy versions by name and version. */
  async listPolicies(domain: string, options: ListOptions = {}): Promise<Page<PolicyRecord>> {
    const d = lower(domain);
    await this.getDomainIn(this.db, d);
    const limit = pageLimit(options.limit);
    let q = this.db
      .selectFrom('policies')
      .selectAll()
      .where('domain', '=', d)
      .orderBy('name')
      .orderBy('version')
      .limit(limit + 1);
    const after = keyOfCursor(options.cursor, 2);
    if (after !== undefined) {
      const [n, v] = after.split('\u0000') as [string, string];
      q = q.where((eb) => eb.or([eb('name', '>', n), eb.and([eb('name', '=', n), eb('version', '>', v ?? '')])]));
    }
    const page = paginate(await q.execute(), limit, (r) => `${r.name}\u0000${r.version}`);
    return { ...page, items: page.items.map((r) => this.policyRecord(d, r)) };
  }

  /**
   * Creates or replaces one version of a policy. When `active` (the default), every other version
   * of the policy becomes inactive in the same transaction. The built-in admin policy is fixed.
   */
  putPolicy(
    domain: string,
    input: {
      name: string;
      version?: string | null;
      active?: boolean;
      description?: string | null;
      assertions: AssertionModel[];
    },
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<PolicyRecord>> {
    const d = lower(domain);
    const name = lower(input.name);
    const version = input.version ?? '';
    if (name === ADMIN_POLICY)
      return Promise.reject(new ConflictError('policy.builtin', 'the built-in admin policy cannot be changed'));
    return this.writeInDomain(d, ctx, async (tx, now) => {
      const existing = await tx
        .selectFrom('policies')
        .selectAll()
        .where('domain', '=', d)
        .where('name', '=', name)
        .where('version', '=', version)
        .executeTakeFirst();
      if (expectedRevision !== undefined && existing?.revision !== expectedRevision) {
        throw new PreconditionFailedError(
          'revision.stale',
          `policy "${name}" is at revision ${existing?.revision ?? 'none (it does not exist)'}, not ${expectedRevision}`,
          existing?.revision,
        );
      }
      const active = input.active !== false;
      if (active) {
        await tx
          .updateTable('policies')
          .set({ active: 0 })
          .where('domain', '=', d)
          .where('name', '=', name)
          .where('version', '<>', version)
          .execute();
      }
      const values = {
        active: active ? 1 : 0,
        description: input.description ?? null,
        assertions: JSON.stringify(input.assertions),
        updated_at: now,
      };
      if (existing === undefined) {
        await tx
          .insertInto('policies')
          .values({ domain: d, name, version, ...values, revision: 1, created_at: now })
          .execute();
      } else {
        await tx
          .updateTable('policies')
          .set({ ...values, revision: existing.revision + 1 })
          .where('domain', '=', d)
          .where('name', '=', name)
          .where('version', '=', version)
          .where('revision', '=', existing.revision)
          .execute();
      }
      const row = await tx
        .selectFrom('policies')
        .selectAll()
        .where('domain', '=', d)
        .where('name', '=', name)
        .where('version', '=', version)
        .executeTakeFirstOrThrow();
      const record = this.policyRecord(d, row);
      return {
        record,
        target: { kind: 'policy', name, version },
        audit: {
          action: existing === undefined ? 'policy.create' : 'policy.update',
          objectType: 'policy',
          objectName: version === '' ? name : `${name}@${version}`,
          before: existing === undefined ? null : this.policyRecord(d, existing),
          after: record,
        },
      };
    });
  }

  /** Deletes one version of a policy (or the unversioned one). */
  deletePolicy(
    domain: string,
    name: string,
    version: string | null,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<null>> {
    const d = lower(domain);
    const policy = lower(name);
    if (policy === ADMIN_POLICY)
      return Promise.reject(new ConflictError('policy.builtin', 'the built-in admin policy cannot be deleted'));
    const v = version ?? '';
    return this.writeInDomain(d, ctx, async (tx) => {
      const row = await tx
        .selectFrom('policies')
        .selectAll()
        .where('domain', '=', d)
        .where('name', '=', policy)
        .where('version', '=', v)
        .executeTakeFirst();
      if (row === undefined)
        throw new NotFoundError(
          'policy.not_found',
          `policy "${policy}"${version ? ` version "${version}"` : ''} does not exist in domain ${d}`,
        );
      if (expectedRevision !== undefined && row.revision !== expectedRevision) {
        throw new PreconditionFailedError(
          'revision.stale',
          `policy "${policy}" is at revision ${row.revision}, not ${expectedRevision}`,
          row.revision,
        );
      }
      await tx
        .deleteFrom('policies')
        .where('domain', '=', d)
        .where('name', '=', policy)
        .where('version', '=', v)
        .execute();
      return {
        record: null,
        audit: {
          action: 'policy.delete',
          objectType: 'policy',
          objectName: v === '' ? policy : `${policy}@${v}`,
          before: this.policyRecord(d, row),
          after: null,
        },
      };
    });
  }
}

/** What a domain write says about itself in the audit trail (the rest comes from the context). */
export interface DomainAudit {
  action: string;
  objectType: string;
  objectName: string;
  before: unknown;
  after: unknown;
}

/** Thrown inside a transaction to roll it back after a dry run. */
class RollbackSignal extends Error {
  constructor() {
    super('rolled back');
  }
}

/** The object a write is about, so that its issues can be reported relative to it. */
export interface IssueTarget {
  kind: 'role' | 'group' | 'policy';
  name: string;
  version?: string;
}

/**
 * Rewrites model issue paths (`policies[3].assertions[0].role`, positions in the loaded model)
 * to name the objects (`policies[books@2].assertions[0].role`), or to be relative to `target`.
 */
export function relocateIssues(
  model: {
    roles?: { name: string }[] | undefined;
    groups?: { name: string }[] | undefined;
    policies?: { name: string; version?: string | undefined }[] | undefined;
  },
  issues: readonly ModelIssue[],
  target: IssueTarget | undefined,
): ModelIssue[] {
  return issues.map((issue) => {
    const m = /^(roles|groups|policies)\[(\d+)\](.*)$/.exec(issue.path);
    if (!m) return issue;
    const [, list, index, rest] = m as unknown as [string, 'roles' | 'groups' | 'policies', string, string];
    const item = model[list]?.[Number(index)] as { name: string; version?: string } | undefined;
    if (item === undefined) return issue;
    const kind = list === 'roles' ? 'role' : list === 'groups' ? 'group' : 'policy';
    const version = item.version ?? '';
    if (
      target &&
      target.kind === kind &&
      target.name === item.name &&
      (kind !== 'policy' || (target.version ?? '') === version)
    ) {
      return { ...issue, path: rest.startsWith('.') ? rest.slice(1) : rest === '' ? '' : rest };
    }
    const label = kind === 'policy' && version !== '' ? `${item.name}@${version}` : item.name;
    return { ...issue, path: `${list}[${label}]${rest}` };
  });
}
