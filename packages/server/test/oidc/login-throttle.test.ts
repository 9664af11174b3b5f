import { describe, expect, it } from 'vitest';
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle } from '../../src/oidc/login-throttle.js';

/** A throttle on a clock the test moves. */
function throttle(options: ConstructorParameters<typeof LoginThrottle>[1] = {}) {
  let nowMs = Date.UTC(2030, 0, 1);
  const t = new LoginThrottle(() => new Date(nowMs), options);
  return {
    t,
    advance(ms: number) {
      nowMs += ms;
    },
  };
}

describe('LoginThrottle', () => {
  it('lets the first failures through, then doubles the wait with every further failure', () => {
    const { t, advance } = throttle();
    for (let i = 0; i < 5; i++) {
      expect(t.waitMs('alice')).toBe(0);
      t.recordFailure('alice');
    }
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const wait = t.waitMs('alice');
      waits.push(wait);
      advance(wait);
      expect(t.waitMs('alice')).toBe(0);
      t.recordFailure('alice');
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 16_000]);
    advance(10_000);
    expect(t.waitMs('alice')).toBe(22_000);
  });

  it('caps the wait at maxDelayMs', () => {
    const { t } = throttle({ threshold: 1, baseDelayMs: 1000, maxDelayMs: 5000 });
    for (let i = 0; i < 60; i++) t.recordFailure('k');
    expect(t.waitMs('k')).toBe(5000);
  });

  it('keeps keys apart, and forgets one on reset', () => {
    const { t } = throttle({ threshold: 1 });
    t.recordFailure('alice');
    expect(t.waitMs('alice')).toBe(1000);
    expect(t.waitMs('bob')).toBe(0);
    t.reset('alice');
    expect(t.waitMs('alice')).toBe(0);
  });

  it('forgets a key windowMs after its last failure', () => {
    const { t, advance } = throttle({ threshold: 2, windowMs: 60_000 });
    t.recordFailure('k');
    advance(59_999);
    t.recordFailure('k');
    expect(t.waitMs('k')).toBe(1000);
    advance(60_000);
    expect(t.waitMs('k')).toBe(0);
    expect(t.size).toBe(0);
  });

  it('holds at most maxEntries keys, evicting the least recently failed', () => {
    const { t } = throttle({ threshold: 1, maxEntries: 3 });
    for (const k of ['a', 'b', 'c']) t.recordFailure(k);
    t.recordFailure('a');
    t.recordFailure('d');
    expect(t.size).toBe(3);
    expect(t.waitMs('b')).toBe(0);
    expect(t.waitMs('a')).toBe(2000);
    expect(t.waitMs('c')).toBe(1000);
    expect(t.waitMs('d')).toBe(1000);
  });

  it.each([
    ['threshold', 0],
    ['windowMs', -1],
    ['maxEntries', 1.5],
    ['baseDelayMs', Number.NaN],
  ] as const)('refuses %s = %s', (name, value) => {
    expect(() => throttle({ [name]: value })).toThrow(RangeError);
  });

  it('defaults to 5 failures in 15 minutes, 1 s doubling up to 15 minutes', () => {
    expect(DEFAULT_LOGIN_THROTTLE).toEqual({
      threshold: 5,
      windowMs: 900_000,
      baseDelayMs: 1000,
      maxDelayMs: 900_000,
      maxEntries: 10_000,
    });
  });
});
