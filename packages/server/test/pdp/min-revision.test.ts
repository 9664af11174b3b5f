import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../management/management-fixture.js';
import { startPdpFixture, type PdpFixture } from './pdp-fixture.js';

// issue 5 "The hot path never touches SQL": a request whose context.min_revision is newer than
// the domain this node holds loads it first (read-your-writes across nodes). A write made
// straight through the store, without telling this node's catalog, plays the other node here;
// test/freshness has the real two-node tests on PostgreSQL.
const GATEWAY = 'library.gateway';
const EVAL = '/pdp/library/access/v1/evaluation';
const EVALS = '/pdp/library/access/v1/evaluations';
const ctx = { actor: 'test' };

let f: PdpFixture;
beforeAll(async () => {
  f = await startPdpFixture({ followAudit: false });
});
afterAll(() => f.close());

const bobReads = (context?: object) => ({
  subject: { type: 'user', id: 'bob' },
  action: { name: 'read' },
  resource: { type: 'map', id: '1' },
  ...(context ? { context } : {}),
});

/** Grants bob `read` on library:map/* behind this node's back; returns the new revision. */
async function grantMapsElsewhere(): Promise<number> {
  const w = await f.gh.store.putPolicy(
    'library',
    {
      name: 'maps',
      assertions: [{ effect: 'allow', action: 'read', resource: 'library:map/*', principal: 'user.bob' }],
    },
    undefined,
    ctx,
  );
  return w.revision;
}

async function evaluate(url: string, body: object): Promise<{ decision?: boolean; context?: { revision: number } }> {
  const res = await f.post(url, GATEWAY, body);
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

describe('context.min_revision', () => {
  it('answers from memory without it, and loads the newer domain first with it', async () => {
    const revision = await grantMapsElsewhere();
    expect(revision).toBeGreaterThan(f.revision);
    // This node was not told: without min_revision it answers on what it holds.
    expect(await evaluate(EVAL, bobReads())).toEqual({ decision: false, context: { revision: f.revision } });
    expect(await evaluate(EVAL, bobReads({ min_revision: revision }))).toEqual({
      decision: true,
      context: { revision },
    });
    // Now held: later requests see it without asking.
    expect(await evaluate(EVAL, bobReads())).toEqual({ decision: true, context: { revision } });
  });

  it('works for batches (the newest of the top-level and item contexts) and for searches', async () => {
    const before = f.gh.catalog.revisionOf('library') as number;
    await f.gh.store.deletePolicy('library', 'maps', null, undefined, ctx);
    const revision = (await f.gh.store.getDomain('library')).revision;
    expect(revision).toBeGreaterThan(before);
    const batch = {
      subject: { type: 'user', id: 'bob' },
      action: { name: 'read' },
      evaluations: [{ resource: { type: 'map', id: '1' } }, { resource: { type: 'map', id: '2' }, context: {} }],
    };
    expect(await evaluate(EVALS, { ...batch, context: { min_revision: 1 } })).toEqual({
      evaluations: [
        { decision: true, context: { revision: before } },
        { decision: true, context: { revision: before } },
      ],
    });
    const itemAsks = {
      ...batch,
      evaluations: [batch.evaluations[0], { ...batch.evaluations[1], context: { min_revision: revision } }],
    };
    expect(await evaluate(EVALS, itemAsks)).toEqual({
      evaluations: [
        { decision: false, context: { revision } },
        { decision: false, context: { revision } },
      ],
    });
    const search = await evaluate('/pdp/library/access/v1/search/action', {
      subject: { type: 'user', id: 'bob' },
      resource: { type: 'map', id: '1' },
      context: { min_revision: revision },
    });
    expect(search).toMatchObject({ context: { revision }, results: [] });
  });

  it('finds a domain created through another node a moment ago', async () => {
    await f.gh.store.createDomain({ name: 'fresh' }, ctx);
    const body = { ...bobReads(), resource: { type: 'x', id: '1' } };
    expectProblem(await f.post('/pdp/fresh/access/v1/evaluation', GATEWAY, body), 404, 'domain.not_found');
    const revision = (await f.gh.store.getDomain('fresh')).revision;
    const res = await f.post('/pdp/fresh/access/v1/evaluation', 'user.root', {
      ...body,
      context: { min_revision: revision },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ decision: false, context: { revision } });
  });

  it('answers on the newest revision there is when asked for one that does not exist yet', async () => {
    const held = f.gh.catalog.revisionOf('library') as number;
    expect(await evaluate(EVAL, bobReads({ min_revision: held + 1000 }))).toMatchObject({
      context: { revision: held },
    });
    expectProblem(
      await f.post('/pdp/nowhere/access/v1/evaluation', GATEWAY, bobReads({ min_revision: 5 })),
      404,
      'domain.not_found',
    );
  });

  it.each([['"7"'], ['-1'], ['1.5'], ['9007199254740992'], ['null']])(
    'refuses min_revision %s: 400 naming it',
    async (value) => {
      const res = await f.postRaw(
        EVAL,
        GATEWAY,
        JSON.stringify(bobReads()).replace(/}$/, `,"context":{"min_revision":${value}}}`),
        { 'content-type': 'application/json' },
      );
      expectProblem(res, 400, 'request.invalid');
      expect(res.json()).toMatchObject({ errors: [{ pointer: '/body/context/min_revision' }] });
    },
  );
});
