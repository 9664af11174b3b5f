/**
 * oidc-provider's storage adapter over our database (SQLite or PostgreSQL, one Kysely query set):
 * the token plane's state — access tokens, codes, refresh tokens, grants, sessions, interactions,
 * device codes… — lives in one table, `oidc_payloads` (migration 0003), keyed by (model, id).
 *
 * Design note for the lead:
 * - `createDatabaseAdapter(db)` returns the class oidc-provider's `adapter` option takes; the
 *   provider calls `new Adapter(modelName)` once per model. Its contract is oidc-provider's
 *   example/my_adapter.js; what oidc-provider leaves open is decided here:
 * - `upsert` is one `insert … on conflict (model, id) do update` statement: atomic on both
 *   databases, no check-then-insert. It replaces the whole row, `consumed` included. The class's
 *   `upsertMany` writes several rows of one model the same way, in one statement.
 * - `find`, `findByUid`, `findByUserCode` return undefined for a row past its expiry (`expiresIn`
 *   plus `clockToleranceSeconds`, against the injected clock); expired rows are deleted by
 *   `purgeExpired(limit)`, a bounded batch per call, oldest first — the runtime calls it on a timer.
 * - `consume` is single-use enforced by the database (architecture.md "Storage"): one conditional
 *   `update … where consumed_at is null`. oidc-provider checks `payload.consumed` before it
 *   consumes, so two concurrent redemptions of one code or refresh token both pass that check;
 *   here only one update wins. The loser revokes the family — the grant's tokens and the Grant,
 *   what oidc-provider does with its default `revokeGrantPolicy` when it sees a consumed code or
 *   rotated refresh token again (RFC 6749 §4.1.2, RFC 9700 §4.14.2); without the Grant, tokens the
 *   winner saves afterwards fail oidc-provider's grant checks — and throws OidcConsumeError, which
 *   `mapConsumeError` can turn into `errors.InvalidGrant` (RFC 6749 §5.2 `invalid_grant`).
 * - `revokeByGrantId` deletes every grant-bound row (GRANT_BOUND_MODELS, the same set as
 *   oidc-provider's memory adapter) with that grant id, whichever model's adapter is asked:
 *   oidc-provider calls it once per model, skipping models the client's grant types no longer
 *   allow, and a family must go whole. The Grant row itself (its id is the grant id) is removed by
 *   oidc-provider through `destroy`, as `revokeGrantPolicy` decides; an Interaction naming the
 *   grant is not a credential and stays.
 * - Limits: payloads over `maxPayloadBytes` (64 KiB by default) and ids over 1,024 characters are
 *   refused; lookups with a key no row can have (too long, NUL) return undefined without a query,
 *   so a hostile token value never reaches the driver.
 */

import type { Kysely } from 'kysely';
import type { Database, OidcPayloadsTable } from '../storage/schema.js';

/** What oidc-provider stores for one model instance: a JSON object. */
export type OidcPayload = Record<string, unknown>;

/** One adapter instance: the storage of one oidc-provider model (example/my_adapter.js). */
export interface OidcAdapter {
  /** Inserts or replaces the instance `id`; it expires `expiresIn` seconds from now (never when undefined). */
  upsert(id: string, payload: OidcPayload, expiresIn?: number): Promise<void>;
  /** The instance `id`, with `consumed` (epoch seconds) once consumed; undefined when absent or expired. */
  find(id: string): Promise<OidcPayload | undefined>;
  /** The instance whose payload has this `uid` (sessions); undefined when absent or expired. */
  findByUid(uid: string): Promise<OidcPayload | undefined>;
  /** The instance whose payload has this `userCode` (device flow); undefined when absent or expired. */
  findByUserCode(userCode: string): Promise<OidcPayload | undefined>;
  /** Marks the instance consumed, once: throws (see OidcConsumeError) when it already was or is gone. */
  consume(id: string): Promise<void>;
  /** Deletes the instance; nothing happens when it does not exist. */
  destroy(id: string): Promise<void>;
  /** Deletes every grant-bound instance (GRANT_BOUND_MODELS, any model) of the grant. */
  revokeByGrantId(grantId: string): Promise<void>;
}

/** The class oidc-provider's `adapter` option takes, plus the purge the runtime schedules. */
export interface OidcAdapterClass {
  new (model: string): OidcAdapter;
  /**
   * Deletes up to `limit` expired rows (of every model), oldest first; returns how many. Bounded
   * work per call: run it on a timer until it returns less than `limit`. Throws RangeError when
   * `limit` is not an integer in 1..10,000.
   */
  purgeExpired(limit: number): Promise<number>;
  /**
   * Inserts or replaces several instances of `model` in one statement — all or none — as
   * `upsert` does one (the last entry of a repeated id wins). For writers that batch (the JWT
   * access token records, jwt-access-tokens.ts). Throws OidcPayloadError as `upsert` does,
   * TypeError for a bad model name, RangeError for more than MAX_UPSERT_BATCH entries.
   */
  upsertMany(model: string, entries: readonly OidcUpsert[]): Promise<void>;
}

/** One instance for upsertMany: what `upsert` takes. */
export interface OidcUpsert {
  readonly id: string;
  readonly payload: OidcPayload;
  /** Seconds from now; never expires when undefined. */
  readonly expiresIn?: number | undefined;
}

/** Options of createDatabaseAdapter. */
export interface DatabaseAdapterOptions {
  /** The time, injected for tests (default: the system clock). */
  clock?: () => Date;
  /**
   * Seconds a row is still found after its `expiresIn` (default 0). Set it to oidc-provider's
   * `clockTolerance`, which oidc-provider applies when it checks `exp` itself.
   */
  clockToleranceSeconds?: number;
  /** Largest payload stored, in UTF-8 bytes of its JSON (default 64 KiB). */
  maxPayloadBytes?: number;
  /**
   * The error `consume` throws when it loses (OidcConsumeError by default). The provider wiring
   * returns oidc-provider's `errors.InvalidGrant` here, so the token endpoint answers `invalid_grant`.
   */
  mapConsumeError?: (error: OidcConsumeError) => Error;
}

/**
 * The models whose instances belong to a grant (a token family): revokeByGrantId deletes them.
 * The same set as oidc-provider's lib/adapters/memory_adapter.js (`grantable`).
 */
export const GRANT_BOUND_MODELS: readonly string[] = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
];

/** Default largest payload: 64 KiB of JSON. Sessions, interactions and clients are a few KiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024;

/** Longest id, uid, user code or grant id stored; oidc-provider's own are 21–43 characters. */
export const MAX_OIDC_KEY_LENGTH = 1024;

/** Largest batch purgeExpired deletes in one statement. */
export const MAX_PURGE_BATCH = 10_000;

/** Most instances upsertMany writes in one statement (8 parameters each, within both databases' limits). */
export const MAX_UPSERT_BATCH = 500;

const MODEL_NAME = /^[A-Za-z][A-Za-z0-9]{0,63}$/;

/** Why upsert refused a payload: `oidc.payload_too_large`, `oidc.invalid_payload`, `oidc.invalid_key`. */
export class OidcPayloadError extends Error {
  readonly code: 'oidc.payload_too_large' | 'oidc.invalid_payload' | 'oidc.invalid_key';
  constructor(code: OidcPayloadError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OidcPayloadError';
    this.code = code;
  }
}

/**
 * consume lost: the instance was already consumed (`oidc.already_consumed`; its grant's tokens
 * and the Grant have been deleted) or does not exist any more (`oidc.not_found`).
 */
export class OidcConsumeError extends Error {
  readonly code: 'oidc.already_consumed' | 'oidc.not_found';
  readonly model: string;
  readonly id: string;
  constructor(code: OidcConsumeError['code'], model: string, id: string) {
    super(
      code === 'oidc.already_consumed'
        ? `${model} ${id} was already consumed; its grant is revoked`
        : `${model} ${id} does not exist`,
    );
    this.name = 'OidcConsumeError';
    this.code = code;
    this.model = model;
    this.id = id;
  }
}

/** Whether a row could have this key: a string of 1..MAX_OIDC_KEY_LENGTH characters without NUL. */
function isStorableKey(value: unknown): value is string {
  // PostgreSQL text cannot hold NUL: the driver would throw for a lookup with one.
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_OIDC_KEY_LENGTH && !value.includes('\0');
}

/** The payload's string property `name` as a lookup key, or null when it has none. */
function keyOf(payload: OidcPayload, name: string): string | null {
  const value = payload[name];
  if (value === undefined || value === null) return null;
  if (!isStorableKey(value)) {
    throw new OidcPayloadError(
      'oidc.invalid_key',
      `payload.${name} must be a string of 1 to ${MAX_OIDC_KEY_LENGTH} characters without NUL`,
    );
  }
  return value;
}

/**
 * Returns the adapter class for oidc-provider's `adapter` option, over `db`. Every instance shares
 * `db` and the options; the class's `purgeExpired` deletes expired rows in bounded batches.
 */
export function createDatabaseAdapter(db: Kysely<Database>, options: DatabaseAdapterOptions = {}): OidcAdapterClass {
  const clock = options.clock ?? (() => new Date());
  const toleranceMs = (options.clockToleranceSeconds ?? 0) * 1000;
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const mapConsumeError = options.mapConsumeError ?? ((error: OidcConsumeError) => error);
  if (!Number.isFinite(toleranceMs) || toleranceMs < 0) {
    throw new RangeError('clockToleranceSeconds must be a finite number ≥ 0');
  }
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 1) {
    throw new RangeError('maxPayloadBytes must be a positive integer');
  }

  const nowMs = (): number => clock().getTime();

  async function revokeGrant(grantId: string): Promise<void> {
    await db
      .deleteFrom('oidc_payloads')
      .where('grant_id', '=', grantId)
      .where('model', 'in', GRANT_BOUND_MODELS)
      .execute();
  }

  // The grant's tokens and the Grant itself: tokens saved later under the grant (by the request
  // that won a consume race) then fail oidc-provider's grant checks (refresh, introspection,
  // userinfo all load the Grant).
  async function revokeFamily(grantId: string): Promise<void> {
    await db
      .deleteFrom('oidc_payloads')
      .where((eb) =>
        eb.or([
          eb.and([eb('grant_id', '=', grantId), eb('model', 'in', GRANT_BOUND_MODELS)]),
          eb.and([eb('model', '=', 'Grant'), eb('id', '=', grantId)]),
        ]),
      )
      .execute();
  }

  /** The row of one instance; throws OidcPayloadError for an id or payload that cannot be stored. */
  function rowOf(
    model: string,
    id: string,
    payload: OidcPayload,
    expiresIn: number | undefined,
    now: number,
  ): OidcPayloadsTable {
    if (!isStorableKey(id)) {
      throw new OidcPayloadError(
        'oidc.invalid_key',
        `${model} id must be a string of 1 to ${MAX_OIDC_KEY_LENGTH} characters without NUL`,
      );
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      throw new OidcPayloadError('oidc.invalid_payload', `${model} payload must be a JSON object`);
    }
    if (expiresIn !== undefined && (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn))) {
      throw new OidcPayloadError('oidc.invalid_payload', `${model} expiresIn must be a finite number of seconds`);
    }
    // `consumed` lives in its own column, so that consume is one conditional update.
    const { consumed, ...rest } = payload;
    let json: string;
    try {
      json = JSON.stringify(rest);
    } catch (err) {
      throw new OidcPayloadError('oidc.invalid_payload', `${model} payload is not JSON`, { cause: err });
    }
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > maxPayloadBytes) {
      throw new OidcPayloadError(
        'oidc.payload_too_large',
        `${model} payload is ${bytes} bytes; the limit is ${maxPayloadBytes}`,
      );
    }
    return {
      model,
      id,
      payload: json,
      grant_id: keyOf(payload, 'grantId'),
      user_code: keyOf(payload, 'userCode'),
      uid: keyOf(payload, 'uid'),
      expires_at: expiresIn === undefined ? null : Math.round(now + expiresIn * 1000 + toleranceMs),
      consumed_at: typeof consumed === 'number' && consumed > 0 ? consumed * 1000 : consumed ? now : null,
    };
  }

  /** Inserts or replaces `rows` in one statement: atomic on both databases. */
  async function upsertRows(rows: OidcPayloadsTable[]): Promise<void> {
    await db
      .insertInto('oidc_payloads')
      .values(rows)
      .onConflict((oc) =>
        oc.columns(['model', 'id']).doUpdateSet((eb) => ({
          payload: eb.ref('excluded.payload'),
          grant_id: eb.ref('excluded.grant_id'),
          user_code: eb.ref('excluded.user_code'),
          uid: eb.ref('excluded.uid'),
          expires_at: eb.ref('excluded.expires_at'),
          consumed_at: eb.ref('excluded.consumed_at'),
        })),
      )
      .execute();
  }

  function toPayload(row: Pick<OidcPayloadsTable, 'payload' | 'consumed_at'>): OidcPayload {
    const payload = JSON.parse(row.payload) as OidcPayload;
    if (row.consumed_at !== null) {
      // oidc-provider reads a truthy `consumed` (its memory adapter stores epoch seconds); never 0.
      payload.consumed = Math.max(1, Math.floor(row.consumed_at / 1000));
    }
    return payload;
  }

  return class DatabaseAdapter implements OidcAdapter {
    readonly model: string;

    constructor(model: string) {
      if (!MODEL_NAME.test(model)) throw new TypeError(`invalid oidc-provider model name: ${JSON.stringify(model)}`);
      this.model = model;
    }

    static async purgeExpired(limit: number): Promise<number> {
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PURGE_BATCH) {
        throw new RangeError(`limit must be an integer from 1 to ${MAX_PURGE_BATCH}`);
      }
      const result = await db
        .deleteFrom('oidc_payloads')
        .where(({ eb, refTuple, selectFrom }) =>
          eb(
            refTuple('model', 'id'),
            'in',
            selectFrom('oidc_payloads')
              .select(['model', 'id'])
              .where('expires_at', '<=', nowMs())
              .orderBy('expires_at')
              .limit(limit)
              .$asTuple('model', 'id'),
          ),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    }

    static async upsertMany(model: string, entries: readonly OidcUpsert[]): Promise<void> {
      if (!MODEL_NAME.test(model)) throw new TypeError(`invalid oidc-provider model name: ${JSON.stringify(model)}`);
      if (entries.length > MAX_UPSERT_BATCH) {
        throw new RangeError(`upsertMany takes at most ${MAX_UPSERT_BATCH} entries, not ${entries.length}`);
      }
      const now = nowMs();
      // One statement may not touch a row twice (PostgreSQL refuses): the last entry of an id wins.
      const byId = new Map<string, OidcPayloadsTable>();
      for (const e of entries) byId.set(e.id, rowOf(model, e.id, e.payload, e.expiresIn, now));
      if (byId.size > 0) await upsertRows([...byId.values()]);
    }

    async upsert(id: string, payload: OidcPayload, expiresIn?: number): Promise<void> {
      await upsertRows([rowOf(this.model, id, payload, expiresIn, nowMs())]);
    }

    async find(id: string): Promise<OidcPayload | undefined> {
      return this.#findBy('id', id);
    }

    async findByUid(uid: string): Promise<OidcPayload | undefined> {
      return this.#findBy('uid', uid);
    }

    async findByUserCode(userCode: string): Promise<OidcPayload | undefined> {
      return this.#findBy('user_code', userCode);
    }

    async consume(id: string): Promise<void> {
      if (isStorableKey(id)) {
        const result = await db
          .updateTable('oidc_payloads')
          .set({ consumed_at: nowMs() })
          .where('model', '=', this.model)
          .where('id', '=', id)
          .where('consumed_at', 'is', null)
          .executeTakeFirst();
        if (result.numUpdatedRows > 0n) return;
      }
      const existing = isStorableKey(id)
        ? await db
            .selectFrom('oidc_payloads')
            .select('grant_id')
            .where('model', '=', this.model)
            .where('id', '=', id)
            .executeTakeFirst()
        : undefined;
      if (existing === undefined) throw mapConsumeError(new OidcConsumeError('oidc.not_found', this.model, id));
      // Consumed by someone else since oidc-provider read it: a reuse, handled as oidc-provider
      // handles one it sees (lib/helpers/grant_source.js, grants/refresh_token.js).
      if (existing.grant_id !== null) await revokeFamily(existing.grant_id);
      throw mapConsumeError(new OidcConsumeError('oidc.already_consumed', this.model, id));
    }

    async destroy(id: string): Promise<void> {
      if (!isStorableKey(id)) return;
      await db.deleteFrom('oidc_payloads').where('model', '=', this.model).where('id', '=', id).execute();
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (!isStorableKey(grantId)) return;
      await revokeGrant(grantId);
    }

    async #findBy(column: 'id' | 'uid' | 'user_code', value: string): Promise<OidcPayload | undefined> {
      if (!isStorableKey(value)) return undefined;
      const row = await db
        .selectFrom('oidc_payloads')
        .select(['payload', 'consumed_at'])
        .where('model', '=', this.model)
        .where(column, '=', value)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', nowMs())]))
        .limit(1)
        .executeTakeFirst();
      return row === undefined ? undefined : toPayload(row);
    }
  };
}
