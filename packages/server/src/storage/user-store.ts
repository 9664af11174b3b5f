/**
 * Users: the principals `user.<name>`, with an optional argon2id password hash, a unique email,
 * external ids (an upstream IdP's subject ids, unique across users) and attributes. Users live
 * outside every domain: each write is its own transaction with an audit event of domain null.
 *
 * Contract: ValidationError (every issue, paths relative to the input) for bad input;
 * ConflictError `user.exists`, `user.email_taken`, `user.external_id_taken` for taken keys (the
 * database enforces them; a lost race is reported the same way); NotFoundError `user.not_found`;
 * PreconditionFailedError `revision.stale` when `expectedRevision` is not the user's revision.
 * Records never carry the password hash, only `hasPassword`.
 */

import { validatePrincipalName, type PrincipalModel } from '@gatehouse/engine';
import type { Transaction } from 'kysely';
import { appendAudit } from './audit-log.js';
import { notifyChange } from './change-notice.js';
import { ConflictError, NotFoundError, PreconditionFailedError } from './errors.js';
import { explainConflict } from './explain-conflict.js';
import { IssueCollector } from './issue-collector.js';
import type { Queryable } from './load-domain-model.js';
import { keyOfCursor, pageLimit, paginate } from './paginate.js';
import type { Database, UsersTable } from './schema.js';
import { validateArgon2idHash, SecretHasher } from './secret-hasher.js';
import type { ListOptions, Page, Store, WriteContext } from './store.js';

/** Limits on user fields. */
export const USER_LIMITS = {
  /** RFC 5321 §4.5.3.1: a path is at most 256 octets with its angle brackets. */
  email: 254,
  emailLocalPart: 64,
  displayName: 256,
  externalIds: 100,
  externalId: 256,
  /** NIST SP 800-63B §5.1.1.2: at least 8 characters. */
  passwordMin: 8,
  passwordMax: 1024,
  /** Characters of the attributes as canonical JSON. */
  attributes: 65_536,
} as const;

/** A user as the API shows it (never the password hash). */
export interface UserRecord {
  name: string;
  /** Lower-cased: the key that makes emails unique. */
  email: string | null;
  displayName: string | null;
  /** Sorted. */
  externalIds: string[];
  attributes: Record<string, unknown>;
  hasPassword: boolean;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** What createUser takes. `password` is hashed; `passwordHash` (argon2id PHC) is stored as is. */
export interface UserInput {
  name: string;
  email?: string | null | undefined;
  displayName?: string | null | undefined;
  password?: string | undefined;
  passwordHash?: string | undefined;
  externalIds?: string[] | undefined;
  attributes?: Record<string, unknown> | undefined;
}

/**
 * What updateUser changes: the fields present. `null` clears email, displayName and password;
 * `externalIds` and `attributes` replace the stored ones as a whole.
 */
export interface UserPatch {
  email?: string | null | undefined;
  displayName?: string | null | undefined;
  password?: string | null | undefined;
  passwordHash?: string | undefined;
  externalIds?: string[] | undefined;
  attributes?: Record<string, unknown> | undefined;
}

/** Options of UserStore. */
export interface UserStoreOptions {
  /** Hashes passwords (default: argon2id at OWASP_ARGON2ID). */
  hasher?: SecretHasher;
}

// Control characters are refused before these apply (IssueCollector.text).
const EMAIL_LOCAL = /^[^\s@]+$/;
const EMAIL_DOMAIN = /^[^\s@.]+(\.[^\s@.]+)*$/;

/** Lower-cases a user name; returns the problem when it is not the `<name>` of `user.<name>`. */
export function validateUserName(name: unknown): { name: string; problem?: string } {
  if (typeof name !== 'string') return { name: '', problem: 'name must be a string' };
  const lower = name.toLowerCase();
  if (lower.length === 0) return { name: lower, problem: 'name is empty' };
  const problem = validatePrincipalName(`user.${lower}`);
  return problem ? { name: lower, problem: problem.message } : { name: lower };
}

/** The engine's principal model of a user (what conditions see as subject.properties). */
export function principalOfUser(user: UserRecord): PrincipalModel {
  return {
    name: `user.${user.name}`,
    ...(user.email !== null ? { email: user.email } : {}),
    ...(user.displayName !== null ? { displayName: user.displayName } : {}),
    attributes: user.attributes,
  };
}

function userRecord(row: UsersTable, externalIds: string[]): UserRecord {
  return {
    name: row.name,
    email: row.email,
    displayName: row.display_name,
    externalIds,
    attributes: JSON.parse(row.attributes) as Record<string, unknown>,
    hasPassword: row.password_hash !== null,
    revision: row.revision,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The checked form of a user's fields (what goes into the row). */
interface CheckedUser {
  email?: string | null;
  displayName?: string | null;
  password?: string | null;
  passwordHash?: string;
  externalIds?: string[];
  attributes?: Record<string, unknown>;
}

function checkEmail(c: IssueCollector, value: unknown): string | undefined {
  const email = c.text(value, 'email', { code: 'user.invalid_email', max: USER_LIMITS.email, noSpace: true });
  if (email === undefined) return undefined;
  const at = email.lastIndexOf('@');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (at <= 0 || !EMAIL_LOCAL.test(local) || !EMAIL_DOMAIN.test(domain)) {
    c.add('email', 'user.invalid_email', `email "${email}" is not an address of the form local@domain`);
    return undefined;
  }
  if (local.length > USER_LIMITS.emailLocalPart) {
    c.add(
      'email',
      'user.invalid_email',
      `the local part of email "${email}" is ${local.length} characters; at most ${USER_LIMITS.emailLocalPart} are allowed`,
    );
    return undefined;
  }
  return email.toLowerCase();
}

/** Checks the fields present in `input` (a UserInput or a UserPatch). */
function checkUserFields(c: IssueCollector, input: UserPatch): CheckedUser {
  const out: CheckedUser = {};
  if (input.email !== undefined) out.email = input.email === null ? null : checkEmail(c, input.email);
  if (input.displayName !== undefined) {
    out.displayName =
      input.displayName === null
        ? null
        : c.text(input.displayName, 'displayName', { code: 'user.invalid_display_name', max: USER_LIMITS.displayName });
  }
  if (input.password !== undefined && input.passwordHash !== undefined) {
    c.add('passwordHash', 'user.invalid_password', 'give password or passwordHash, not both');
  } else if (input.password === null) {
    out.password = null;
  } else if (input.password !== undefined) {
    out.password = c.text(input.password, 'password', {
      code: 'user.invalid_password',
      min: USER_LIMITS.passwordMin,
      max: USER_LIMITS.passwordMax,
    });
  } else if (input.passwordHash !== undefined) {
    const problem =
      typeof input.passwordHash === 'string' ? validateArgon2idHash(input.passwordHash) : 'must be a string';
    if (problem) c.add('passwordHash', 'user.invalid_password_hash', `passwordHash ${problem}`);
    else out.passwordHash = input.passwordHash;
  }
  if (input.externalIds !== undefined) {
    const list = c.list(input.externalIds, 'externalIds', 'user.invalid_external_id', USER_LIMITS.externalIds);
    if (list !== undefined) {
      const seen = new Set<string>();
      const ids: string[] = [];
      list.forEach((v, i) => {
        const id = c.text(v, `externalIds[${i}]`, { code: 'user.invalid_external_id', max: USER_LIMITS.externalId });
        if (id === undefined) return;
        if (seen.has(id)) {
          c.add(`externalIds[${i}]`, 'user.duplicate_external_id', `external id "${id}" is listed twice`);
        }
        seen.add(id);
        ids.push(id);
      });
      out.externalIds = ids;
    }
  }
  if (input.attributes !== undefined) {
    out.attributes = c.jsonObject(input.attributes, 'attributes', 'user.invalid_attributes', USER_LIMITS.attributes);
  }
  return out;
}

/** The storage of users, over the control-plane store's database. */
export class UserStore {
  readonly hasher: SecretHasher;

  constructor(
    readonly store: Store,
    options: UserStoreOptions = {},
  ) {
    this.hasher = options.hasher ?? new SecretHasher();
  }

  /** Creates a user. See the module's contract. */
  async createUser(input: UserInput, ctx: WriteContext): Promise<UserRecord> {
    const c = new IssueCollector();
    const { name, problem } = validateUserName(input.name);
    if (problem) c.add('name', 'user.invalid_name', problem);
    const fields = checkUserFields(c, input);
    c.throwIfAny();
    const passwordHash =
      fields.passwordHash ?? (typeof fields.password === 'string' ? await this.hasher.hash(fields.password) : null);
    const email = fields.email ?? null;
    const externalIds = fields.externalIds ?? [];
    const keys = { name, email, externalIds };
    const write = this.write(ctx, async (tx, now) => {
      const conflict = await this.conflictOf(tx, keys);
      if (conflict) throw conflict;
      await tx
        .insertInto('users')
        .values({
          name,
          email,
          display_name: fields.displayName ?? null,
          password_hash: passwordHash,
          attributes: JSON.stringify(fields.attributes ?? {}),
          revision: 1,
          created_at: now,
          updated_at: now,
        })
        .execute();
      await this.insertExternalIds(tx, name, externalIds);
      await notifyChange(tx, this.store.database.kind, { kind: 'user', name, revision: 1 });
      const record = await this.getUserIn(tx, name);
      return { result: record, action: 'user.create', name, before: null, after: record };
    });
    return explainConflict(
      () => write,
      () => this.conflictOf(this.store.db, keys),
    );
  }

  /** Gets a user; NotFoundError `user.not_found` when there is none. */
  getUser(name: string): Promise<UserRecord> {
    return this.getUserIn(this.store.db, String(name).toLowerCase());
  }

  /** Lists users by name. */
  async listUsers(options: ListOptions = {}): Promise<Page<UserRecord>> {
    const limit = pageLimit(options.limit);
    let q = this.store.db
      .selectFrom('users')
      .selectAll()
      .orderBy('name')
      .limit(limit + 1);
    const after = keyOfCursor(options.cursor);
    if (after !== undefined) q = q.where('name', '>', after);
    const page = paginate(await q.execute(), limit, (r) => r.name);
    const ids = await this.externalIdsOf(
      this.store.db,
      page.items.map((r) => r.name),
    );
    return { ...page, items: page.items.map((r) => userRecord(r, ids.get(r.name) ?? [])) };
  }

  /**
   * Changes the fields present in `patch`. With `expectedRevision`, only if the user is still at
   * that revision: a conditional UPDATE, so of concurrent updates from one revision exactly one wins.
   */
  async updateUser(
    name: string,
    patch: UserPatch,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<UserRecord> {
    const user = String(name).toLowerCase();
    const c = new IssueCollector();
    const fields = checkUserFields(c, patch);
    c.throwIfAny();
    const passwordHash =
      fields.passwordHash ??
      (typeof fields.password === 'string'
        ? await this.hasher.hash(fields.password)
        : fields.password === null
          ? null
          : undefined);
    const keys = { self: user, email: fields.email, externalIds: fields.externalIds };
    const write = this.write(ctx, async (tx, now) => {
      await this.lockUser(tx, user, expectedRevision);
      const before = await this.getUserIn(tx, user);
      const conflict = await this.conflictOf(tx, keys);
      if (conflict) throw conflict;
      const revision = before.revision + 1;
      const set: Partial<UsersTable> = { revision, updated_at: now };
      if (fields.email !== undefined) set.email = fields.email;
      if (fields.displayName !== undefined) set.display_name = fields.displayName;
      if (passwordHash !== undefined) set.password_hash = passwordHash;
      if (fields.attributes !== undefined) set.attributes = JSON.stringify(fields.attributes);
      await tx.updateTable('users').set(set).where('name', '=', user).execute();
      if (fields.externalIds !== undefined) {
        await tx.deleteFrom('user_external_ids').where('user_name', '=', user).execute();
        await this.insertExternalIds(tx, user, fields.externalIds);
      }
      // Every update is sent, the password-only ones too: a notice does not say what changed.
      await notifyChange(tx, this.store.database.kind, { kind: 'user', name: user, revision });
      const record = await this.getUserIn(tx, user);
      // The audit shows that the password changed, never what it is.
      const after = passwordHash !== undefined ? { ...record, passwordChanged: true } : record;
      return { result: record, action: 'user.update', name: user, before, after };
    });
    return explainConflict(
      () => write,
      () => this.conflictOf(this.store.db, keys),
    );
  }

  /** Deletes a user and its external ids (optionally only from `expectedRevision`). */
  async deleteUser(name: string, expectedRevision: number | undefined, ctx: WriteContext): Promise<void> {
    const user = String(name).toLowerCase();
    await this.write(ctx, async (tx) => {
      await this.lockUser(tx, user, expectedRevision);
      const before = await this.getUserIn(tx, user);
      await tx.deleteFrom('user_external_ids').where('user_name', '=', user).execute();
      await tx.deleteFrom('users').where('name', '=', user).execute();
      await notifyChange(tx, this.store.database.kind, { kind: 'user', name: user, revision: null });
      return { result: undefined, action: 'user.delete', name: user, before, after: null };
    });
  }

  /**
   * True when `password` is the user's password. False for a wrong password, an unknown user
   * or a user without a password — after spending the time of a real check (a dummy hash), so
   * that timing does not tell which.
   */
  async verifyPassword(name: string, password: string): Promise<boolean> {
    const { name: user, problem } = validateUserName(name);
    const row =
      problem === undefined
        ? await this.store.db.selectFrom('users').select('password_hash').where('name', '=', user).executeTakeFirst()
        : undefined;
    const secret = typeof password === 'string' ? password : '';
    const ok = await this.hasher.verify(row?.password_hash, secret);
    return ok && typeof password === 'string';
  }

  /**
   * The user an AuthZEN subject id names (api.md §2): the user whose name, else external id,
   * else email equals `id`, in that order. Undefined when none does.
   */
  async findUserBySubject(id: string): Promise<UserRecord | undefined> {
    if (typeof id !== 'string' || id.length === 0) return undefined;
    const db = this.store.db;
    const { name, problem } = validateUserName(id);
    if (problem === undefined) {
      const byName = await db.selectFrom('users').select('name').where('name', '=', name).executeTakeFirst();
      if (byName) return this.getUserIn(db, byName.name);
    }
    const byExternal = await db
      .selectFrom('user_external_ids')
      .select('user_name')
      .where('external_id', '=', id)
      .executeTakeFirst();
    if (byExternal) return this.getUserIn(db, byExternal.user_name);
    const byEmail = await db
      .selectFrom('users')
      .select('name')
      .where('email', '=', id.toLowerCase())
      .executeTakeFirst();
    return byEmail ? this.getUserIn(db, byEmail.name) : undefined;
  }

  // ---- internals ---------------------------------------------------------------------------

  /**
   * Runs a user write in its own transaction — or in the open one, inside Store.transaction() —
   * with its audit event (domain null), as Store.createDomain does; driver constraint errors
   * become storage errors.
   */
  private write<T>(
    ctx: WriteContext,
    change: (
      tx: Transaction<Database>,
      now: string,
    ) => Promise<{ result: T; action: string; name: string; before: unknown; after: unknown }>,
  ): Promise<T> {
    return this.store.translate(() =>
      this.store.run(async (tx) => {
        const now = this.store.clock().toISOString();
        const { result, action, name, before, after } = await change(tx, now);
        await appendAudit(tx, {
          actor: ctx.actor,
          requestId: ctx.requestId,
          at: new Date(now),
          action,
          domain: null,
          objectType: 'user',
          objectName: name,
          before,
          after,
        });
        return result;
      }),
    );
  }

  /**
   * Takes the user's row lock (a no-op UPDATE, conditional on `expected` when given) so that
   * concurrent writes to one user serialise and exactly one of those from the same revision wins.
   */
  private async lockUser(tx: Transaction<Database>, name: string, expected: number | undefined): Promise<void> {
    let q = tx
      .updateTable('users')
      .set((eb) => ({ revision: eb.ref('revision') }))
      .where('name', '=', name);
    if (expected !== undefined) q = q.where('revision', '=', expected);
    const locked = await q.returning('revision').executeTakeFirst();
    if (locked !== undefined) return;
    const current = await tx.selectFrom('users').select('revision').where('name', '=', name).executeTakeFirst();
    if (current === undefined) throw new NotFoundError('user.not_found', `user "${name}" does not exist`);
    throw new PreconditionFailedError(
      'revision.stale',
      `user "${name}" is at revision ${current.revision}, not ${String(expected)}`,
      current.revision,
    );
  }

  /**
   * The ConflictError a write of these keys meets, if any: the name taken (when creating), the
   * email or an external id held by another user.
   */
  private async conflictOf(
    db: Queryable,
    keys: {
      name?: string;
      self?: string;
      email?: string | null | undefined;
      externalIds?: readonly string[] | undefined;
    },
  ): Promise<ConflictError | undefined> {
    const self = keys.self ?? keys.name ?? '';
    if (keys.name !== undefined) {
      const u = await db.selectFrom('users').select('name').where('name', '=', keys.name).executeTakeFirst();
      if (u) return new ConflictError('user.exists', `user "${keys.name}" already exists`);
    }
    if (keys.email !== undefined && keys.email !== null) {
      const u = await db
        .selectFrom('users')
        .select('name')
        .where('email', '=', keys.email)
        .where('name', '<>', self)
        .executeTakeFirst();
      if (u) return new ConflictError('user.email_taken', `email "${keys.email}" is already used by user "${u.name}"`);
    }
    if (keys.externalIds !== undefined && keys.externalIds.length > 0) {
      const e = await db
        .selectFrom('user_external_ids')
        .select(['external_id', 'user_name'])
        .where('external_id', 'in', [...keys.externalIds])
        .where('user_name', '<>', self)
        .orderBy('external_id')
        .executeTakeFirst();
      if (e) {
        return new ConflictError(
          'user.external_id_taken',
          `external id "${e.external_id}" already belongs to user "${e.user_name}"`,
        );
      }
    }
    return undefined;
  }

  private async insertExternalIds(tx: Transaction<Database>, name: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await tx
      .insertInto('user_external_ids')
      .values(ids.map((external_id) => ({ external_id, user_name: name })))
      .execute();
  }

  private async externalIdsOf(db: Queryable, names: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (names.length === 0) return out;
    const rows = await db
      .selectFrom('user_external_ids')
      .select(['user_name', 'external_id'])
      .where('user_name', 'in', [...names])
      .orderBy('user_name')
      .orderBy('external_id')
      .execute();
    for (const r of rows) {
      const list = out.get(r.user_name);
      if (list) list.push(r.external_id);
      else out.set(r.user_name, [r.external_id]);
    }
    return out;
  }

  private async getUserIn(db: Queryable, name: string): Promise<UserRecord> {
    const row = await db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    if (row === undefined) throw new NotFoundError('user.not_found', `user "${name}" does not exist`);
    const ids = await this.externalIdsOf(db, [name]);
    return userRecord(row, ids.get(name) ?? []);
  }
}
