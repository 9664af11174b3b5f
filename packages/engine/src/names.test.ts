import { describe, expect, it } from 'vitest';
import {
  NameError,
  memberKind,
  parseDomainName,
  parseQualifiedName,
  splitResource,
  validateDomainName,
  validatePrincipalName,
  validatePrincipalPattern,
  validateShortName,
} from './names.js';

// semantics.md "Names".
describe('domain names', () => {
  it.each(['library', 'library.archive', 'a_b-c.d1', '_x', '0'])('accepts %s', (name) => {
    expect(validateDomainName(name)).toBeUndefined();
  });
  it.each([
    ['', 'domain.invalid'],
    ['Library', 'domain.invalid'],
    ['-lib', 'domain.invalid'],
    ['lib..x', 'domain.invalid'],
    ['lib.', 'domain.invalid'],
    ['lib:x', 'domain.invalid'],
    ['a'.repeat(257), 'domain.too_long'],
    [`${'a'.repeat(65)}`, 'domain.invalid'],
  ])('rejects %j with %s', (name, code) => {
    expect(validateDomainName(name)?.code).toBe(code);
  });
  it('names the offending label and the rule', () => {
    expect(validateDomainName('lib.Bad')?.message).toContain('label "Bad" must match [a-z0-9_][a-z0-9_-]*');
  });
  it('parses lower-cased, and throws NameError with the code', () => {
    expect(parseDomainName('Library.Archive')).toBe('library.archive');
    expect(() => parseDomainName('bad name')).toThrow(NameError);
  });
});

describe('principals and member patterns', () => {
  it.each(['user.alice', 'library.indexer', 'a.b.c'])('accepts principal %s', (p) => {
    expect(validatePrincipalName(p)).toBeUndefined();
  });
  it.each(['alice', 'user.', 'user.*', 'user.a b'])('rejects principal %j', (p) => {
    expect(validatePrincipalName(p)).toBeDefined();
  });
  it.each(['*', 'user.*', 'user.a?', 'library.*'])('accepts pattern %s', (p) => {
    expect(validatePrincipalPattern(p)).toBeUndefined();
  });
  it.each(['user.a/b', '', 'alice'])('rejects pattern %j', (p) => {
    expect(validatePrincipalPattern(p)).toBeDefined();
  });
});

describe('role, group and policy names', () => {
  it('accepts short names and rejects bad ones', () => {
    expect(validateShortName('role', 'readers')).toBeUndefined();
    expect(validateShortName('role', 'night-shift')).toBeUndefined();
    expect(validateShortName('group', 'Bad')?.code).toBe('group.invalid');
    expect(validateShortName('policy', 'x'.repeat(129))?.code).toBe('policy.too_long');
  });
  it('parses full and short names', () => {
    expect(parseQualifiedName('role', 'Library:Role.Readers')).toEqual({ domain: 'library', name: 'readers' });
    expect(parseQualifiedName('group', 'staff', 'library')).toEqual({ domain: 'library', name: 'staff' });
    expect(parseQualifiedName('role', 'role.readers', 'library')).toEqual({ domain: 'library', name: 'readers' });
    expect(() => parseQualifiedName('role', 'library:group.x')).toThrow(/not a role name/);
    expect(() => parseQualifiedName('role', 'readers')).toThrow(/not a full role name/);
  });
  it('tells member kinds apart', () => {
    expect(memberKind('user.bob')).toBe('principal');
    expect(memberKind('library:group.staff')).toBe('group');
    expect(memberKind('library:role.readers')).toBe('role');
  });
});

describe('splitResource', () => {
  it.each([
    ['library:book/42', { domain: 'library', entity: 'book/42', type: 'book', id: '42' }],
    ['library:book/a/b', { domain: 'library', entity: 'book/a/b', type: 'book', id: 'a/b' }],
    ['library:shelf', { domain: 'library', entity: 'shelf', type: 'shelf', id: '' }],
  ])('splits %s', (r, parts) => {
    expect(splitResource(r)).toEqual(parts);
  });
  it('keeps an empty domain (it names no domain that exists)', () => {
    expect(splitResource(':book/1')).toEqual({ domain: '', entity: 'book/1', type: 'book', id: '1' });
  });
  it.each(['library', 'library:', ':'])('rejects %j', (r) => {
    expect(splitResource(r)).toBeUndefined();
  });
});
