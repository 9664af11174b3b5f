import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCli } from '../../src/cli/build-cli.js';
import type { LoginEnvironment } from '../../src/cli/login-command.js';
import type { CommandOutput } from '../../src/cli/run-operator-command.js';
import { loadConfig } from '../../src/config/load-config.js';
import { OPERATOR } from '../../src/management/management-service.js';
import { createGatehouse, type Gatehouse } from '../../src/runtime/create-gatehouse.js';
import { cheapHasher } from '../storage/store-fixtures.js';

/** The secret of the service library.deployer. */
export const DEPLOYER_SECRET = 'deployer-secret-0123456789';

/** A whole node (createGatehouse) serving on 127.0.0.1, its public URL naming its real port. */
export interface LoginNode {
  /** `http://127.0.0.1:<port>` = GATEHOUSE_PUBLIC_URL. */
  readonly base: string;
  readonly gh: Gatehouse;
  /** A scratch directory, removed by close(). */
  readonly dir: string;
  close(): Promise<void>;
}

/**
 * Starts a node on SQLite with domain `library` administered by the service `library.deployer`
 * (secret DEPLOYER_SECRET) and the user `user.alice`.
 */
export async function startLoginNode(): Promise<LoginNode> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-login-'));
  // The issuer names the port: take one before building the app, as test/oidc/oidc-fixture.ts does.
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const config = loadConfig({
    GATEHOUSE_DATABASE_URL: `sqlite:${join(dir, 'g.db')}`,
    GATEHOUSE_PUBLIC_URL: base,
    GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS: '600',
  });
  const gh = await createGatehouse(config, { logger: false, hasher: cheapHasher() });
  const operator = { principal: OPERATOR };
  await gh.management.createUser(operator, { name: 'alice', password: 'alice-password-0123' });
  await gh.management.createDomain(operator, {
    name: 'library',
    admins: [{ name: 'library.deployer' }, { name: 'user.alice' }],
  });
  await gh.management.createService(operator, 'library', { name: 'deployer', secret: DEPLOYER_SECRET });
  await gh.app.ready();
  server.on('request', gh.app.routing);
  return {
    base,
    gh,
    dir,
    async close() {
      server.closeAllConnections();
      server.close();
      await gh.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh configuration directory under `dir` (never the real home), as GATEHOUSE_CONFIG_DIR. */
export function configEnv(dir: string, name: string): { GATEHOUSE_CONFIG_DIR: string } {
  const configDir = join(dir, name);
  mkdirSync(dir, { recursive: true });
  return { GATEHOUSE_CONFIG_DIR: configDir };
}

/** Output captured line by line. */
export function capture(): CommandOutput & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t) };
}

/**
 * Runs `gatehouse ARGS…` as the command line would (commander, actions, exit code), with
 * `environment` instead of the process's. Returns the output and the exit code.
 */
export async function runCli(
  args: string[],
  environment: LoginEnvironment,
): Promise<{ stdout: string[]; stderr: string[]; exitCode: number }> {
  const output = capture();
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    const program = buildCli(output, environment).exitOverride();
    for (const c of program.commands) c.exitOverride();
    await program.parseAsync(['node', 'gatehouse', ...args]);
    return { stdout: output.stdout, stderr: output.stderr, exitCode: Number(process.exitCode ?? 0) };
  } finally {
    process.exitCode = before;
  }
}
