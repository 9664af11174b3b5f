/**
 * Registered resources of a domain (`D:TYPE/ID` with stored properties, config-format.md
 * `resources`): what AuthZEN resource search lists and what conditions see as
 * resource.properties when a request sends none. Every write goes through Store.writeInDomain:
 * it bumps the domain's revision, is validated with the engine, and is audited.
 *
 * Contract: ValidationError for bad input (paths relative to the input); NotFoundError
 * `domain.not_found` / `resource.not_found`; PreconditionFailedError `revision.stale`.
 */

import { NAME_LIMITS } from '@gatehouse/engine';
import type { Transaction } from 'kysely';
import { NotFoundError, PreconditionFailedError } from './errors.js';
import { IssueCollector } from './issue-collector.js';
import type { Queryable } from './load-domain-model.js';
import { compositeKey, keyOfCursor, pageLimit, paginate, splitCompositeKey } from './paginate.js';
import type { Database, ResourcesTable } from './schema.js';
import type { DomainWrite, ListOptions, Page, Store, WriteContext } from './store.js';

/** Limits on resource fields. */
export const RESOURCE_LIMITS = {
  type: NAME_LIMITS.label,
  /** The whole name `D:TYPE/ID`. */
  name: NAME_LIMITS.resource,
  /** Characters of the properties as canonical JSON. */
  properties: 65_536,
} as const;

/** A registered resource. */
export interface ResourceRecord {
  domain: string;
  type: string;
  id: string;
  properties: Record<string, unknown>;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** What putResource takes. Type and id are case-insensitive and stored lower-case. */
export interface ResourceInput {
  type: string;
  id: string;
  properties?: Record<string, unknown> | undefined;
}

function resourceRecord(row: ResourcesTable): ResourceRecord {
  return {
    domain: row.domain,
    type: row.type,
    id: row.id,
    properties: JSON.parse(row.properties) as Record<string, unknown>,
    revision: row.revision,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Checks and lower-cases a resource type and id of domain `domain`, adding issues at `type` and `id`. */
function checkTypeAndId(
  c: IssueCollector,
  domain: string,
  type: unknown,
  id: unknown,
): { type: string; id: string } | undefined {
  const t = c.label(type, 'type', 'resource.invalid_type', 'resource type');
  const room = RESOURCE_LIMITS.name - domain.length - (t?.length ?? 0) - 2;
  const i = c.text(typeof id === 'string' ? id.toLowerCase() : id, 'id', {
    code: 'resource.invalid_id',
    max: Math.max(1, room),
    noSpace: true,
  });
  if (i !== undefined && /[*?]/.test(i)) {
    c.add('id', 'resource.invalid_id', `resource id "${i}" contains * or ?, which are glob characters`);
  }
  return c.ok && t !== undefined && i !== undefined ? { type: t, id: i } : undefined;
}

/** The storage of registered resources. */
export class ResourceStore {
  constructor(readonly store: Store) {}

  /**
   * Creates or replaces a resource. With `expectedRevision`, only if the resource exists at
   * that revision (PreconditionFailedError otherwise).
   */
  async putResource(
    domain: string,
    input: ResourceInput,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<ResourceRecord>> {
    const d = String(domain).toLowerCase();
    const c = new IssueCollector();
    const key = checkTypeAndId(c, d, input.type, input.id);
    const properties =
      input.properties === undefined
        ? {}
        : c.jsonObject(input.properties, 'properties', 'resource.invalid_properties', RESOURCE_LIMITS.properties);
    c.throwIfAny();
    const { type, id } = key as { type: string; id: string };
    return this.store.writeInDomain(d, ctx, async (tx, now) => {
      const existing = await this.findIn(tx, d, type, id);
      if (expectedRevision !== undefined && existing?.revision !== expectedRevision) {
        throw new PreconditionFailedError(
          'revision.stale',
          `resource ${type}/${id} is at revision ${existing?.revision ?? 'none (it does not exist)'}, not ${expectedRevision}`,
          existing?.revision,
        );
      }
      const json = JSON.stringify(properties);
      if (existing === undefined) {
        await tx
          .insertInto('resources')
          .values({ domain: d, type, id, properties: json, revision: 1, created_at: now, updated_at: now })
          .execute();
      } else {
        await this.bump(tx, d, type, id, existing.revision, { properties: json, updated_at: now });
      }
      const record = resourceRecord((await this.findIn(tx, d, type, id)) as ResourcesTable);
      return {
        record,
        audit: {
          action: existing === undefined ? 'resource.create' : 'resource.update',
          objectType: 'resource',
          objectName: `${type}/${id}`,
          before: existing === undefined ? null : resourceRecord(existing),
          after: record,
        },
      };
    });
  }

  /** Gets a resource; NotFoundError when the domain or the resource does not exist. */
  async getResource(domain: string, type: string, id: string): Promise<ResourceRecord> {
    const d = String(domain).toLowerCase();
    await this.store.getDomain(d);
    const t = String(type).toLowerCase();
    const i = String(id).toLowerCase();
    const row = await this.findIn(this.store.db, d, t, i);
    if (row === undefined) {
      throw new NotFoundError('resource.not_found', `resource ${t}/${i} does not exist in domain ${d}`);
    }
    return resourceRecord(row);
  }

  /** Lists a domain's resources by type and id, optionally of one type. */
  async listResources(
    domain: string,
    options: ListOptions & { type?: string | undefined } = {},
  ): Promise<Page<ResourceRecord>> {
    const d = String(domain).toLowerCase();
    await this.store.getDomain(d);
    const limit = pageLimit(options.limit);
    let q = this.store.db
      .selectFrom('resources')
      .selectAll()
      .where('domain', '=', d)
      .orderBy('type')
      .orderBy('id')
      .limit(limit + 1);
    if (options.type !== undefined) q = q.where('type', '=', options.type.toLowerCase());
    const after = keyOfCursor(options.cursor, 2);
    if (after !== undefined) {
      const [t, i] = splitCompositeKey(after, 2) as [string, string];
      q = q.where((eb) => eb.or([eb('type', '>', t), eb.and([eb('type', '=', t), eb('id', '>', i)])]));
    }
    const page = paginate(await q.execute(), limit, (r) => compositeKey(r.type, r.id));
    return { ...page, items: page.items.map(resourceRecord) };
  }

  /** Deletes a resource (optionally only from `expectedRevision`). */
  deleteResource(
    domain: string,
    type: string,
    id: string,
    expectedRevision: number | undefined,
    ctx: WriteContext,
  ): Promise<DomainWrite<null>> {
    const d = String(domain).toLowerCase();
    const t = String(type).toLowerCase();
    const i = String(id).toLowerCase();
    return this.store.writeInDomain(d, ctx, async (tx) => {
      const existing = await this.findIn(tx, d, t, i);
      if (existing === undefined) {
        throw new NotFoundError('resource.not_found', `resource ${t}/${i} does not exist in domain ${d}`);
      }
      if (expectedRevision !== undefined && existing.revision !== expectedRevision) {
        throw new PreconditionFailedError(
          'revision.stale',
          `resource ${t}/${i} is at revision ${existing.revision}, not ${expectedRevision}`,
          existing.revision,
        );
      }
      await tx
        .deleteFrom('resources')
        .where('domain', '=', d)
        .where('type', '=', t)
        .where('id', '=', i)
        .where('revision', '=', existing.revision)
        .execute();
      return {
        record: null,
        audit: {
          action: 'resource.delete',
          objectType: 'resource',
          objectName: `${t}/${i}`,
          before: resourceRecord(existing),
          after: null,
        },
      };
    });
  }

  private findIn(db: Queryable, domain: string, type: string, id: string): Promise<ResourcesTable | undefined> {
    return db
      .selectFrom('resources')
      .selectAll()
      .where('domain', '=', domain)
      .where('type', '=', type)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  /** Moves the resource from revision `from` to the next with `set`: a conditional UPDATE. */
  private async bump(
    tx: Transaction<Database>,
    domain: string,
    type: string,
    id: string,
    from: number,
    set: Partial<ResourcesTable>,
  ): Promise<void> {
    const r = await tx
      .updateTable('resources')
      .set({ ...set, revision: from + 1 })
      .where('domain', '=', domain)
      .where('type', '=', type)
      .where('id', '=', id)
      .where('revision', '=', from)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) {
      throw new PreconditionFailedError('revision.stale', `resource ${type}/${id} changed meanwhile`);
    }
  }
}
