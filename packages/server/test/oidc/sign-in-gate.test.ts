import { describe, expect, it, vi } from 'vitest';
import { SignInGate } from '../../src/oidc/sign-in-gate.js';

/** A gate over users alice/right (any other name is unknown), on a clock that does not move. */
function gate(options: { account?: { threshold: number }; address?: { threshold: number } } = {}) {
  const verifyPassword = vi.fn(
    async (name: string, password: string) => name.toLowerCase() === 'alice' && password === 'right',
  );
  const now = new Date(Date.UTC(2030, 0, 1));
  return { gate: new SignInGate({ users: { verifyPassword }, clock: () => now, ...options }), verifyPassword };
}

describe('SignInGate', () => {
  it('signs in as user.<name>, whatever the case of the name', async () => {
    const { gate: g } = gate();
    expect(await g.attempt('Alice', 'right', '192.0.2.1')).toEqual({ outcome: 'signed-in', accountId: 'user.alice' });
    expect(await g.attempt('alice', 'wrong', '192.0.2.1')).toEqual({ outcome: 'failed' });
  });

  it('throttles an unknown name like a known one, without checking the password', async () => {
    for (const name of ['alice', 'nobody']) {
      const { gate: g, verifyPassword } = gate({ account: { threshold: 2 } });
      await g.attempt(name, 'wrong', '192.0.2.1');
      await g.attempt(name.toUpperCase(), 'wrong', '192.0.2.2');
      verifyPassword.mockClear();
      expect(await g.attempt(name, 'right', '192.0.2.3')).toEqual({ outcome: 'throttled', retryAfterSeconds: 1 });
      expect(verifyPassword).not.toHaveBeenCalled();
    }
  });

  it('throttles an address across names, and a success does not clear it', async () => {
    const { gate: g } = gate({ address: { threshold: 3 } });
    await g.attempt('bob', 'wrong', '192.0.2.1');
    await g.attempt('carol', 'wrong', '192.0.2.1');
    expect(await g.attempt('alice', 'right', '192.0.2.1')).toMatchObject({ outcome: 'signed-in' });
    await g.attempt('dave', 'wrong', '192.0.2.1');
    expect(await g.attempt('alice', 'right', '192.0.2.1')).toEqual({ outcome: 'throttled', retryAfterSeconds: 1 });
    expect(await g.attempt('alice', 'right', '192.0.2.9')).toMatchObject({ outcome: 'signed-in' });
  });

  it('clears an account on success', async () => {
    const { gate: g } = gate({ account: { threshold: 2 } });
    await g.attempt('alice', 'wrong', '192.0.2.1');
    expect(await g.attempt('alice', 'right', '192.0.2.1')).toMatchObject({ outcome: 'signed-in' });
    await g.attempt('alice', 'wrong', '192.0.2.1');
    expect(await g.attempt('alice', 'right', '192.0.2.1')).toMatchObject({ outcome: 'signed-in' });
  });

  it('refuses a password longer than any user can have without hashing it', async () => {
    const { gate: g, verifyPassword } = gate();
    expect(await g.attempt('alice', 'x'.repeat(1025), '192.0.2.1')).toEqual({ outcome: 'failed' });
    expect(verifyPassword).not.toHaveBeenCalled();
  });
});
