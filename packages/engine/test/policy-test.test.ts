import { describe, expect, it } from 'vitest';
import { formatPolicyTestReports, resolveRelative, runPolicyTestFile } from '@gatehouse/engine';

const files: Record<string, string> = {
  'dir/base.yaml': `
domains:
  - name: library
    roles: [{ name: readers, members: [user.alice] }]
    policies:
      - name: p
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
`,
  'dir/more.yaml': `
domains:
  - name: library.archive
    roles: [{ name: r, members: [library:group.nope] }]
`,
};
const readFile = (p: string): string => {
  const f = files[p];
  if (f === undefined) throw new Error('ENOENT');
  return f;
};

// config-format.md "Policy tests".
describe('runPolicyTestFile', () => {
  it('passes and fails cases, with the line of each failure', () => {
    const text = `config: [base.yaml]
now: "2026-06-01T00:00:00Z"
tests:
  - name: ok
    principal: user.alice
    action: read
    resource: library:book/1
    expect: allow
  - name: wrong
    principal: user.bob
    action: read
    resource: library:book/1
    expect: allow
`;
    const r = runPolicyTestFile('dir/t.test.yaml', text, { readFile });
    expect(r).toMatchObject({ passed: 1, failed: 1, issues: [] });
    expect(formatPolicyTestReports([r])).toBe(
      'dir/t.test.yaml:9: FAIL wrong: expected allow, got deny: denied: no assertion allows user.bob to read library:book/1\n1 passed, 1 failed',
    );
  });

  it('reports an unreadable config and errors inside the config files with their file and line', () => {
    const missing = runPolicyTestFile('dir/t.yaml', 'config: [gone.yaml]\nnow: "2026-06-01T00:00:00Z"\ntests: []\n', {
      readFile,
    });
    expect(missing.issues).toMatchObject([
      { code: 'test.config_unreadable', line: 1, message: expect.stringContaining('dir/gone.yaml') },
    ]);
    const invalid = runPolicyTestFile(
      'dir/t.yaml',
      'config: [base.yaml, more.yaml]\nnow: "2026-06-01T00:00:00Z"\ntests: []\n',
      { readFile },
    );
    expect(invalid.issues).toMatchObject([{ file: 'dir/more.yaml', line: 4, code: 'group.not_found' }]);
    expect(formatPolicyTestReports([invalid])).toMatch(/\n0 passed, 1 failed$/);
  });

  it('rejects malformed cases one by one', () => {
    const text = `config: base.yaml
tests:
  - name: no instant
    principal: user.alice
    action: read
    resource: library:book/1
    expect: allow
  - name: two expectations
    now: "2026-06-01T00:00:00Z"
    expect: allow
    expectRoles: [readers]
  - name: typo
    now: "2026-06-01T00:00:00Z"
    expct: allow
`;
    const r = runPolicyTestFile('dir/t.yaml', text, { readFile });
    expect(r.failures.map((f) => [f.line, f.message])).toEqual([
      [3, 'no instant: set now in the file or the case (RFC 3339)'],
      [8, 'a case has exactly one of expect, expectActions, expectRoles, expectStatus'],
      [12, 'unknown field(s): expct'],
    ]);
  });

  it('resolves paths relative to the test file', () => {
    expect(resolveRelative('a/b/t.yaml', 'c.yaml')).toBe('a/b/c.yaml');
    expect(resolveRelative('a/b/t.yaml', '../c.yaml')).toBe('a/c.yaml');
    expect(resolveRelative('t.yaml', './c.yaml')).toBe('c.yaml');
    expect(resolveRelative('/x/t.yaml', 'c.yaml')).toBe('/x/c.yaml');
    expect(resolveRelative('a/t.yaml', '/abs/c.yaml')).toBe('/abs/c.yaml');
    expect(resolveRelative('t.yaml', '../c.yaml')).toBe('../c.yaml');
  });
});
