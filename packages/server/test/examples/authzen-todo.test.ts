import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runPolicyTests } from '../../src/cli/policy-test-command.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const bin = join(root, 'packages/server/bin/gatehouse.js');
const tests = join(root, 'examples/authzen-todo/todo.test.yaml');
const run = promisify(execFile);

// The product's examples/authzen-todo: the AuthZEN interop Todo scenario as a config file, its
// policy tests, and a script that runs it against a real server in one command.
describe('examples/authzen-todo', () => {
  it('passes its policy tests', async () => {
    expect(runPolicyTests([tests])).toEqual({ output: '49 passed, 0 failed', exitCode: 0 });
    const { stdout } = await run(process.execPath, [bin, 'test', 'examples/authzen-todo/todo.test.yaml'], {
      cwd: root,
    });
    expect(stdout).toBe('49 passed, 0 failed\n');
  });

  it('runs the scenario against a scratch server: every answer as expected, nothing left behind', async () => {
    // execFile rejects on a non-zero exit code, with the output in the error.
    const { stdout } = await run(process.execPath, ['examples/authzen-todo/run.mjs'], {
      cwd: root,
      timeout: 90_000,
    });
    expect(stdout).toContain('Summary: 45 of 45 decisions as expected.');
    expect(stdout).not.toContain('MISMATCH');
    expect(stdout).toMatch(/• Stopping the server \(pid \d+\)\n• Removed .*gatehouse-todo-/);
  }, 120_000);
});
