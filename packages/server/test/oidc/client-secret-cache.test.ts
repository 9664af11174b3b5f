import { describe, expect, it } from 'vitest';
import { ClientSecretCache } from '../../src/oidc/client-secret-cache.js';
import { SECRET_LIMITS } from '../../src/storage/secret-hasher.js';
import { cheapHasher } from '../storage/store-fixtures.js';

/** A real (cheap) argon2id hasher that counts its verifications. */
function countingHasher(): {
  hasher: { verify(hash: string | null | undefined, secret: string): Promise<boolean> };
  calls: () => number;
} {
  const real = cheapHasher();
  let calls = 0;
  return {
    hasher: {
      verify(hash, secret) {
        calls++;
        return real.verify(hash, secret);
      },
    },
    calls: () => calls,
  };
}

describe('ClientSecretCache', () => {
  it('never accepts a wrong secret, however often the right one was verified', async () => {
    const { hasher, calls } = countingHasher();
    const cache = new ClientSecretCache({ hasher });
    const hash = await cheapHasher().hash('the-right-secret-0123');
    expect(await cache.verify('library.indexer', hash, 'the-right-secret-0123')).toBe(true);
    expect(await cache.verify('library.indexer', hash, 'the-right-secret-0123')).toBe(true);
    expect(calls()).toBe(1);
    for (const wrong of ['the-wrong-secret-0123', 'the-right-secret-012', 'the-right-secret-01234', '']) {
      expect(await cache.verify('library.indexer', hash, wrong)).toBe(false);
    }
    // Wrong secrets are always checked against argon2 (the empty one is refused before).
    expect(calls()).toBe(4);
  });

  it('keeps clients apart: one client’s secret is not another’s', async () => {
    const cache = new ClientSecretCache({ hasher: cheapHasher() });
    const hasher = cheapHasher();
    const a = await hasher.hash('shared-looking-secret-01');
    const b = await hasher.hash('another-secret-entirely-1');
    expect(await cache.verify('a', a, 'shared-looking-secret-01')).toBe(true);
    expect(await cache.verify('b', b, 'shared-looking-secret-01')).toBe(false);
  });

  it('refuses a rotated secret at once: a hit counts only against the hash it was verified with', async () => {
    const { hasher, calls } = countingHasher();
    const cache = new ClientSecretCache({ hasher });
    const oldHash = await cheapHasher().hash('old-secret-0123456789');
    const newHash = await cheapHasher().hash('new-secret-0123456789');
    expect(await cache.verify('svc', oldHash, 'old-secret-0123456789')).toBe(true);
    expect(await cache.verify('svc', newHash, 'old-secret-0123456789')).toBe(false);
    expect(await cache.verify('svc', newHash, 'new-secret-0123456789')).toBe(true);
    expect(await cache.verify('svc', newHash, 'new-secret-0123456789')).toBe(true);
    expect(calls()).toBe(3);
    // The same secret set again gets a fresh salt, hence a new hash: verified again, and fine.
    const sameAgain = await cheapHasher().hash('new-secret-0123456789');
    expect(await cache.verify('svc', sameAgain, 'new-secret-0123456789')).toBe(true);
    expect(calls()).toBe(4);
  });

  it('refuses everything for a client without a secret, after a real check', async () => {
    const { hasher, calls } = countingHasher();
    const cache = new ClientSecretCache({ hasher });
    expect(await cache.verify('public-app', null, 'anything-at-all-0123')).toBe(false);
    expect(await cache.verify('public-app', undefined, 'anything-at-all-0123')).toBe(false);
    expect(calls()).toBe(2);
    expect(cache.size).toBe(0);
  });

  it('verifies again after the TTL', async () => {
    const { hasher, calls } = countingHasher();
    let now = new Date('2026-06-01T00:00:00Z');
    const cache = new ClientSecretCache({ hasher, ttlMs: 60_000, clock: () => now });
    const hash = await cheapHasher().hash('a-secret-0123456789ab');
    await cache.verify('svc', hash, 'a-secret-0123456789ab');
    now = new Date(now.getTime() + 59_999);
    await cache.verify('svc', hash, 'a-secret-0123456789ab');
    expect(calls()).toBe(1);
    now = new Date(now.getTime() + 1);
    expect(await cache.verify('svc', hash, 'a-secret-0123456789ab')).toBe(true);
    expect(calls()).toBe(2);
  });

  it('holds at most maxEntries verifications, dropping the oldest', async () => {
    const { hasher, calls } = countingHasher();
    const cache = new ClientSecretCache({ hasher, maxEntries: 2 });
    const hash = await cheapHasher().hash('a-secret-0123456789ab');
    for (const id of ['a', 'b', 'c']) await cache.verify(id, hash, 'a-secret-0123456789ab');
    expect(cache.size).toBe(2);
    await cache.verify('c', hash, 'a-secret-0123456789ab');
    await cache.verify('b', hash, 'a-secret-0123456789ab');
    expect(calls()).toBe(3);
    await cache.verify('a', hash, 'a-secret-0123456789ab');
    expect(calls()).toBe(4);
  });

  it('refuses secrets longer than any client has without running argon2', async () => {
    const { hasher, calls } = countingHasher();
    const cache = new ClientSecretCache({ hasher });
    const long = 'x'.repeat(SECRET_LIMITS.max + 1);
    const hash = await cheapHasher().hash(long);
    expect(await cache.verify('svc', hash, long)).toBe(false);
    expect(calls()).toBe(0);
  });
});
