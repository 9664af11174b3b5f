import { Command, Option } from 'commander';
import { runAuditVerify, runKeysRotate, runMigrate } from './admin-commands.js';
import { runApply, runExport } from './apply-command.js';
import { runInit, runToken } from './init-command.js';
import { runLogin, runLogout, runWhoami, type LoginEnvironment } from './login-command.js';
import { runPolicyTests } from './policy-test-command.js';
import { CommandError, processOutput, type CommandOutput } from './run-operator-command.js';
import { runServe } from './serve-command.js';

/** Runs a command's action; a CommandError ends it with its message and exit code. */
function action<A extends unknown[]>(
  output: CommandOutput,
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      output.err(err.message);
      process.exitCode = err.exitCode;
    }
  };
}

/**
 * Builds the `gatehouse` command line. `environment` replaces the process's environment, browser
 * and standard input for the commands that talk to a server (tests).
 */
export function buildCli(output: CommandOutput = processOutput, environment: LoginEnvironment = {}): Command {
  const program = new Command('gatehouse')
    .description('Gatehouse: authorization server, policy store, AuthZEN decision service')
    .showHelpAfterError();
  const server = new Option('--server <url>', 'work against a running server instead of the local database').env(
    'GATEHOUSE_SERVER',
  );
  const token = new Option(
    '--token <token>',
    'access token for --server (default: the one `gatehouse login` stored for that server)',
  ).env('GATEHOUSE_TOKEN');
  const audience = (): Option =>
    new Option('--audience <api>', 'the API the token is for: the management API, or the decision API (AuthZEN)')
      .choices(['management', 'pdp'])
      .default('management');
  const loginServer = (): Option =>
    new Option('--server <url>', 'the server (default: GATEHOUSE_SERVER, else the server of the last login)').env(
      'GATEHOUSE_SERVER',
    );

  program
    .command('serve')
    .description('start the server (configuration from GATEHOUSE_* variables; see docs/configuration.md)')
    .action(action(output, () => runServe(output)));
  program
    .command('migrate')
    .description('bring the database schema up to date')
    .action(action(output, () => runMigrate(output)));
  program
    .command('init')
    .description(
      'create the reserved domains and the first super admin (password from GATEHOUSE_ADMIN_PASSWORD, or generated and printed once)',
    )
    .option('--admin <name>', 'the super admin user name', 'admin')
    .action(action(output, (opts: { admin: string }) => runInit(opts, output)));
  program
    .command('token')
    .description('print an access token for a principal (operator mode: needs the database)')
    .option('--subject <principal>', 'the principal the token is for', 'user.admin')
    .option('--ttl <seconds>', 'lifetime in seconds (60 to 86400)', '3600')
    .addOption(audience())
    .action(
      action(output, (opts: { subject: string; ttl: string; audience: 'management' | 'pdp' }) =>
        runToken({ subject: opts.subject, ttlSeconds: Number(opts.ttl), audience: opts.audience }, output),
      ),
    );
  program
    .command('apply')
    .description('make the domains a config file names match it: prints the plan, then applies it in one transaction')
    .requiredOption('-f, --file <file>', 'config file (YAML or JSON; see docs/config-file.md)')
    .option('--dry-run', 'print the plan and change nothing')
    .addOption(server)
    .addOption(token)
    .action(
      action(output, (opts: { file: string; dryRun?: boolean; server?: string; token?: string }) =>
        runApply(
          { file: opts.file, dryRun: opts.dryRun === true, server: opts.server, token: opts.token },
          output,
          environment,
        ),
      ),
    );
  program
    .command('export')
    .description('print domains (all when none is named) in the config file format')
    .argument('[domains...]', 'domain names')
    .addOption(server)
    .addOption(token)
    .action(
      action(output, (domains: string[], opts: { server?: string; token?: string }) =>
        runExport(
          domains,
          { ...(opts.server ? { server: opts.server } : {}), ...(opts.token ? { token: opts.token } : {}) },
          output,
          environment,
        ),
      ),
    );
  program
    .command('login')
    .description(
      'sign in to a server and store a token for later --server commands: in the browser (authorization code with PKCE), ' +
        'or as a service or confidential client with --client-id and --client-secret (client credentials)',
    )
    .addOption(loginServer())
    .option('--client-id <id>', 'log in as this service or confidential client instead of in the browser')
    .addOption(
      new Option('--client-secret <secret>', 'the secret of --client-id; "-" reads it from standard input').env(
        'GATEHOUSE_CLIENT_SECRET',
      ),
    )
    .addOption(audience())
    .option('--no-browser', 'print the sign-in URL without opening a browser')
    .action(
      action(
        output,
        (
          opts: {
            server?: string;
            clientId?: string;
            clientSecret?: string;
            audience: 'management' | 'pdp';
            browser: boolean;
          },
          command: Command,
        ) => {
          const source = command.getOptionValueSource('clientSecret');
          return runLogin(
            {
              server: opts.server,
              clientId: opts.clientId,
              clientSecret: opts.clientSecret,
              clientSecretSource: source === 'env' ? 'env' : source === 'cli' ? 'cli' : undefined,
              audience: opts.audience,
              browser: opts.browser,
            },
            output,
            environment,
          );
        },
      ),
    );
  program
    .command('logout')
    .description("forget the token stored for a server (and revoke the login's refresh token there)")
    .addOption(loginServer())
    .action(action(output, (opts: { server?: string }) => runLogout(opts, output, environment)));
  program
    .command('whoami')
    .description('show whom the token stored for a server is for, its audience and its expiry (read, not verified)')
    .addOption(loginServer())
    .action(action(output, (opts: { server?: string }) => runWhoami(opts, output, environment)));
  program
    .command('test')
    .description('run policy test files (see docs/policy-tests.md) without a server')
    .argument('<files...>', 'policy test files (YAML or JSON)')
    .action((files: string[]) => {
      const run = runPolicyTests(files);
      output.out(run.output);
      process.exitCode = run.exitCode;
    });
  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .description('check that no audit event was edited or removed (exit 1 when one was)')
    .action(action(output, () => runAuditVerify(output)));
  const keys = program.command('keys').description('signing keys');
  keys
    .command('rotate')
    .description('add a new signing key; the old one stays in the JWKS until what it signed has expired')
    .addOption(new Option('--purpose <purpose>', 'which key').choices(['token', 'control']).default('token'))
    .action(action(output, (opts: { purpose: 'token' | 'control' }) => runKeysRotate(opts.purpose, output)));
  return program;
}
