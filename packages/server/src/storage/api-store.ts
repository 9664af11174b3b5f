/**
 * APIs: resource servers of a domain (config-format.md `apis`) — an OAuth audience, unique
 * across the server, and the permission scopes a client may ask for (api.md §1): `TYPE:ACTION`
 * (action ACTION on `D:TYPE/*`) or `DOMAIN:role.NAME` (holding that role). Every write goes
 * through Store.writeInDomain: it bumps the domain's revision and is audited.
 *
 * Contract: ValidationError for bad input (paths relative to the input); ConflictError
 * `api.exists`, `api.audience_taken`; NotFoundError `domain.not_found` / `api.not_found`;
 * PreconditionFailedError `revision.stale`.
 */

import { NAME_LIMITS, validateDomainName, validateShortName } from '@gatehouse/engine';
import type { Transaction } from 'kysely';
import { ConflictError, NotFoundError, PreconditionFailedError } from './errors.js';
import { explainConflict } from './explain-conflict.js';
import { IssueCollector, LABEL } from './issue-collector.js';
import type { Queryable } from './load-domain-model.js';
import { listInDomain } from './paginate.js';
import type { ApisTable, Database } from './schema.js';
import type { DomainWrite, ListOptions, Page, Store, WriteContext } from './store.js';

/** Limits on API fields. */
export const API_LIMITS = { audience: 2048, scopes: 1000, scope: 256 } as const;

/** An API (resource server). */
export interface ApiRecord {
  domain: string;
  name: string;
  audience: string;
  /** Lower-cased, in the order given. */
  scopes: string[];
  /** Put the PBAC `permissions` claim in access tokens for this API. */
  permissionsClaim: boolean;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** What createApi takes. */
export interface ApiInput {
  name: string;
  audience: string;
  scopes?: string[] | undefined;
  permissionsClaim?: boolean | undefined;
}

/** What updateApi changes: the fields present (`scopes` replaces the list). */
export interface ApiPatch {
  audience?: string | undefined;
  scopes?: string[] | undefined;
  permissionsClaim?: boolean | undefined;
}

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
// RFC 8141 §2: urn:<NID>:<NSS>, NID 2..32 characters.
const URN = /^urn:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:\S+$/i;

/**
 * Checks one permission scope (lower-cased): `TYPE:ACTION` with TYPE one label and ACTION an
 * action name without glob characters, or `DOMAIN:role.NAME`. Returns the problem, or undefined.
 */
export function validateScope(scope: string): string | undefined {
  if (scope.length > API_LIMITS.scope) {
    return `scope is ${scope.length} characters; at most ${API_LIMITS.scope} are allowed`;
  }
  if (!SCOPE_TOKEN.test(scope)) {
    return `scope "${scope}" may hold only printable ASCII without space, " or \\ (RFC 6749 §3.3)`;
  }
  const colon = scope.indexOf(':');
  if (colon <= 0 || colon === scope.length - 1) return `scope "${scope}" must be TYPE:ACTION or DOMAIN:role.NAME`;
  const left = scope.slice(0, colon);
  const right = scope.slice(colon + 1);
  if (right.startsWith('role.')) {
    const problem = validateDomainName(left) ?? validateShortName('role', right.slice('role.'.length));
    return problem ? `role scope "${scope}": ${problem.message}` : undefined;
  }
  if (left.length > NAME_LIMITS.label || !LABEL.test(left)) {
    return `scope "${scope}": the resource type "${left}" must be one label of [a-z0-9_][a-z0-9_-]*`;
  }
  if (right.length > NAME_LIMITS.action) {
    return `scope "${scope}": the action is longer than ${NAME_LIMITS.action} characters`;
  }
  if (/[*?]/.test(right)) return `scope "${scope}": the action "${right}" contains * or ?, which are glob characters`;
  return undefined;
}

/**
 * Checks an audience: an absolute URI without a fragment (RFC 8707 §2, as a resource indicator)
 * or a URN, at most API_LIMITS.audience characters. Returns the problem, or undefined.
 */
export function validateAudience(audience: string): string | undefined {
  if (/^urn:/i.test(audience)) {
    return URN.test(audience) ? undefined : `audience "${audience}" is not a URN (urn:<namespace>:<name>)`;
  }
  let url: URL;
  try {
    url = new URL(audience);
  } catch {
    return `audience "${audience}" is not an absolute URI or a URN`;
  }
  if (!SCHEME.test(audience)) return `audience "${audience}" is not an absolute URI or a URN`;
  if (audience.includes('#')) return `audience "${audience}" has a fragment (RFC 8707 §2 forbids it)`;
  if (
    (url.protocol === 'https:' || url.protocol === 'http:') &&
    (!/^https?:\/\/[^/?#]/i.test(audience) || url.hostname === '')
  ) {
    return `audience "${audience}" has no host`;
  }
  return undefined;
}

function checkAudience(c: IssueCollector, value: unknown): string | undefined {
  const audience = c.text(value, 'audience', { code: 'api.invalid_audience', max: API_LIMITS.audience, noSpace: true });
  if (audience === undefined) return undefined;
  const problem = validateAudience(audience);
  if (problem) {
    c.add('audience', 'api.invalid_audience', problem);
    return undefined;
  }
  return audience;
}

function checkScopes(c: IssueCollector, value: unknown): string[] | undefined {
  const list = c.list(value, 'scopes', 'api.invalid_scope', API_LIMITS.scopes);
  if (list === undefined) return undefined;
  const before = c.issues.length;
  const seen = new Set<string>();
  const scopes: string[] = [];
  list.forEach((v, i) => {
    const path = `scopes[${i}]`;
    if (typeof v !== 'string') {
      c.add(path, 'api.invalid_scope', `${path} must be a string`);
      return;
    }
    const scope = v.toLowerCase();
    const problem = validateScope(scope);
    if (problem) c.add(path, 'api.invalid_scope', problem);
    else if (seen.has(scope)) c.add(path, 'api.duplicate_scope', `scope "${scope}" is listed twice`);
    seen.add(scope);
    scopes.push(scope);
  });
  return c.issues.length === before ? scopes : undefined;
}

function apiRecord(row: ApisTable): ApiRecord {
  return {
    domain: row.domain,
    name: row.name,
    audience: row.audience,
    scopes: JSON.parse(row.scopes) as string[],
    permissionsClaim: row.permissions_claim === 1,
    revision: row.revision,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The storage of APIs. */
export class ApiStore {
  constructor(readonly store: Store) {}

  /** Creates an API. */
  async createApi(domain: string, input: ApiInput, ctx: WriteContext): Promise<DomainWrite<ApiRecord>> {
    const d = String(domain).toLowerCase();
    const c = new IssueCollector();
    const name = c.label(input.name, 'name', 'api.invalid_name', 'API name');
    const audience = checkAudience(c, input.audience);
    const scopes = input.scopes === undefined ? [] : checkScopes(c, input.scopes);
    const permissionsClaim =
      input.permissionsClaim === undefined
        ? false
        : c.boolean(input.permissionsClaim, 'permissionsClaim', 'api.invalid_permissions_claim');
    c.throwIfAny();
    const n = name as string;
    const aud = audience as string;
    const write = this.store.writeInDomain(d, ctx, async (tx, now) => {
      const conflict = await this.conflictOf(tx, { domain: d, name: n, audience: aud });
      if (conflict) throw conflict;
      await tx
        .insertInto('apis')
        .values({
          domain: d,
          name: n,
          audience: aud,
          scopes: JSON.stringify(scopes),
          permissions_claim: permissionsClaim ? 1 : 0,
          revision: 1,
          created_at: now,
          updated_at: now,
        })
        .execute();
      const record = await this.getApiIn(tx, d, n);
      return { record, audit: { action: 'api.create', objectType: 'api', objectName: n, before: null, after: record } };
    });
    return explainConflict(
      () => write,
      () => this.conflictOf(this.store.db, { domain: d, name: n, audience: aud }),
    );
  }

  /** Gets an API; NotFoundError when the domain or the API does not exist. */
  async getApi(domain: string, name: string): Promise<ApiRecord> {
    const d = String(domain).toLowerCase();
    await this.store.getDomain(d);
    return this.getApiIn(this.store.db, d, String(name).toLowerCase());
  }

  /** The API whose audience is exactly `audience`, if any. */
  async findApiByAudience(audience: string): Promise<ApiRecord | undefined> {
    const row = await this.store.db.selectFrom('apis').selectAll().where('audience', '=', audience).executeTakeFirst();
    return row === undefined ? undefined : apiRecord(row);
  }

  /** Lists a domain's APIs by name. */
  async listApis(domain: string, options: ListOptions = {}): Promise<Page<ApiRecord>> {
    const d = String(domain).toLowerCase();
    await this.store.getDomain(d);
    const page = await listInDomain(this.store.db, 'apis', 'name', d, options);
    return { ...page, items: page.items.map(apiRecord) };
  }

  /** Changes the fields present in `patch` (optionally only from `expectedRevision`). */
  async updateApi(
    domain: string,
    name: string,
    patch: ApiPatch,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<ApiRecord>> {
    const d = String(domain).toLowerCase();
    const n = String(name).toLowerCase();
    const c = new IssueCollector();
    const audience = patch.audience === undefined ? undefined : checkAudience(c, patch.audience);
    const scopes = patch.scopes === undefined ? undefined : checkScopes(c, patch.scopes);
    const permissionsClaim =
      patch.permissionsClaim === undefined
        ? undefined
        : c.boolean(patch.permissionsClaim, 'permissionsClaim', 'api.invalid_permissions_claim');
    c.throwIfAny();
    const keys = { domain: d, name: n, audience, self: true };
    const write = this.store.writeInDomain(d, ctx, async (tx, now) => {
      const before = await this.getApiIn(tx, d, n);
      const conflict = await this.conflictOf(tx, keys);
      if (conflict) throw conflict;
      const set: Partial<ApisTable> = { updated_at: now };
      if (audience !== undefined) set.audience = audience;
      if (scopes !== undefined) set.scopes = JSON.stringify(scopes);
      if (permissionsClaim !== undefined) set.permissions_claim = permissionsClaim ? 1 : 0;
      await this.bump(tx, d, n, expectedRevision, before.revision, set);
      const record = await this.getApiIn(tx, d, n);
      return { record, audit: { action: 'api.update', objectType: 'api', objectName: n, before, after: record } };
    });
    return explainConflict(
      () => write,
      () => this.conflictOf(this.store.db, keys),
    );
  }

  /** Deletes an API (optionally only from `expectedRevision`). */
  async deleteApi(
    domain: string,
    name: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<null>> {
    const d = String(domain).toLowerCase();
    const n = String(name).toLowerCase();
    return this.store.writeInDomain(d, ctx, async (tx) => {
      const before = await this.getApiIn(tx, d, n);
      await this.bump(tx, d, n, expectedRevision, before.revision, {});
      await tx.deleteFrom('apis').where('domain', '=', d).where('name', '=', n).execute();
      return { record: null, audit: { action: 'api.delete', objectType: 'api', objectName: n, before, after: null } };
    });
  }

  // ---- internals ---------------------------------------------------------------------------

  /**
   * The ConflictError a write meets, if any: the name taken (when creating, i.e. not `self`),
   * or the audience held by another API.
   */
  private async conflictOf(
    db: Queryable,
    keys: { domain: string; name: string; audience: string | undefined; self?: boolean },
  ): Promise<ConflictError | undefined> {
    if (keys.self !== true) {
      const a = await db
        .selectFrom('apis')
        .select('name')
        .where('domain', '=', keys.domain)
        .where('name', '=', keys.name)
        .executeTakeFirst();
      if (a) return new ConflictError('api.exists', `API "${keys.name}" already exists in domain ${keys.domain}`);
    }
    if (keys.audience !== undefined) {
      const a = await db
        .selectFrom('apis')
        .select(['domain', 'name'])
        .where('audience', '=', keys.audience)
        .where((eb) => eb.or([eb('domain', '<>', keys.domain), eb('name', '<>', keys.name)]))
        .executeTakeFirst();
      if (a) {
        return new ConflictError(
          'api.audience_taken',
          `audience "${keys.audience}" is already the audience of API "${a.name}" of domain ${a.domain}`,
        );
      }
    }
    return undefined;
  }

  /**
   * Moves the API to its next revision with `set`, only from `expected` when given: a
   * conditional UPDATE, so of concurrent writes from one revision exactly one wins.
   */
  private async bump(
    tx: Transaction<Database>,
    domain: string,
    name: string,
    expected: number | undefined,
    current: number,
    set: Partial<ApisTable>,
  ): Promise<void> {
    const r = await tx
      .updateTable('apis')
      .set({ ...set, revision: current + 1 })
      .where('domain', '=', domain)
      .where('name', '=', name)
      .where('revision', '=', expected ?? current)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) {
      throw new PreconditionFailedError(
        'revision.stale',
        `API "${name}" is at revision ${current}, not ${String(expected)}`,
        current,
      );
    }
  }

  private async getApiIn(db: Queryable, domain: string, name: string): Promise<ApiRecord> {
    const row = await db
      .selectFrom('apis')
      .selectAll()
      .where('domain', '=', domain)
      .where('name', '=', name)
      .executeTakeFirst();
    if (row === undefined) throw new NotFoundError('api.not_found', `API "${name}" does not exist in domain ${domain}`);
    return apiRecord(row);
  }
}
