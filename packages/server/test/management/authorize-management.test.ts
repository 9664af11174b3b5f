import { compileCatalog, parseConfigFile } from '@gatehouse/engine';
import { describe, expect, it } from 'vitest';
import { canCreateDomain, canManage } from '../../src/management/authorize-management.js';

const NOW = new Date('2026-06-01T00:00:00Z');
const parsed = parseConfigFile(
  'f.yaml',
  `
domains:
  - name: sys
  - name: sys.auth
    admins: [user.root]
  - name: library
    admins: [user.alice]
    roles:
      - { name: auditors, members: [user.audrey] }
    policies:
      - name: management
        assertions:
          - { effect: allow, action: read, resource: "library:*", role: auditors }
  - name: shop
    admins: [user.sam]
`,
);
if (parsed.issues.length > 0) throw new Error(JSON.stringify(parsed.issues));
const catalog = compileCatalog(parsed.domains);

// api.md §3 "Authorization of management calls is a Gatehouse decision like any other".
describe('canManage', () => {
  it.each([
    ['user.alice', 'update', 'library', 'role.readers', true],
    ['user.alice', 'read', 'shop', 'domain', false],
    ['user.alice', 'update', 'shop', 'role.x', false],
    ['user.sam', 'delete', 'library', 'policy.books', false],
    ['user.root', 'delete', 'library', 'policy.books', true],
    ['user.root', 'update', 'shop', 'domain', true],
    ['user.audrey', 'read', 'library', 'role.readers', true],
    ['user.audrey', 'update', 'library', 'role.readers', false],
    ['user.nobody', 'read', 'library', 'domain', false],
    ['user.alice', 'update', 'sys.auth', 'role.admin', false],
  ] as const)('%s %s %s:%s → %s', (principal, action, domain, object, expected) => {
    expect(canManage(catalog, principal, action, domain, object, NOW)).toBe(expected);
  });

  it('lets domain admins create subdomains, and only super admins top-level domains', () => {
    expect(canCreateDomain(catalog, 'user.alice', 'library.archive', NOW)).toBe(true);
    expect(canCreateDomain(catalog, 'user.alice', 'shop.x', NOW)).toBe(false);
    expect(canCreateDomain(catalog, 'user.alice', 'newtop', NOW)).toBe(false);
    expect(canCreateDomain(catalog, 'user.root', 'newtop', NOW)).toBe(true);
  });
});
