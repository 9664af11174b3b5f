import { describe, expect, it } from 'vitest';
import {
  compileBundle,
  createCatalog,
  decideToken,
  parseConfigFile,
  toBundlePayload,
  type Catalog,
  type TokenClaims,
} from '@gatehouse/engine';
import { NOW } from './fixtures.js';

const parsed = parseConfigFile(
  't.yaml',
  `
domains:
  - name: library
    groups:
      - { name: staff }
      - { name: night, parent: staff }
    roles:
      - { name: readers }
      - { name: senior }
    policies:
      - name: books
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
          - { effect: deny, action: read, resource: "library:book/rare-*", role: readers }
          - { effect: allow, action: approve, resource: "library:loan/*", role: readers, requires: [senior] }
          - { effect: allow, action: dust, resource: "library:shelf/*", group: staff, includeSubgroups: true }
          - { effect: allow, action: peek, resource: "library:shelf/*", group: staff }
          - { effect: allow, action: read, resource: "library:report/q3", principal: user.erin }
      - name: old
        active: false
        assertions:
          - { effect: allow, action: "*", resource: "library:*", principal: "*" }
  - name: empty
    enabled: false
`,
);
if (parsed.issues.length > 0) throw new Error(JSON.stringify(parsed.issues));
const issuedAt = new Date(NOW - 1000);
const bundles = parsed.domains.map((d) => compileBundle(toBundlePayload(d, issuedAt, new Date(NOW + 3_600_000))));
const catalog: Catalog = createCatalog(bundles);
const exp = NOW / 1000 + 60;
const check = (claims: TokenClaims, action: string, resource: string, now = NOW, clockSkewSeconds = 0) =>
  decideToken(catalog, claims, action, resource, { now, clockSkewSeconds }).status;

// semantics.md "Local engine (token mode)".
describe('decideToken', () => {
  const reader = { sub: 'user.alice', domain: 'library', roles: ['library:role.readers'], exp };

  it('allows, denies, and reports no match', () => {
    expect(check(reader, 'read', 'library:book/1')).toBe('ALLOW');
    expect(check(reader, 'read', 'library:book/rare-1')).toBe('DENY');
    expect(check(reader, 'write', 'library:book/1')).toBe('DENY_NO_MATCH');
  });

  it('ignores inactive policy versions, which bundles do not even carry', () => {
    expect(check({ sub: 'user.x', domain: 'library', exp }, 'read', 'library:book/1')).toBe('DENY_NO_MATCH');
  });

  it('treats role names case-insensitively and ignores other domains’ roles', () => {
    expect(check({ ...reader, roles: ['Library:Role.READERS'] }, 'read', 'library:book/1')).toBe('ALLOW');
    expect(check({ ...reader, roles: ['partner:role.readers'] }, 'read', 'library:book/1')).toBe('DENY_NO_MATCH');
  });

  it('reads a missing or empty roles claim as no roles', () => {
    expect(check({ sub: 'user.erin', domain: 'library', exp }, 'read', 'library:report/q3')).toBe('ALLOW');
    expect(check({ sub: 'user.erin', domain: 'library', roles: [], exp }, 'read', 'library:report/q3')).toBe('ALLOW');
  });

  it('needs every required role from the token', () => {
    expect(check(reader, 'approve', 'library:loan/1')).toBe('DENY_NO_MATCH');
    expect(
      check({ ...reader, roles: ['library:role.readers', 'library:role.senior'] }, 'approve', 'library:loan/1'),
    ).toBe('ALLOW');
  });

  it('reaches ancestor groups with includeSubgroups only', () => {
    const night = { sub: 'user.dave', domain: 'library', groups: ['library:group.night'], exp };
    expect(check(night, 'dust', 'library:shelf/1')).toBe('ALLOW');
    expect(check(night, 'peek', 'library:shelf/1')).toBe('DENY_NO_MATCH');
  });

  it('is expired from exp on, within the skew (RFC 7519 §4.1.4)', () => {
    expect(check(reader, 'read', 'library:book/1', exp * 1000 - 1)).toBe('ALLOW');
    expect(check(reader, 'read', 'library:book/1', exp * 1000)).toBe('DENY_TOKEN_EXPIRED');
    expect(check(reader, 'read', 'library:book/1', exp * 1000, 30)).toBe('ALLOW');
    expect(check(reader, 'read', 'library:book/1', exp * 1000 + 30_000, 30)).toBe('DENY_TOKEN_EXPIRED');
  });

  it('refuses malformed tokens and tokens issued in the future', () => {
    expect(check({ ...reader, exp: undefined }, 'read', 'library:book/1')).toBe('DENY_TOKEN_INVALID');
    expect(check({ ...reader, exp: '1' }, 'read', 'library:book/1')).toBe('DENY_TOKEN_INVALID');
    expect(check({ ...reader, roles: 'library:role.readers' }, 'read', 'library:book/1')).toBe('DENY_TOKEN_INVALID');
    expect(check({ ...reader, iat: NOW / 1000 + 10 }, 'read', 'library:book/1')).toBe('DENY_TOKEN_INVALID');
    expect(check({ ...reader, iat: NOW / 1000 + 10 }, 'read', 'library:book/1', NOW, 10)).toBe('ALLOW');
  });

  it('checks parameters and domains', () => {
    expect(check(reader, '', 'library:book/1')).toBe('DENY_INVALID_PARAMETERS');
    expect(check(reader, 'read', '')).toBe('DENY_INVALID_PARAMETERS');
    expect(check(reader, 'read', 'book/1')).toBe('ALLOW');
    expect(check(reader, 'read', 'partner:book/1')).toBe('DENY_DOMAIN_MISMATCH');
    expect(check({ sub: 'user.x', domain: 'nowhere', exp }, 'read', 'nowhere:x')).toBe('DENY_DOMAIN_NOT_FOUND');
    expect(check({ sub: 'user.x', domain: 'empty', exp }, 'read', 'empty:x')).toBe('DENY_DOMAIN_EMPTY');
    expect(check({ sub: 'user.x', exp }, 'read', 'book/1')).toBe('DENY_INVALID_PARAMETERS');
    // Without a domain claim the token speaks for the domains of its roles.
    expect(check({ sub: 'user.alice', roles: ['library:role.readers'], exp }, 'read', 'book/1')).toBe('ALLOW');
  });

  it('fails closed once the bundle has expired', () => {
    const later = NOW + 3_600_000;
    expect(check({ ...reader, exp: later / 1000 + 60 }, 'read', 'library:book/1', later)).toBe('DENY_DOMAIN_EXPIRED');
  });

  it('explains on request', () => {
    const d = decideToken(catalog, reader, 'read', 'library:book/1', { now: NOW, explain: true });
    expect(d.explanation?.deciding[0]).toMatchObject({
      matchedAs: 'library:role.readers',
      assertion: { policy: 'books', index: 0 },
    });
  });
});
