import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../management/management-fixture.js';
import { startPdpFixture, type PdpFixture } from './pdp-fixture.js';

// api.md §2 and authzen.md §4: the Subject, Resource and Action Search APIs of one domain's PDP.
const BASE = '/pdp/library/access/v1';
const SUBJECT = `${BASE}/search/subject`;
const RESOURCE = `${BASE}/search/resource`;
const ACTION = `${BASE}/search/action`;
const EVAL = `${BASE}/evaluation`;
const GATEWAY = 'library.gateway'; // the PEP: holds access.check on library:access

let f: PdpFixture;
beforeAll(async () => {
  f = await startPdpFixture();
});
afterAll(() => f.close());

interface SearchBody {
  page: { next_token: string; count: number; total?: number };
  context: { revision: number };
  results: Record<string, string>[];
}

async function search(url: string, body: unknown, as = GATEWAY): Promise<SearchBody> {
  const res = await f.post(url, as, body);
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

/** Follows next_token to the end; returns every page. */
async function allPages(url: string, body: Record<string, unknown>, limit: number): Promise<SearchBody[]> {
  const pages: SearchBody[] = [];
  let token = '';
  do {
    const page = await search(url, { ...body, page: { limit, ...(token ? { token } : {}) } });
    pages.push(page);
    token = page.page.next_token;
    expect(pages.length).toBeLessThan(50);
  } while (token !== '');
  return pages;
}

async function decisionOf(body: unknown): Promise<boolean> {
  const res = await f.post(EVAL, GATEWAY, body);
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { decision: boolean }).decision;
}

const USERS = ['alice', 'bob', 'carol', 'root'];

describe('POST …/search/subject (#subject-search-api)', () => {
  const readBook = { subject: { type: 'user' }, action: { name: 'read' }, resource: { type: 'book', id: '1' } };

  it('lists the users who may do the action on the resource, sorted, each one a permit when evaluated', async () => {
    const body = await search(SUBJECT, readBook);
    // readers (alice, bob) and the domain admin (carol); root is a super admin of sys.auth only.
    expect(body).toEqual({
      page: { next_token: '', count: 3 },
      context: { revision: f.revision },
      results: [
        { type: 'user', id: 'alice' },
        { type: 'user', id: 'bob' },
        { type: 'user', id: 'carol' },
      ],
    });
    for (const id of USERS) {
      const allowed = await decisionOf({ ...readBook, subject: { type: 'user', id } });
      expect(allowed, id).toBe(body.results.some((r) => r.id === id));
    }
  });

  it('ignores an id on the searched subject, whatever its value', async () => {
    const body = await search(SUBJECT, { ...readBook, subject: { type: 'user', id: 42 } });
    expect(body.results.map((r) => r.id)).toEqual(['alice', 'bob', 'carol']);
  });

  it('applies the deny and the conditions to every candidate', async () => {
    const secret = await search(SUBJECT, { ...readBook, resource: { type: 'book', id: 'secret-1' } });
    expect(secret.results.map((r) => r.id)).toEqual(['carol']);
    const borrow = await search(SUBJECT, { ...readBook, action: { name: 'borrow' } });
    expect(borrow.results.map((r) => r.id)).toEqual(['alice', 'carol']); // alice is in eng
    const withProps = await search(SUBJECT, {
      ...readBook,
      subject: { type: 'user', properties: { department: 'eng' } },
      action: { name: 'borrow' },
    });
    expect(withProps.results.map((r) => r.id)).toEqual(['alice', 'bob', 'carol']);
  });

  it('lists services by principal', async () => {
    const index = { subject: { type: 'service' }, action: { name: 'index' }, resource: { type: 'book', id: '1' } };
    expect((await search(SUBJECT, index)).results).toEqual([{ type: 'service', id: 'library.gateway' }]);
    expect((await search(SUBJECT, { ...readBook, subject: { type: 'service' } })).results).toEqual([]);
  });

  it('answers no results for a type that has no known subjects (c-4-6)', async () => {
    const body = await search(SUBJECT, { ...readBook, subject: { type: 'robot' } });
    expect(body).toEqual({ page: { next_token: '', count: 0 }, context: { revision: f.revision }, results: [] });
  });

  it('pages with opaque tokens, never losing or repeating a result', async () => {
    const pages = await allPages(SUBJECT, readBook, 1);
    expect(pages.map((p) => p.results.map((r) => r.id))).toEqual([['alice'], ['bob'], ['carol']]);
    expect(pages.map((p) => p.page.count)).toEqual([1, 1, 1]);
    expect(pages.at(-1)?.page.next_token).toBe('');
    const two = await allPages(SUBJECT, readBook, 2);
    expect(two.map((p) => p.results.length)).toEqual([2, 1]);
  });

  it('gives the total when asked', async () => {
    const body = await search(SUBJECT, { ...readBook, page: { limit: 1, properties: { total: true } } });
    expect(body.page).toMatchObject({ count: 1, total: 3 });
    expect(body.page.next_token).not.toBe('');
    const second = await search(SUBJECT, {
      ...readBook,
      page: { limit: 1, properties: { total: true }, token: body.page.next_token },
    });
    expect(second.page).toMatchObject({ count: 1, total: 3 });
  });

  it('answers limit 0 with no results and a token that starts where it did', async () => {
    const body = await search(SUBJECT, { ...readBook, page: { limit: 0 } });
    expect(body.results).toEqual([]);
    expect(body.page.count).toBe(0);
    expect(body.page.next_token).not.toBe('');
  });

  it('refuses a token from another request, and one it did not make', async () => {
    const first = await search(SUBJECT, { ...readBook, page: { limit: 1 } });
    const changed = await f.post(SUBJECT, GATEWAY, {
      ...readBook,
      action: { name: 'borrow' },
      page: { limit: 1, token: first.page.next_token },
    });
    expectProblem(changed, 400, 'page.token_mismatch');
    const otherLimit = await f.post(SUBJECT, GATEWAY, {
      ...readBook,
      page: { limit: 2, token: first.page.next_token },
    });
    expectProblem(otherLimit, 400, 'page.token_mismatch');
    for (const token of ['garbage', 'eyJ2IjoyfQ', 'x'.repeat(512)]) {
      expectProblem(await f.post(SUBJECT, GATEWAY, { ...readBook, page: { token } }), 400, 'page.token_invalid');
    }
    expectProblem(
      await f.post(SUBJECT, GATEWAY, { ...readBook, page: { token: 'x'.repeat(513) } }),
      400,
      'request.invalid',
    );
  });

  it('lowers a limit above 1,000 instead of refusing it, and refuses a negative one', async () => {
    const body = await search(SUBJECT, { ...readBook, page: { limit: 1_000_000 } });
    expect(body.page).toEqual({ next_token: '', count: 3 });
    expectProblem(await f.post(SUBJECT, GATEWAY, { ...readBook, page: { limit: -1 } }), 400, 'request.invalid');
    expectProblem(await f.post(SUBJECT, GATEWAY, { ...readBook, page: { limit: 1.5 } }), 400, 'request.invalid');
  });

  it('needs access.check: it is about others', async () => {
    expectProblem(await f.post(SUBJECT, 'user.alice', readBook), 403, 'pdp.forbidden');
    expect((await search(SUBJECT, readBook, 'user.carol')).results).toHaveLength(3); // a domain admin
  });

  it.each([
    ['no resource', { subject: { type: 'user' }, action: { name: 'read' } }],
    ['a resource without id', { ...readBook, resource: { type: 'book' } }],
    ['no action', { subject: { type: 'user' }, resource: { type: 'book', id: '1' } }],
    ['no subject', { action: { name: 'read' }, resource: { type: 'book', id: '1' } }],
    ['a subject without type', { ...readBook, subject: {} }],
  ])('refuses a request with %s: 400 (c-4-7)', async (_, body) => {
    expectProblem(await f.post(SUBJECT, GATEWAY, body), 400, 'request.invalid');
  });
});

describe('POST …/search/resource (#resource-search-api)', () => {
  const aliceReads = { subject: { type: 'user', id: 'alice' }, action: { name: 'read' }, resource: { type: 'book' } };

  it('lists the known resources of the type the subject may reach, each one a permit when evaluated', async () => {
    const body = await search(RESOURCE, aliceReads);
    expect(body).toEqual({
      page: { next_token: '', count: 2 },
      context: { revision: f.revision },
      results: [
        { type: 'book', id: '42' },
        { type: 'book', id: '7' },
      ],
    });
    for (const id of ['42', '7', 'secret-1']) {
      const allowed = await decisionOf({ ...aliceReads, resource: { type: 'book', id } });
      expect(allowed, id).toBe(id !== 'secret-1');
    }
  });

  it('knows the ids the policies name literally as well as the registered ones', async () => {
    const body = await search(RESOURCE, { ...aliceReads, action: { name: 'pin' }, resource: { type: 'notice' } });
    expect(body.results).toEqual([{ type: 'notice', id: 'welcome' }]);
  });

  it('evaluates conditions against each resource with the request properties on top', async () => {
    const update = { ...aliceReads, action: { name: 'update' } };
    expect((await search(RESOURCE, update)).results).toEqual([{ type: 'book', id: '42' }]);
    const asBob = { ...update, subject: { type: 'user', id: 'bob' } };
    expect((await search(RESOURCE, asBob)).results).toEqual([]);
    const claimed = { ...asBob, resource: { type: 'book', properties: { owner: 'user.bob' } } };
    expect((await search(RESOURCE, claimed)).results.map((r) => r.id)).toEqual(['42', '7', 'secret-1']);
  });

  it('answers no results for an unknown type or an unknown subject (c-4-6)', async () => {
    expect((await search(RESOURCE, { ...aliceReads, resource: { type: 'spaceship' } })).results).toEqual([]);
    const nobody = { ...aliceReads, subject: { type: 'user', id: 'nobody' } };
    expect((await search(RESOURCE, nobody)).results).toEqual([]);
  });

  it('lets a subject ask about itself, and nobody else without access.check', async () => {
    expect((await search(RESOURCE, aliceReads, 'user.alice')).results).toHaveLength(2);
    const aboutBob = { ...aliceReads, subject: { type: 'user', id: 'bob' } };
    expectProblem(await f.post(RESOURCE, 'user.alice', aboutBob), 403, 'pdp.forbidden');
  });

  it('pages', async () => {
    const pages = await allPages(RESOURCE, aliceReads, 1);
    expect(pages.map((p) => p.results.map((r) => r.id))).toEqual([['42'], ['7']]);
  });

  it.each([
    ['no subject', { action: { name: 'read' }, resource: { type: 'book' } }],
    ['a subject without id', { ...aliceReads, subject: { type: 'user' } }],
    ['no action', { subject: { type: 'user', id: 'alice' }, resource: { type: 'book' } }],
    ['no resource', { subject: { type: 'user', id: 'alice' }, action: { name: 'read' } }],
    ['a resource without type', { ...aliceReads, resource: { id: '7' } }],
  ])('refuses a request with %s: 400 (c-4-7)', async (_, body) => {
    expectProblem(await f.post(RESOURCE, GATEWAY, body), 400, 'request.invalid');
  });
});

describe('POST …/search/action (#action-search-api)', () => {
  const aliceOnBook = (id: string) => ({ subject: { type: 'user', id: 'alice' }, resource: { type: 'book', id } });

  it('lists the actions the subject may do on the resource, each one a permit when evaluated', async () => {
    const body = await search(ACTION, aliceOnBook('1'));
    expect(body).toEqual({
      page: { next_token: '', count: 2 },
      context: { revision: f.revision },
      results: [{ name: 'borrow' }, { name: 'read' }],
    });
    for (const name of ['access.check', 'borrow', 'index', 'pin', 'rate', 'read', 'update', 'view']) {
      const allowed = await decisionOf({ ...aliceOnBook('1'), action: { name } });
      expect(allowed, name).toBe(['borrow', 'read'].includes(name));
    }
    const own = await search(ACTION, aliceOnBook('42'));
    expect(own.results).toEqual([{ name: 'borrow' }, { name: 'read' }, { name: 'update' }]);
  });

  it('answers no results for a subject or a resource type nothing is granted on', async () => {
    expect((await search(ACTION, { ...aliceOnBook('1'), subject: { type: 'user', id: 'nobody' } })).results).toEqual(
      [],
    );
    expect((await search(ACTION, { ...aliceOnBook('1'), resource: { type: 'spaceship', id: '1' } })).results).toEqual(
      [],
    );
  });

  it('pages', async () => {
    const pages = await allPages(ACTION, aliceOnBook('42'), 2);
    expect(pages.map((p) => p.results.map((r) => r.name))).toEqual([['borrow', 'read'], ['update']]);
  });

  it.each([
    ['no subject', { resource: { type: 'book', id: '1' } }],
    ['no resource', { subject: { type: 'user', id: 'alice' } }],
    ['a resource without id', { subject: { type: 'user', id: 'alice' }, resource: { type: 'book' } }],
    ['a subject without id', { subject: { type: 'user' }, resource: { type: 'book', id: '1' } }],
  ])('refuses a request with %s: 400 (c-4-7)', async (_, body) => {
    expectProblem(await f.post(ACTION, GATEWAY, body), 400, 'request.invalid');
  });
});

describe('the search routes', () => {
  const readBook = { subject: { type: 'user' }, action: { name: 'read' }, resource: { type: 'book', id: '1' } };

  it('authenticate first: 401 with a challenge', async () => {
    const res = await f.post(SUBJECT, undefined, readBook);
    expectProblem(res, 401, 'auth.required');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
  });

  it('have no PDP for a domain that does not exist: 404', async () => {
    expectProblem(await f.post('/pdp/nowhere/access/v1/search/subject', GATEWAY, readBook), 404, 'domain.not_found');
  });

  it('echo X-Request-ID', async () => {
    const res = await f.post(SUBJECT, GATEWAY, readBook, { 'x-request-id': 'pep-search-1' });
    expect(res.headers['x-request-id']).toBe('pep-search-1');
  });

  it('refuse a body that is not JSON with 400', async () => {
    const res = await f.postRaw(SUBJECT, GATEWAY, '{"subject":', { 'content-type': 'application/json' });
    expectProblem(res, 400, 'request.malformed_json');
  });

  it('are listed in the PDP metadata', async () => {
    const res = await f.gh.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration/pdp/library' });
    expect(res.json()).toMatchObject({
      search_subject_endpoint: `${f.gh.config.publicUrl}/pdp/library/access/v1/search/subject`,
      search_resource_endpoint: `${f.gh.config.publicUrl}/pdp/library/access/v1/search/resource`,
      search_action_endpoint: `${f.gh.config.publicUrl}/pdp/library/access/v1/search/action`,
    });
  });
});
