import { randomBytes } from 'node:crypto';
import { ADMIN_ROLE } from '@gatehouse/engine';
import { mintAccessToken } from '../keys/access-tokens.js';
import { KeyService } from '../keys/key-service.js';
import { SUPER_ADMIN_DOMAIN } from '../management/authorize-management.js';
import { ensureReservedDomains } from '../runtime/ensure-reserved-domains.js';
import { UserStore } from '../storage/user-store.js';
import { CommandError, configFromEnv, withStore, type CommandOutput } from './run-operator-command.js';

/**
 * `gatehouse init`: creates the reserved domains and the first super admin (a user, member of
 * `sys.auth:role.admin`) with the password of GATEHOUSE_ADMIN_PASSWORD, or a generated one
 * printed once. Does nothing when super admins exist already.
 */
export async function runInit(
  options: { admin: string },
  output: CommandOutput,
  env: Record<string, string | undefined> = process.env,
): Promise<void> {
  const config = configFromEnv(env);
  await withStore(config, async (store) => {
    const created = await ensureReservedDomains(store);
    if (created.length > 0) output.err(`Created the reserved domains ${created.join(', ')}.`);
    const admins = await store.getRole(SUPER_ADMIN_DOMAIN, ADMIN_ROLE);
    if (admins.members.length > 0) {
      output.out(`Gatehouse is initialised: super admins are ${admins.members.map((m) => m.name).join(', ')}.`);
      return;
    }
    const given = env.GATEHOUSE_ADMIN_PASSWORD;
    const password = given && given.length > 0 ? given : randomBytes(18).toString('base64url');
    const users = new UserStore(store);
    const name = options.admin.toLowerCase();
    const ctx = { actor: 'operator' };
    await store.transaction(async (tx) => {
      const inTx = new UserStore(tx, { hasher: users.hasher });
      const exists = await tx.db.selectFrom('users').select('name').where('name', '=', name).executeTakeFirst();
      if (exists === undefined) await inTx.createUser({ name, password }, ctx);
      else if (!given)
        throw new CommandError(
          `user ${name} exists already; set GATEHOUSE_ADMIN_PASSWORD or choose another --admin name`,
        );
      else await inTx.updateUser(name, { password }, undefined, ctx);
      await tx.putMember('role', SUPER_ADMIN_DOMAIN, ADMIN_ROLE, { name: `user.${name}` }, undefined, ctx);
    });
    output.out(
      given
        ? `Created the super admin user.${name} with the password from GATEHOUSE_ADMIN_PASSWORD.`
        : `Created the super admin user.${name}. Password (shown once; store it now): ${password}`,
    );
  });
}

/**
 * `gatehouse token`: mints a management API access token for a principal, straight from the
 * database's signing key (operator mode: whoever can read the database can do this anyway).
 */
export async function runToken(
  options: { subject: string; ttlSeconds: number; audience?: 'management' | 'pdp' },
  output: CommandOutput,
): Promise<void> {
  const config = configFromEnv();
  if (!Number.isSafeInteger(options.ttlSeconds) || options.ttlSeconds < 60 || options.ttlSeconds > 86_400) {
    throw new CommandError('--ttl must be a whole number of seconds from 60 to 86400');
  }
  await withStore(config, async (_store, database) => {
    const keys = new KeyService({
      db: database.db,
      masterKey: config.masterKey,
      maxTokenTtlSeconds: config.accessTokenTtlSeconds,
    });
    await keys.ensureKeys({ actor: 'operator' });
    const token = await mintAccessToken(keys, {
      issuer: `${config.publicUrl}/oidc`,
      subject: options.subject.toLowerCase(),
      // The management API's audience, or the decision API's (docs/authzen.md "Authentication").
      audience: `${config.publicUrl}/${options.audience === 'pdp' ? 'pdp' : 'v1'}`,
      ttlSeconds: options.ttlSeconds,
    });
    output.out(token);
  });
}
