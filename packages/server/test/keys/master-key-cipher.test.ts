import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { KeyDecryptionError, MasterKeyCipher } from '../../src/keys/master-key-cipher.js';

const JWK_PRIVATE: JWK = {
  kty: 'OKP',
  crv: 'Ed25519',
  x: 'fmEeQAW9RVRW4L8zCCxmiJ5nOBvE17PAWDsiumr5r18',
  d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A',
};
const KID = 'kid-aaaaaaaaaaaaaaaa';

function flip(stored: string, index: number): string {
  const c = stored[index] === 'A' ? 'B' : 'A';
  return stored.slice(0, index) + c + stored.slice(index + 1);
}

// architecture.md "Cross-cutting": private keys encrypted at rest when a master key is set.
describe('MasterKeyCipher', () => {
  const masterKey = randomBytes(32);
  const cipher = new MasterKeyCipher(masterKey);

  it('round-trips a private JWK as v1.<nonce>.<ciphertext+tag>, with a fresh nonce each time', () => {
    const stored = cipher.encrypt(KID, JWK_PRIVATE);
    expect(stored).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    expect(stored).not.toContain(JWK_PRIVATE.d);
    expect(cipher.decrypt(KID, stored)).toEqual(JWK_PRIVATE);
    expect(cipher.encrypt(KID, JWK_PRIVATE)).not.toBe(stored);
    expect(cipher.encrypts).toBe(true);
  });

  it('refuses another master key', () => {
    const stored = cipher.encrypt(KID, JWK_PRIVATE);
    expect(() => new MasterKeyCipher(randomBytes(32)).decrypt(KID, stored)).toThrow(
      expect.objectContaining({ name: 'KeyDecryptionError', reason: 'wrong_key_or_tampered', kid: KID }),
    );
  });

  it('refuses a missing master key', () => {
    const stored = cipher.encrypt(KID, JWK_PRIVATE);
    expect(() => new MasterKeyCipher(undefined).decrypt(KID, stored)).toThrow(
      expect.objectContaining({ reason: 'no_master_key', message: expect.stringMatching(/GATEHOUSE_MASTER_KEY/) }),
    );
  });

  it.each([
    ['the nonce', 5],
    ['the ciphertext', 20],
    ['the tag', -3],
  ])('refuses a changed byte in %s', (_what, at) => {
    const stored = cipher.encrypt(KID, JWK_PRIVATE);
    const tampered = flip(stored, at < 0 ? stored.length + at : at);
    expect(tampered).not.toBe(stored);
    expect(() => cipher.decrypt(KID, tampered)).toThrow(KeyDecryptionError);
  });

  it('refuses a value moved to another kid (the kid is additional authenticated data)', () => {
    const stored = cipher.encrypt(KID, JWK_PRIVATE);
    expect(() => cipher.decrypt('kid-bbbbbbbbbbbbbbbb', stored)).toThrow(
      expect.objectContaining({ reason: 'wrong_key_or_tampered' }),
    );
  });

  it.each(['v1.', 'v1.abc', 'v1.AAAAAAAAAAAAAAAA.AAAA', 'v2.x.y', '{"kty":"OKP"}', 'plain.not json', 'plain.[1]'])(
    'refuses the malformed value %j',
    (stored) => {
      expect(() => cipher.decrypt(KID, stored)).toThrow(expect.objectContaining({ reason: 'malformed' }));
    },
  );

  it('stores plain JSON prefixed plain. without a master key', () => {
    const plain = new MasterKeyCipher(undefined);
    const stored = plain.encrypt(KID, JWK_PRIVATE);
    expect(stored).toBe(`plain.${JSON.stringify(JWK_PRIVATE)}`);
    expect(plain.decrypt(KID, stored)).toEqual(JWK_PRIVATE);
    expect(plain.encrypts).toBe(false);
    expect(MasterKeyCipher.isPlain(stored)).toBe(true);
  });

  it('reads a plain key once a master key is set (the key service then re-encrypts it; docs/keys.md)', () => {
    const stored = new MasterKeyCipher(undefined).encrypt(KID, JWK_PRIVATE);
    expect(cipher.decrypt(KID, stored)).toEqual(JWK_PRIVATE);
  });

  it('refuses a master key that is not 32 bytes', () => {
    expect(() => new MasterKeyCipher(randomBytes(16))).toThrow(RangeError);
  });
});
