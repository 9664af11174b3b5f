import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR } from '../../src/management/management-service.js';
import { startPdpFixture, type PdpFixture } from './pdp-fixture.js';

// issue 5 "The hot path never touches SQL": a write on this node recompiles the domain it
// touched before it returns, and only that one; user changes recompile no domain at all.
const OP = { principal: OPERATOR };
const EVAL = '/pdp/library/access/v1/evaluation';

let f: PdpFixture;
beforeAll(async () => {
  f = await startPdpFixture();
});
afterAll(() => f.close());

const domains = () => new Map(f.gh.catalog.catalog.domains);

async function decision(body: object): Promise<boolean> {
  const res = await f.post(EVAL, 'library.gateway', body);
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { decision: boolean }).decision;
}

describe('writes on this node', () => {
  it('recompile only the domain a membership change touched, before the write returns', async () => {
    const before = domains();
    await f.gh.management.putMember(OP, 'role', 'library', 'readers', { name: 'user.carol' }, undefined);
    const after = domains();
    expect(after.get('library')).not.toBe(before.get('library'));
    expect(after.get('library')?.revision).toBe((before.get('library')?.revision ?? 0) + 1);
    for (const [name, d] of after) if (name !== 'library') expect(d, name).toBe(before.get(name));
  });

  it('change a user without recompiling any domain, and answer with the new attributes at once', async () => {
    const borrow = {
      subject: { type: 'user', id: 'bob' },
      action: { name: 'borrow' },
      resource: { type: 'book', id: '1' },
    };
    expect(await decision(borrow)).toBe(false);
    const before = domains();
    await f.gh.management.updateUser(OP, 'bob', { attributes: { department: 'eng' } }, undefined);
    const after = domains();
    for (const [name, d] of after) expect(d, name).toBe(before.get(name));
    expect(await decision(borrow)).toBe(true);
    // …and a new email finds the user at once, through the directory.
    await f.gh.management.updateUser(OP, 'bob', { email: 'bob@example.org' }, undefined);
    expect(await decision({ ...borrow, subject: { type: 'user', id: 'BOB@example.org' } })).toBe(true);
  });
});
