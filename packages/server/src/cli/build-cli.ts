import { Command } from 'commander';
import { runPolicyTests } from './policy-test-command.js';

/** Builds the `gatehouse` command line. */
export function buildCli(): Command {
  const program = new Command('gatehouse')
    .description('Gatehouse: authorization server, policy store, AuthZEN decision service')
    .showHelpAfterError();
  program
    .command('test')
    .description('run policy test files (see docs/policy-tests.md) without a server')
    .argument('<files...>', 'policy test files (YAML or JSON)')
    .action((files: string[]) => {
      const run = runPolicyTests(files);
      process.stdout.write(`${run.output}\n`);
      process.exitCode = run.exitCode;
    });
  return program;
}
