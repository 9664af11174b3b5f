import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runPolicyTests } from '../src/cli/policy-test-command.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const example = join(root, 'examples/library/library.test.yaml');

// config-format.md "Policy tests": one line per failing case, then `N passed, M failed`, exit 1.
describe('gatehouse test', () => {
  it('passes the library example', () => {
    expect(runPolicyTests([example])).toEqual({ output: '23 passed, 0 failed', exitCode: 0 });
  });

  it('fails with the file and line of each failing case, and for unreadable files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
    const file = join(dir, 'bad.test.yaml');
    writeFileSync(
      file,
      `config: [${join(root, 'examples/library/library.yaml')}]
now: "2026-06-01T00:00:00Z"
tests:
  - name: eve is suspended
    principal: user.eve
    action: read
    resource: library:book/1
    expect: allow
`,
    );
    const run = runPolicyTests([file, join(dir, 'missing.yaml')]);
    expect(run.exitCode).toBe(1);
    expect(run.output.split('\n')).toEqual([
      `${file}:4: FAIL eve is suspended: expected allow, got deny: denied: no assertion allows user.eve to read library:book/1`,
      expect.stringMatching(/missing\.yaml:1:1: cannot read: ENOENT.*\(test\.unreadable\)$/),
      '0 passed, 2 failed',
    ]);
  });

  it('runs as a command with the exit code', () => {
    const bin = join(root, 'packages/server/bin/gatehouse.js');
    expect(execFileSync(process.execPath, [bin, 'test', example], { encoding: 'utf8' })).toBe('23 passed, 0 failed\n');
    expect(() => execFileSync(process.execPath, [bin, 'test', 'nope.yaml'], { stdio: 'pipe' })).toThrow(
      /Command failed/,
    );
  });
});
