/**
 * @gatehouse/server — the Gatehouse server and the `gatehouse` command line. So far it holds the
 * CLI's offline commands; the server itself comes with the control-plane work (issue 3).
 */

export { buildCli } from './cli/build-cli.js';
export { runPolicyTests, type PolicyTestRun } from './cli/policy-test-command.js';
