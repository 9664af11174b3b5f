import { verifyAuditChain } from '../storage/audit-log.js';
import { migrateToLatest, openDatabase } from '../storage/open-database.js';
import { KeyService, type KeyPurpose } from '../keys/key-service.js';
import { CommandError, configFromEnv, withStore, type CommandOutput } from './run-operator-command.js';

/** `gatehouse migrate`: brings the database schema up to date and says what it ran. */
export async function runMigrate(output: CommandOutput): Promise<void> {
  const config = configFromEnv();
  const database = await openDatabase(config.database, { migrate: false });
  try {
    const ran = await migrateToLatest(database.db, undefined);
    output.out(
      ran.length === 0 ? 'The database schema is up to date.' : `Ran ${ran.length} migration(s): ${ran.join(', ')}`,
    );
  } finally {
    await database.close();
  }
}

/** `gatehouse audit verify`: walks the hash chain; exit 1 when an event was edited or removed. */
export async function runAuditVerify(output: CommandOutput): Promise<void> {
  await withStore(configFromEnv(), async (store) => {
    const v = await verifyAuditChain(store.db);
    if (!v.ok)
      throw new CommandError(
        `The audit trail was tampered with: ${v.problem} (${v.events} event(s) before it verify).`,
      );
    output.out(`The audit trail is intact: ${v.events} event(s); head ${v.headHash}.`);
  });
}

/** `gatehouse keys rotate`: a new signing key; the old one stays published until its tokens expire. */
export async function runKeysRotate(purpose: KeyPurpose, output: CommandOutput): Promise<void> {
  const config = configFromEnv();
  await withStore(config, async (_store, database) => {
    const keys = new KeyService({
      db: database.db,
      masterKey: config.masterKey,
      maxTokenTtlSeconds: Math.max(config.accessTokenTtlSeconds, config.bundleTtlSeconds),
    });
    await keys.ensureKeys({ actor: 'operator' });
    const kid = await keys.rotate(purpose, { actor: 'operator' });
    output.out(`Rotated the ${purpose} signing key: the new key is ${kid}.`);
  });
}
