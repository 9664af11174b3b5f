import { describe, expect, it } from 'vitest';
import { formatFileIssues, parseConfigFile } from './config-file.js';

function issuesOf(text: string) {
  return parseConfigFile('f.yaml', text).issues;
}

// config-format.md: unknown fields are errors with line and column; references are checked.
describe('parseConfigFile', () => {
  it('parses the documented shape into models with the built-in admin role and policy', () => {
    const r = parseConfigFile(
      'f.yaml',
      `users:
  - name: alice
    email: alice@example.com
    attributes: { department: eng }
domains:
  - name: Library
    admins: [user.alice]
    roles:
      - name: readers
        members: [user.bob]
    policies:
      - name: books
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
`,
    );
    expect(r.issues).toEqual([]);
    expect(r.principals).toEqual([
      { name: 'user.alice', email: 'alice@example.com', attributes: { department: 'eng' } },
    ]);
    const d = r.domains[0]!;
    expect(d.roles!.map((x) => x.name)).toEqual(['readers', 'admin']);
    expect(d.roles![1]!.members).toEqual([{ name: 'user.alice' }]);
    expect(d.policies!.map((p) => p.name)).toEqual(['books', 'admin']);
    expect(d.policies![1]!.assertions).toEqual([
      { effect: 'allow', action: '*', resource: 'Library:*', role: 'admin' },
    ]);
  });

  it('reports unknown fields at the key, with line and column', () => {
    const issues = issuesOf(`domains:
  - name: library
    rolez: []
`);
    expect(issues).toMatchObject([{ line: 3, column: 5, path: 'domains[0].rolez', code: 'config.unknown_field' }]);
  });

  it('reports wrong types and missing fields', () => {
    const issues = issuesOf(`domains:
  - name: library
    enabled: "yes"
    roles:
      - members: []
`);
    expect(issues.map((i) => [i.path, i.code, i.line])).toEqual([
      ['domains[0].enabled', 'config.type', 3],
      ['domains[0].roles[0]', 'config.missing_field', 5],
    ]);
  });

  it('forbids defining the built-in admin role and policy', () => {
    const issues = issuesOf(`domains:
  - name: library
    roles: [{ name: admin }]
    policies: [{ name: Admin, assertions: [] }]
`);
    expect(issues.map((i) => i.code)).toEqual(['config.reserved', 'config.reserved']);
  });

  it('reports a missing reference with its path and position', () => {
    const issues = issuesOf(`domains:
  - name: library
    roles: [{ name: readers }]
    policies:
      - name: books
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
          - { effect: allow, action: read, resource: "library:book/*", role: librarians }
`);
    expect(issues).toMatchObject([
      { line: 8, path: 'domains[0].policies[0].assertions[1].role', code: 'role.not_found' },
    ]);
    expect(formatFileIssues(issues)).toMatch(
      /^f\.yaml:8:\d+: domains\[0\]\.policies\[0\]\.assertions\[1\]\.role: role "librarians"/,
    );
  });

  it('collects every error, not just the first', () => {
    const issues = issuesOf(`domains:
  - name: library
    roles:
      - { name: a, members: [library:role.b] }
      - { name: b, members: [library:role.a] }
      - { name: Bad Name }
    policies:
      - name: p
        assertions:
          - { effect: allow, action: read, resource: "nodomain", role: a }
          - { effect: allow, action: read, resource: "library:x", role: "other:role.a" }
          - { effect: allow, action: read, resource: "library:x", role: a, group: g }
          - { effect: allow, action: read, resource: "library:x", role: a, condition: "resource.properties.x ==" }
`);
    expect(issues.map((i) => i.code).sort()).toEqual(
      [
        'role.invalid',
        'role.cycle',
        'assertion.invalid_resource',
        'assertion.foreign_role',
        'assertion.subject',
        'policy.invalid_condition',
      ].sort(),
    );
  });

  it('points a condition error into the expression', () => {
    const issues = issuesOf(`domains:
  - name: library
    roles: [{ name: r }]
    policies:
      - name: p
        assertions:
          - effect: allow
            action: read
            resource: "library:x"
            role: r
            condition: "subject.id == owner"
`);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ line: 11, code: 'policy.invalid_condition' });
    expect(issues[0]!.message).toContain(
      'unknown variable "owner" (known: subject, resource, action, context, now) at line 1, column 15',
    );
    expect(issues[0]!.column).toBe('            condition: "subject.id == owner'.indexOf('owner') + 1);
  });

  it('checks cross-domain references and subdomain parents', () => {
    const issues = issuesOf(`domains:
  - name: library.archive
  - name: library2
    roles:
      - { name: r, members: [other:group.staff], trust: partner }
`);
    expect(issues.map((i) => [i.path, i.code])).toEqual([
      ['domains[0].name', 'domain.parent_not_found'],
      ['domains[1].roles[0].members', 'role.delegated_members'],
      ['domains[1].roles[0].members[0].name', 'domain.not_found'],
      ['domains[1].roles[0].trust', 'domain.not_found'],
    ]);
  });

  it('maps an error in admins back to admins', () => {
    const issues = issuesOf(`domains:
  - name: library
    admins: [user.alice, "not a principal"]
`);
    expect(issues).toMatchObject([{ path: 'domains[0].admins[1].name', line: 3 }]);
  });

  it('reports YAML syntax errors and duplicate keys with their position', () => {
    expect(issuesOf('domains: [\n')).toMatchObject([{ code: 'file.syntax', line: 2 }]);
    expect(issuesOf('domains: []\ndomains: []\n')).toMatchObject([{ code: 'file.syntax', line: 2 }]);
  });

  it('accepts JSON', () => {
    const r = parseConfigFile('f.json', '{"domains":[{"name":"library","roles":[{"name":"readers"}]}]}');
    expect(r.issues).toEqual([]);
    expect(r.domains).toHaveLength(1);
  });

  it('refuses alias bombs', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 0; i < 8; i++)
      lines.push(
        `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`,
      );
    const issues = issuesOf(lines.join('\n'));
    expect(issues.some((i) => i.code === 'file.too_many_aliases')).toBe(true);
  });

  it('treats an empty file as an empty config', () => {
    expect(parseConfigFile('f.yaml', '')).toMatchObject({ issues: [], domains: [], principals: [] });
  });

  it('does not let a __proto__ key pollute anything', () => {
    const r = parseConfigFile('f.yaml', 'domains:\n  - name: library\n    __proto__: { polluted: true }\n');
    expect(r.issues.map((i) => i.code)).toEqual(['config.unknown_field']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
