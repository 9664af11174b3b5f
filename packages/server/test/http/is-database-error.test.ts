import { describe, expect, it } from 'vitest';
import { isDatabaseError } from '../../src/http/handle-error.js';

describe('isDatabaseError (the store errors metric)', () => {
  it.each([
    [{ code: 'SQLITE_BUSY' }, true],
    [{ code: '57P01', severity: 'FATAL' }, true],
    [{ code: 'ECONNREFUSED' }, true],
    [new Error('wrapped', { cause: { code: 'SQLITE_IOERR' } }), true],
    [{ code: '23505' }, false],
    [new Error('plain'), false],
    ['text', false],
    [null, false],
  ])('%j → %s', (error, expected) => {
    expect(isDatabaseError(error)).toBe(expected);
  });
});
