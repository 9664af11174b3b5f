import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_EVALUATIONS } from '../../src/pdp/evaluation-request.js';
import { expectProblem } from '../management/management-fixture.js';
import { startPdpFixture, type PdpFixture } from './pdp-fixture.js';

// authzen.md §3: the Access Evaluations API — defaults, semantics, per-item errors.
const EVALS = '/pdp/library/access/v1/evaluations';
const GATEWAY = 'library.gateway';

let f: PdpFixture;
let ok: (revision?: number) => { decision: true; context: { revision: number } };
let no: (revision?: number) => { decision: false; context: { revision: number } };
beforeAll(async () => {
  f = await startPdpFixture();
  ok = (revision = f.revision) => ({ decision: true, context: { revision } });
  no = (revision = f.revision) => ({ decision: false, context: { revision } });
});
afterAll(() => f.close());

const alice = { type: 'user', id: 'alice' };
const read = { name: 'read' };
// The spec's examples: three reads, the second of which is denied.
const threeReads = {
  subject: alice,
  action: read,
  evaluations: [
    { resource: { type: 'book', id: '1' } },
    { resource: { type: 'book', id: 'secret-2' } },
    { resource: { type: 'book', id: '3' } },
  ],
};

async function evaluations(body: unknown, as = GATEWAY): Promise<unknown> {
  const res = await f.post(EVALS, as, body);
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

describe('POST /pdp/:domain/access/v1/evaluations', () => {
  it('evaluates every item in request order by default (execute_all)', async () => {
    expect(await evaluations(threeReads)).toEqual({ evaluations: [ok(), no(), ok()] });
    expect(await evaluations({ ...threeReads, options: { evaluations_semantic: 'execute_all' } })).toEqual({
      evaluations: [ok(), no(), ok()],
    });
  });

  it('stops after the first deny with deny_on_first_deny (#evaluations-semantics)', async () => {
    const body = { ...threeReads, options: { evaluations_semantic: 'deny_on_first_deny' } };
    expect(await evaluations(body)).toEqual({ evaluations: [ok(), no()] });
  });

  it('stops after the first permit with permit_on_first_permit', async () => {
    const body = { ...threeReads, options: { evaluations_semantic: 'permit_on_first_permit' } };
    expect(await evaluations(body)).toEqual({ evaluations: [ok()] });
    const late = {
      ...body,
      evaluations: [...threeReads.evaluations]
        .reverse()
        .slice(1)
        .concat([{ resource: { type: 'book', id: '4' } }]),
    };
    expect(await evaluations(late)).toEqual({ evaluations: [no(), ok()] });
    const never = { ...body, evaluations: [{ action: { name: 'burn' }, resource: { type: 'book', id: '1' } }] };
    expect(await evaluations(never)).toEqual({ evaluations: [no()] });
  });

  it('ignores unknown option keys and unknown members, and refuses an unknown semantic with 400', async () => {
    expect(await evaluations({ ...threeReads, options: { page_size: 3 }, extra: true })).toEqual({
      evaluations: [ok(), no(), ok()],
    });
    const res = await f.post(EVALS, GATEWAY, { ...threeReads, options: { evaluations_semantic: 'first_wins' } });
    const problem = expectProblem(res, 400, 'request.invalid') as { errors: { pointer: string }[] };
    expect(problem.errors.map((e) => e.pointer)).toEqual(['/body/options/evaluations_semantic']);
  });

  it('takes a missing member from the top level as a whole object, never merging properties (c-3-2-7)', async () => {
    const body = {
      subject: { type: 'user', id: 'bob', properties: { department: 'eng' } },
      action: { name: 'borrow' },
      resource: { type: 'book', id: '1' },
      context: { ip: '10.0.0.1' },
      evaluations: [
        {},
        { subject: { type: 'user', id: 'bob' } },
        { action: { name: 'view' }, resource: { type: 'doc', id: '7' } },
        { action: { name: 'view' }, resource: { type: 'doc', id: '7' }, context: { other: true } },
      ],
    };
    expect(await evaluations(body)).toEqual({ evaluations: [ok(), no(), ok(), no()] });
  });

  it('answers an item that lacks an entity, or has a bad one, as false with context.error; 200 (c-3-4-1)', async () => {
    const res = await f.post(EVALS, GATEWAY, {
      evaluations: [
        { subject: alice, action: read, resource: { type: 'book', id: '1' } },
        { subject: alice, action: read },
        { subject: 'alice', action: read, resource: { type: 'book', id: '1' } },
        { subject: alice, action: { name: 123 }, resource: { type: 'book', id: '1' } },
        'not an item',
        { subject: alice, action: read, resource: { type: 'book', id: '1' }, context: [] },
      ],
    });
    expect(res.statusCode).toBe(200);
    const error = (message: string) => ({
      decision: false,
      context: { revision: f.revision, error: { status: 400, message } },
    });
    expect(res.json()).toEqual({
      evaluations: [
        ok(),
        error('/evaluations/1/resource is required'),
        error('/evaluations/2/subject must be an object'),
        error('/evaluations/3/action/name must be a string'),
        error('/evaluations/4 must be an object'),
        error('/evaluations/5/context must be an object'),
      ],
    });
  });

  it('counts a failed item as a deny for deny_on_first_deny, and not as a permit', async () => {
    const items = [
      { resource: { type: 'book', id: '1' } },
      { resource: { type: 'book' } },
      { resource: { type: 'book', id: '3' } },
    ];
    const deny = (await evaluations({
      subject: alice,
      action: read,
      evaluations: items,
      options: { evaluations_semantic: 'deny_on_first_deny' },
    })) as {
      evaluations: { decision: boolean; context: { error?: unknown } }[];
    };
    expect(deny.evaluations.map((e) => [e.decision, e.context.error !== undefined])).toEqual([
      [true, false],
      [false, true],
    ]);
    const permit = (await evaluations({
      subject: alice,
      action: read,
      evaluations: [items[1], items[2]],
      options: { evaluations_semantic: 'permit_on_first_permit' },
    })) as { evaluations: { decision: boolean }[] };
    expect(permit.evaluations.map((e) => e.decision)).toEqual([false, true]);
  });

  it('refuses a bad top-level default as a whole: 400', async () => {
    const res = await f.post(EVALS, GATEWAY, { ...threeReads, subject: 'alice' });
    expectProblem(res, 400, 'request.invalid');
  });

  it('behaves as the single evaluation without items or with an empty list (c-3-4-2, c-3-4-3)', async () => {
    const single = { subject: alice, action: read, resource: { type: 'book', id: '1' } };
    expect(await evaluations(single)).toEqual(ok());
    expect(await evaluations({ ...single, evaluations: [] })).toEqual(ok());
    expect(await evaluations({ ...single, resource: { type: 'book', id: 'secret-1' }, evaluations: [] })).toEqual(no());
    const res = await f.post(EVALS, GATEWAY, { subject: alice, action: read, evaluations: [] });
    expect(expectProblem(res, 400, 'request.invalid').detail).toBe('/resource is required');
  });

  it('explains the items that ask for it', async () => {
    const body = (await evaluations({
      subject: alice,
      action: read,
      evaluations: [
        { resource: { type: 'book', id: '1' }, context: { explain: true } },
        { resource: { type: 'book', id: '2' } },
      ],
    })) as { evaluations: { context: Record<string, unknown> }[] };
    expect(Object.keys(body.evaluations[0]?.context ?? {}).sort()).toEqual(['reason_admin', 'reason_user', 'revision']);
    expect(body.evaluations[1]?.context).toEqual({ revision: f.revision });
  });

  it(`answers 413 beyond ${MAX_EVALUATIONS} items, naming the limit`, async () => {
    const items = Array.from({ length: MAX_EVALUATIONS + 1 }, (_, i) => ({
      resource: { type: 'book', id: String(i) },
    }));
    const res = await f.post(EVALS, GATEWAY, { subject: alice, action: read, evaluations: items });
    const problem = expectProblem(res, 413, 'pdp.too_many_evaluations');
    expect(problem.detail).toContain(String(MAX_EVALUATIONS));
    const atLimit = await evaluations({ subject: alice, action: read, evaluations: items.slice(1) });
    expect((atLimit as { evaluations: unknown[] }).evaluations).toHaveLength(MAX_EVALUATIONS);
  });

  it('authorizes the request as a whole: one item about another subject without access.check is a 403', async () => {
    const mine = { subject: alice, action: read, evaluations: [{ resource: { type: 'book', id: '1' } }] };
    expect(await evaluations(mine, 'user.alice')).toEqual({ evaluations: [ok()] });
    const res = await f.post(EVALS, 'user.alice', {
      ...mine,
      evaluations: [...mine.evaluations, { subject: { type: 'user', id: 'bob' }, resource: { type: 'book', id: '1' } }],
    });
    expectProblem(res, 403, 'pdp.forbidden');
    expect(await evaluations({ ...mine, subject: { type: 'user', id: 'bob' } }, 'user.carol')).toEqual({
      evaluations: [ok()],
    });
  });

  it('shares the errors of the evaluation API: 401, 404, 403 for a disabled domain, 400 for non-JSON', async () => {
    expectProblem(await f.post(EVALS, undefined, threeReads), 401, 'auth.required');
    expectProblem(await f.post('/pdp/nowhere/access/v1/evaluations', GATEWAY, threeReads), 404, 'domain.not_found');
    expectProblem(await f.post('/pdp/closed/access/v1/evaluations', 'user.root', threeReads), 403, 'domain.disabled');
    const text = await f.postRaw(EVALS, GATEWAY, JSON.stringify(threeReads), { 'content-type': 'text/plain' });
    expectProblem(text, 400, 'request.unsupported_media_type');
    const res = await f.post(EVALS, GATEWAY, threeReads, { 'x-request-id': 'batch-1' });
    expect(res.headers['x-request-id']).toBe('batch-1');
  });

  it('counts every decision it answers in the metrics, and no failed item', async () => {
    const counts = async (): Promise<{ allow: number; deny: number }> => {
      const text = await f.gh.app.metrics.registry.metrics();
      const count = (decision: string) =>
        Number(
          new RegExp(`gatehouse_decisions_total\\{domain="library",decision="${decision}"\\} (\\d+)`).exec(text)?.[1] ??
            0,
        );
      return { allow: count('allow'), deny: count('deny') };
    };
    const before = await counts();
    await evaluations(threeReads);
    await evaluations({ ...threeReads, evaluations: [...threeReads.evaluations, { resource: 'not an object' }] });
    const after = await counts();
    expect({ allow: after.allow - before.allow, deny: after.deny - before.deny }).toEqual({ allow: 4, deny: 2 });
  });
});
