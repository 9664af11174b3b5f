import { describe, expect, it } from 'vitest';
import { compileGlob, globCovers, globsIntersect, literalPrefix } from './glob.js';

// semantics.md "Globs": `*` any run, `?` one character, everything else literal, whole string.
describe('compileGlob', () => {
  it.each([
    ['*', '', true],
    ['*', 'anything', true],
    ['read', 'read', true],
    ['read', 'reads', false],
    ['read*', 'read', true],
    ['read*', 'readers', true],
    ['read*', 'xread', false],
    ['r?ad', 'road', true],
    ['r?ad', 'rad', false],
    ['library:book/*', 'library:book/42', true],
    ['library:book/*', 'library:books/42', false],
    ['a.b', 'axb', false],
    ['a[b]', 'a[b]', true],
    ['a(b)+$', 'a(b)+$', true],
    ['*-rare', 'book-rare', true],
    ['*-rare', 'book-rarex', false],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'aXbY', false],
    ['?', 'é', true],
    ['x*', 'x\nnewline', true],
  ])('%s matches %s: %s', (glob, text, expected) => {
    expect(compileGlob(glob).matches(text)).toBe(expected);
  });

  it('knows its shape and literal prefix', () => {
    expect(compileGlob('*').shape).toBe('any');
    expect(compileGlob('abc').shape).toBe('exact');
    expect(compileGlob('ab*').shape).toBe('prefix');
    expect(compileGlob('a*b').shape).toBe('general');
    expect(literalPrefix('lib:book/?x*')).toBe('lib:book/');
  });
});

describe('globsIntersect', () => {
  it.each([
    ['a*', '*b', true],
    ['a*', 'b*', false],
    ['lib:book/*', 'lib:book/rare-*', true],
    ['lib:book/1', 'lib:book/2', false],
    ['lib:book/?', 'lib:book/12', false],
    ['lib:book/??', 'lib:book/1*', true],
    ['*x', '*y', false],
    ['*', '', true],
    ['a*c', 'ab*', true],
  ])('%s ∩ %s ≠ ∅: %s', (a, b, expected) => {
    expect(globsIntersect(a, b)).toBe(expected);
    expect(globsIntersect(b, a)).toBe(expected);
  });
});

describe('globCovers', () => {
  it.each([
    ['*', 'a*', true],
    ['a*', 'ab*', true],
    ['ab*', 'a*', false],
    ['a*', 'abc', true],
    ['abc', 'abc', true],
  ])('%s covers %s: %s', (outer, inner, expected) => {
    expect(globCovers(outer, inner)).toBe(expected);
  });
});

describe('globs never use regular expressions', () => {
  it('matches hostile globs in bounded time and memory', () => {
    const hostile = '*?'.repeat(512);
    expect(compileGlob(hostile).matches('a'.repeat(1024))).toBe(true);
    expect(compileGlob(hostile).matches('a'.repeat(511))).toBe(false);
    const many = `${'a*'.repeat(500)}b`;
    expect(compileGlob(many).matches('a'.repeat(1000))).toBe(false);
    expect(compileGlob(many).matches(`${'a'.repeat(500)}b`)).toBe(true);
  });
});
