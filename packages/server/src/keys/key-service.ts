/**
 * The signing keys of the two key holders (architecture.md "Scale-out"): `token` signs access tokens
 * and the token plane's bundle signature, `control` the control plane's bundle signature (api.md §4).
 * Keys live in the `keys` table, shared by every node; private keys are encrypted at rest when a
 * master key is set (MasterKeyCipher) and never leave this service: callers get a non-extractable
 * CryptoKey to sign with, and public JWKs.
 *
 * Every node keeps the keys in memory and reads them again after `refreshSeconds`, on `reload()`,
 * and when a verifier meets an unknown kid. The current key of a purpose is its newest non-retired
 * key (by created_at, then kid), so every node that has read the same rows signs with the same key.
 */

import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { sql, type Kysely, type Transaction } from 'kysely';
import { appendAudit } from '../storage/audit-log.js';
import { NotFoundError } from '../storage/errors.js';
import type { Database, KeysTable } from '../storage/schema.js';
import { MasterKeyCipher } from './master-key-cipher.js';

/** What a key signs: access tokens (`token`) or the control plane's bundle signature (`control`). */
export type KeyPurpose = 'token' | 'control';

/** Every purpose, in the order ensureKeys creates them. */
export const KEY_PURPOSES: readonly KeyPurpose[] = ['token', 'control'];

/** The JWS algorithms a key may have: Ed25519 (`EdDSA`, the default) or P-256 (`ES256`). */
export type SigningAlgorithm = 'EdDSA' | 'ES256';

const SIGNING_ALGORITHMS: readonly string[] = ['EdDSA', 'ES256'] satisfies SigningAlgorithm[];

/** The key to sign with: its kid and alg go into the JWS header. The private key cannot be exported. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: CryptoKey;
}

/** A public key to verify with, found by kid. */
export interface VerificationKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly publicKey: CryptoKey;
}

/** A JWK Set (RFC 7517 §5) of public keys. */
export interface PublicJwks {
  keys: JWK[];
}

/** Options of a KeyService. */
export interface KeyServiceOptions {
  db: Kysely<Database>;
  /** GATEHOUSE_MASTER_KEY (32 bytes); without it private keys are stored unencrypted, with a warning. */
  masterKey?: Uint8Array | undefined;
  /** The time, injected for tests (default: the system clock). */
  clock?: () => Date;
  /** The algorithm of keys created from now on (default EdDSA); existing keys keep theirs. */
  alg?: SigningAlgorithm;
  /**
   * The longest lifetime of anything signed with these keys (the access token TTL, or the bundle
   * TTL if longer). rotate's default overlap is this plus `refreshSeconds`.
   */
  maxTokenTtlSeconds?: number | undefined;
  /** How long the in-memory copy of the keys is used before it is read again (default 60). */
  refreshSeconds?: number;
  /** Where warnings go (default process.emitWarning). */
  warn?: (message: string) => void;
}

/** Options of rotate. */
export interface RotateOptions {
  /** Who rotates, for the audit trail. */
  actor: string;
  requestId?: string | undefined;
  /**
   * How long the retired key stays in the JWKS (default: maxTokenTtlSeconds + refreshSeconds).
   * It must cover the lifetime of the last token signed with it, including by nodes that have not
   * yet read the rotation (they may for up to refreshSeconds).
   */
  overlapSeconds?: number | undefined;
}

/** A `keys` row as the service holds it; the private key stays in its stored (encrypted) form. */
interface StoredKey {
  readonly kid: string;
  readonly purpose: KeyPurpose;
  readonly alg: SigningAlgorithm;
  readonly publicJwk: JWK;
  readonly createdAt: string;
  readonly retiredAt: string | null;
  readonly expiresAt: string | null;
  readonly storedPrivateJwk: string;
}

interface Snapshot {
  readonly generation: number;
  readonly loadedAtMs: number;
  readonly byKid: ReadonlyMap<string, StoredKey>;
  readonly current: ReadonlyMap<KeyPurpose, StoredKey>;
}

const DEFAULT_REFRESH_SECONDS = 60;
const KID_BYTES = 16;
/** JWK members that carry private or symmetric key material (RFC 7518 §6). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * The key service of one node. Create one per process; call ensureKeys() at start-up. Methods
 * throw NotFoundError (`key.not_found`) when a purpose has no key yet, KeyDecryptionError when a
 * private key cannot be decrypted, and pass database errors through.
 */
export class KeyService {
  /** The clock the service stamps keys with; token code uses it as the default time. */
  readonly clock: () => Date;
  readonly #db: Kysely<Database>;
  readonly #cipher: MasterKeyCipher;
  readonly #alg: SigningAlgorithm;
  readonly #maxTokenTtlSeconds: number | undefined;
  readonly #refreshMs: number;
  readonly #warn: (message: string) => void;
  #snapshot: Snapshot | undefined;
  #reads = 0;
  #generation = 0;
  #refreshing: Promise<void> | undefined;
  readonly #publicKeys = new Map<string, Promise<CryptoKey>>();
  readonly #privateKeys = new Map<string, Promise<CryptoKey>>();

  constructor(options: KeyServiceOptions) {
    this.#db = options.db;
    this.#cipher = new MasterKeyCipher(options.masterKey);
    this.clock = options.clock ?? (() => new Date());
    this.#alg = options.alg ?? 'EdDSA';
    this.#maxTokenTtlSeconds = options.maxTokenTtlSeconds;
    this.#refreshMs = (options.refreshSeconds ?? DEFAULT_REFRESH_SECONDS) * 1000;
    this.#warn = options.warn ?? ((message) => process.emitWarning(message, { code: 'GATEHOUSE_KEYS' }));
  }

  /**
   * Increases every time the keys are read from the database: anything derived from them (a
   * verifier's cache) re-checks its key when this changes.
   */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Makes sure each purpose has a current key, creating the first one where none exists (audited as
   * `key.create`). Safe when several nodes start together on one database: creation is serialised,
   * so they all end up with the same current key. With a master key, re-encrypts keys stored in
   * the clear; without one, warns. Finally decrypts the current keys, so a wrong master key fails
   * here (KeyDecryptionError) rather than at the first signature.
   */
  async ensureKeys(context: { actor?: string; requestId?: string | undefined } = {}): Promise<void> {
    for (const purpose of KEY_PURPOSES) {
      if ((await findCurrentRow(this.#db, purpose)) !== undefined) continue;
      const created = await this.#newKey(purpose);
      await this.#db.transaction().execute(async (tx) => {
        await lockKeyWrites(tx);
        // Another node may have created the key while this one waited for the lock.
        if ((await findCurrentRow(tx, purpose)) !== undefined) return;
        await tx.insertInto('keys').values(created.row).execute();
        await appendAudit(tx, {
          actor: context.actor ?? 'system',
          action: 'key.create',
          domain: null,
          objectType: 'key',
          objectName: created.row.kid,
          before: null,
          after: auditView(created.row),
          requestId: context.requestId,
          at: this.clock(),
        });
      });
    }
    if (this.#cipher.encrypts) await this.#encryptPlainKeys();
    else this.#warn('GATEHOUSE_MASTER_KEY is not set: private signing keys are stored unencrypted in the database');
    await this.reload();
    for (const purpose of KEY_PURPOSES) await this.currentSigningKey(purpose);
  }

  /**
   * Reads the keys from the database now. Resolves once the service holds every key committed
   * before the call.
   */
  async reload(): Promise<void> {
    const generation = ++this.#reads;
    const loadedAtMs = this.clock().getTime();
    const rows = await this.#db
      .selectFrom('keys')
      .selectAll()
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('expires_at', '>', new Date(loadedAtMs).toISOString())]))
      .execute();
    // A slower, older read must not replace a newer one.
    if (this.#snapshot !== undefined && this.#snapshot.generation > generation) return;
    const byKid = new Map<string, StoredKey>();
    const current = new Map<KeyPurpose, StoredKey>();
    for (const row of rows) {
      const key = storedKeyOf(row);
      byKid.set(key.kid, key);
      const best = current.get(key.purpose);
      if (key.retiredAt === null && (best === undefined || isNewer(key, best))) current.set(key.purpose, key);
    }
    for (const cache of [this.#publicKeys, this.#privateKeys]) {
      for (const kid of cache.keys()) if (!byKid.has(kid)) cache.delete(kid);
    }
    this.#snapshot = { generation, loadedAtMs, byKid, current };
    this.#generation = generation;
  }

  /**
   * The key to sign with for `purpose` (cached; re-read after refreshSeconds). Throws NotFoundError
   * when the purpose has no key (ensureKeys was not called), KeyDecryptionError when its private
   * key cannot be decrypted.
   */
  async currentSigningKey(purpose: KeyPurpose): Promise<SigningKey> {
    const snapshot = await this.#fresh();
    const key = snapshot.current.get(purpose);
    if (key === undefined) {
      throw new NotFoundError('key.not_found', `there is no ${purpose} signing key: ensureKeys() creates it`);
    }
    let privateKey = this.#privateKeys.get(key.kid);
    if (privateKey === undefined) {
      privateKey = importSigningKey(key, this.#cipher);
      this.#privateKeys.set(key.kid, privateKey);
      privateKey.catch(() => this.#privateKeys.delete(key.kid));
    }
    return { kid: key.kid, alg: key.alg, privateKey: await privateKey };
  }

  /**
   * The public key `kid` of `purpose` from the keys in memory, or undefined when there is no such
   * key, it has another purpose, or it is retired and past its expiry. Does not read the database;
   * call reload() first to look for keys made since.
   */
  async findVerificationKey(purpose: KeyPurpose, kid: string): Promise<VerificationKey | undefined> {
    const snapshot = await this.#fresh();
    const key = snapshot.byKid.get(kid);
    if (key === undefined || key.purpose !== purpose || !isPublished(key, this.clock())) return undefined;
    let publicKey = this.#publicKeys.get(kid);
    if (publicKey === undefined) {
      publicKey = importJWK(key.publicJwk, key.alg) as Promise<CryptoKey>;
      this.#publicKeys.set(kid, publicKey);
      publicKey.catch(() => this.#publicKeys.delete(kid));
    }
    return { kid, alg: key.alg, publicKey: await publicKey };
  }

  /**
   * The JWK Set of `purpose`: every non-retired key, and every retired key whose expiry is still
   * ahead (tokens it signed may still be valid). The current key comes first. Public members only.
   */
  async publicJwks(purpose: KeyPurpose): Promise<PublicJwks> {
    const snapshot = await this.#fresh();
    const now = this.clock();
    const keys = [...snapshot.byKid.values()]
      .filter((k) => k.purpose === purpose && isPublished(k, now))
      .sort((a, b) => (isNewer(a, b) ? -1 : 1));
    return { keys: keys.map((k) => ({ ...k.publicJwk })) };
  }

  /**
   * Adds a new key for `purpose` with the service's algorithm, makes it current, and retires the
   * previous one: retired now, expiring after the overlap, and listed in the JWKS until then.
   * Audited as `key.rotate` (domain null). Returns the new kid. Throws TypeError when neither
   * `overlapSeconds` nor the service's maxTokenTtlSeconds is given.
   */
  async rotate(purpose: KeyPurpose, options: RotateOptions): Promise<string> {
    const overlapSeconds =
      options.overlapSeconds ??
      (this.#maxTokenTtlSeconds === undefined ? undefined : this.#maxTokenTtlSeconds + this.#refreshMs / 1000);
    if (overlapSeconds === undefined || !Number.isFinite(overlapSeconds) || overlapSeconds < 0) {
      throw new TypeError('rotate needs overlapSeconds ≥ 0, or maxTokenTtlSeconds in the KeyService options');
    }
    const created = await this.#newKey(purpose);
    const now = this.clock();
    const expiresAt = new Date(now.getTime() + overlapSeconds * 1000).toISOString();
    await this.#db.transaction().execute(async (tx) => {
      await lockKeyWrites(tx);
      const previous = await tx
        .selectFrom('keys')
        .select(['kid', 'alg'])
        .where('purpose', '=', purpose)
        .where('retired_at', 'is', null)
        .orderBy('created_at', 'desc')
        .orderBy('kid', 'desc')
        .execute();
      await tx
        .updateTable('keys')
        .set({ retired_at: now.toISOString(), expires_at: expiresAt })
        .where('purpose', '=', purpose)
        .where('retired_at', 'is', null)
        .execute();
      await tx.insertInto('keys').values(created.row).execute();
      await appendAudit(tx, {
        actor: options.actor,
        action: 'key.rotate',
        domain: null,
        objectType: 'key',
        objectName: created.row.kid,
        before: { purpose, current: previous.map((p) => ({ kid: p.kid, alg: p.alg })) },
        after: { ...auditView(created.row), retired: previous.map((p) => p.kid), retiredExpiresAt: expiresAt },
        requestId: options.requestId,
        at: now,
      });
    });
    if (this.#cipher.encrypts) await this.#encryptPlainKeys();
    await this.reload();
    return created.row.kid;
  }

  /** The snapshot, read again when missing or older than refreshSeconds (one read at a time). */
  async #fresh(): Promise<Snapshot> {
    const snapshot = this.#snapshot;
    const now = this.clock().getTime();
    if (snapshot !== undefined && now - snapshot.loadedAtMs < this.#refreshMs && now >= snapshot.loadedAtMs) {
      return snapshot;
    }
    this.#refreshing ??= this.reload().finally(() => {
      this.#refreshing = undefined;
    });
    await this.#refreshing;
    return this.#snapshot!;
  }

  async #newKey(purpose: KeyPurpose): Promise<{ row: KeysTable }> {
    const alg = this.#alg;
    const kid = randomBytes(KID_BYTES).toString('base64url');
    const pair = await generateKeyPair(alg, { extractable: true });
    const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
    const privateJwk = await exportJWK(pair.privateKey);
    return {
      row: {
        kid,
        purpose,
        alg,
        public_jwk: JSON.stringify(publicJwk),
        private_jwk: this.#cipher.encrypt(kid, privateJwk),
        created_at: this.clock().toISOString(),
        retired_at: null,
        expires_at: null,
      },
    };
  }

  /** Encrypts, in place, every private key stored in the clear (a master key was set later). */
  async #encryptPlainKeys(): Promise<void> {
    const rows = await this.#db
      .selectFrom('keys')
      .select(['kid', 'private_jwk'])
      .where('private_jwk', 'like', 'plain.%')
      .execute();
    for (const row of rows) {
      const sealed = this.#cipher.encrypt(row.kid, this.#cipher.decrypt(row.kid, row.private_jwk));
      // Compare-and-set: when two nodes do this at once, one value wins and both decrypt the same.
      await this.#db
        .updateTable('keys')
        .set({ private_jwk: sealed })
        .where('kid', '=', row.kid)
        .where('private_jwk', '=', row.private_jwk)
        .execute();
    }
    if (rows.length > 0) this.#warn(`encrypted ${rows.length} private key(s) that were stored in the clear`);
  }
}

type Queryable = Kysely<Database> | Transaction<Database>;

/** The newest non-retired key of `purpose`, if any. */
async function findCurrentRow(db: Queryable, purpose: KeyPurpose): Promise<{ kid: string } | undefined> {
  return db
    .selectFrom('keys')
    .select('kid')
    .where('purpose', '=', purpose)
    .where('retired_at', 'is', null)
    .orderBy('created_at', 'desc')
    .orderBy('kid', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/**
 * Serialises key creation and rotation across nodes until `tx` ends. The keys table has no
 * constraint that allows only one current key per purpose, so check-then-insert needs a lock. The
 * audit chain's head row is the one row every node already locks for audited writes (appendAudit);
 * a no-op update takes that lock on PostgreSQL (row lock) and SQLite (the write lock) alike.
 */
async function lockKeyWrites(tx: Transaction<Database>): Promise<void> {
  await tx
    .updateTable('audit_head')
    .set({ seq: sql`seq` })
    .where('id', '=', 1)
    .execute();
}

function storedKeyOf(row: KeysTable): StoredKey {
  if (!SIGNING_ALGORITHMS.includes(row.alg)) throw new Error(`key ${row.kid} has an unsupported alg ${row.alg}`);
  const alg = row.alg as SigningAlgorithm;
  const jwk = JSON.parse(row.public_jwk) as JWK;
  // Whatever the column holds, only public members are ever published.
  for (const member of PRIVATE_JWK_MEMBERS) delete (jwk as Record<string, unknown>)[member];
  return {
    kid: row.kid,
    purpose: row.purpose,
    alg,
    publicJwk: Object.freeze({ ...jwk, kid: row.kid, alg, use: 'sig' }),
    createdAt: row.created_at,
    retiredAt: row.retired_at,
    expiresAt: row.expires_at,
    storedPrivateJwk: row.private_jwk,
  };
}

/** Orders keys newest first: created_at, then kid, so every node picks the same current key. */
function isNewer(a: StoredKey, b: StoredKey): boolean {
  return a.createdAt !== b.createdAt ? a.createdAt > b.createdAt : a.kid > b.kid;
}

/** Non-retired, or retired with its expiry still ahead. */
function isPublished(key: StoredKey, now: Date): boolean {
  return key.retiredAt === null || (key.expiresAt !== null && key.expiresAt > now.toISOString());
}

async function importSigningKey(key: StoredKey, cipher: MasterKeyCipher): Promise<CryptoKey> {
  const jwk = cipher.decrypt(key.kid, key.storedPrivateJwk);
  return (await importJWK(jwk, key.alg, { extractable: false })) as CryptoKey;
}

function auditView(row: KeysTable): Record<string, unknown> {
  return { kid: row.kid, purpose: row.purpose, alg: row.alg, publicJwk: JSON.parse(row.public_jwk) as unknown };
}
