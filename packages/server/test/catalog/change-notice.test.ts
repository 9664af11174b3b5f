import { describe, expect, it } from 'vitest';
import {
  CHANGE_NOTICE_LIMITS,
  ChangeNoticeError,
  changeNoticeBody,
  parseChangeNotice,
  type ChangeNotice,
} from '../../src/storage/change-notice.js';

// docs/scale-out.md "What is notified": the payload forms, and what a listener does with others.

/** The payload PostgreSQL delivers for `notice` sent from schema `schema` (jsonb orders keys its own way). */
const payloadOf = (notice: ChangeNotice, schema = 'gh'): string =>
  JSON.stringify({ ...changeNoticeBody(notice), s: schema });

describe('change notices', () => {
  it.each<[string, ChangeNotice, Record<string, unknown>]>([
    ['a domain at a revision', { kind: 'domain', name: 'library', revision: 12 }, { d: 'library', r: 12 }],
    ['a deleted domain', { kind: 'domain', name: 'library', revision: null }, { d: 'library', deleted: true }],
    ['a user at a revision', { kind: 'user', name: 'alice', revision: 3 }, { u: 'alice', r: 3 }],
    ['a deleted user', { kind: 'user', name: 'alice', revision: null }, { u: 'alice', deleted: true }],
    ['a service', { kind: 'service', principal: 'library.gateway' }, { svc: 'library.gateway' }],
    ['everything', { kind: 'all' }, { all: true }],
  ])('round-trips %s', (_, notice, body) => {
    expect(changeNoticeBody(notice)).toEqual(body);
    expect(parseChangeNotice(payloadOf(notice))).toEqual({ schema: 'gh', notice });
  });

  it('sends an over-long name as "reload everything", so the payload stays under 8,000 bytes', () => {
    const long = 'a'.repeat(CHANGE_NOTICE_LIMITS.name + 1);
    expect(changeNoticeBody({ kind: 'domain', name: long, revision: 1 })).toEqual({ all: true });
    expect(changeNoticeBody({ kind: 'user', name: long, revision: null })).toEqual({ all: true });
    expect(changeNoticeBody({ kind: 'service', principal: long })).toEqual({ all: true });
    // The longest name that is sent, escaped at worst (\u0000 per character), with a 63-byte schema.
    const worst = '\u0000'.repeat(CHANGE_NOTICE_LIMITS.name);
    const payload = payloadOf({ kind: 'domain', name: worst, revision: Number.MAX_SAFE_INTEGER }, 's'.repeat(63));
    expect(Buffer.byteLength(payload)).toBeLessThan(8000);
  });

  it('keeps the schema, empty included', () => {
    expect(parseChangeNotice('{"s":"","d":"x","r":1}').schema).toBe('');
    expect(parseChangeNotice('{"d": "x", "r": 1, "s": "gh_1"}').schema).toBe('gh_1');
  });

  it('ignores members it does not know (a newer node may send more)', () => {
    expect(parseChangeNotice('{"s":"p","d":"x","r":2,"why":"role.update"}').notice).toEqual({
      kind: 'domain',
      name: 'x',
      revision: 2,
    });
  });

  it.each([
    ['not JSON', 'library:12'],
    ['JSON but not an object', '[1,2]'],
    ['null', 'null'],
    ['no schema', '{"d":"x","r":1}'],
    ['a schema that is not a string', '{"s":1,"d":"x","r":1}'],
    ['nothing named', '{"s":"p"}'],
    ['a domain without a revision', '{"s":"p","d":"x"}'],
    ['a revision of 0', '{"s":"p","d":"x","r":0}'],
    ['a fractional revision', '{"s":"p","u":"x","r":1.5}'],
    ['a revision past 2^53', '{"s":"p","d":"x","r":9007199254740993}'],
    ['a revision as a string', '{"s":"p","d":"x","r":"3"}'],
    ['an empty name', '{"s":"p","d":"","r":1}'],
    ['a name that is not a string', '{"s":"p","svc":7}'],
    ['an over-long name', `{"s":"p","svc":"${'a'.repeat(CHANGE_NOTICE_LIMITS.name + 1)}"}`],
    ['an over-long payload', `{"s":"p","d":"x","r":1,"pad":"${'a'.repeat(CHANGE_NOTICE_LIMITS.payload)}"}`],
  ])('refuses %s with ChangeNoticeError', (_, payload) => {
    expect(() => parseChangeNotice(payload)).toThrow(ChangeNoticeError);
  });

  it('chains the JSON error as the cause', () => {
    const err = (() => {
      try {
        parseChangeNotice('{');
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err?.cause).toBeInstanceOf(SyntaxError);
  });
});
