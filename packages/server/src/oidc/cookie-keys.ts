/**
 * The keys that sign oidc-provider's cookies (session, interaction, resume: Koa's keygrip, HMAC),
 * the same on every node, or a browser bounced between nodes would lose its session.
 *
 * - With GATEHOUSE_MASTER_KEY set: derived from it with HKDF-SHA256 (RFC 5869; empty salt, info
 *   `gatehouse oidc cookie keys v1`). Nothing is stored; every node holding the master key (they
 *   all must, docs/keys.md) derives the same key, and changing the master key changes it.
 * - Without one: 32 random bytes stored once in `oidc_payloads` (model `GatehouseSecret`, id
 *   `oidc-cookie-keys`, no expiry), created by whichever node starts first — an insert that does
 *   nothing when the row exists, then a read, so that nodes starting together agree. Like the
 *   signing keys without a master key, it is readable by whoever reads the database.
 *
 * Changing from one to the other (setting a master key later) signs cookies with a new key:
 * sessions and interactions in progress are lost and users sign in again; tokens are unaffected.
 */

import { hkdfSync, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../storage/schema.js';

/** The `oidc_payloads` row holding the stored cookie key. */
export const COOKIE_KEY_ROW = { model: 'GatehouseSecret', id: 'oidc-cookie-keys' } as const;

const HKDF_INFO = 'gatehouse oidc cookie keys v1';
const KEY_BYTES = 32;

/**
 * oidc-provider's `cookies.keys`: one key, base64url. Throws when the stored row is malformed
 * (someone edited it) rather than sign with something else, and passes database errors through.
 */
export async function loadCookieKeys(db: Kysely<Database>, masterKey: Uint8Array | undefined): Promise<string[]> {
  if (masterKey !== undefined) {
    return [Buffer.from(hkdfSync('sha256', masterKey, new Uint8Array(0), HKDF_INFO, KEY_BYTES)).toString('base64url')];
  }
  await db
    .insertInto('oidc_payloads')
    .values({
      ...COOKIE_KEY_ROW,
      payload: JSON.stringify({ key: randomBytes(KEY_BYTES).toString('base64url') }),
      grant_id: null,
      user_code: null,
      uid: null,
      expires_at: null,
      consumed_at: null,
    })
    .onConflict((oc) => oc.columns(['model', 'id']).doNothing())
    .execute();
  const row = await db
    .selectFrom('oidc_payloads')
    .select('payload')
    .where('model', '=', COOKIE_KEY_ROW.model)
    .where('id', '=', COOKIE_KEY_ROW.id)
    .executeTakeFirstOrThrow();
  let key: unknown;
  try {
    key = (JSON.parse(row.payload) as { key?: unknown }).key;
  } catch (err) {
    throw new Error('the stored oidc cookie key is not JSON', { cause: err });
  }
  if (typeof key !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(key)) {
    throw new Error('the stored oidc cookie key is malformed');
  }
  return [key];
}
