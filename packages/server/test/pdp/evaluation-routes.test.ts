import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../management/management-fixture.js';
import { startPdpFixture, type PdpFixture } from './pdp-fixture.js';

// api.md §2 and authzen.md §2, §6, §9: the Access Evaluation API of one domain's PDP.
const EVAL = '/pdp/library/access/v1/evaluation';
const GATEWAY = 'library.gateway'; // the PEP: holds access.check on library:access

let f: PdpFixture;
beforeAll(async () => {
  f = await startPdpFixture();
});
afterAll(() => f.close());

const user = (id: string, properties?: Record<string, unknown>) => ({
  type: 'user',
  id,
  ...(properties ? { properties } : {}),
});
const book = (id: string, properties?: Record<string, unknown>) => ({
  type: 'book',
  id,
  ...(properties ? { properties } : {}),
});
const ask = (subject: object, action: string | object, resource: object, context?: object) => ({
  subject,
  action: typeof action === 'string' ? { name: action } : action,
  resource,
  ...(context ? { context } : {}),
});

/** The decision of a request the gateway makes; fails unless it is a 200. */
async function decisionOf(body: unknown): Promise<boolean> {
  const res = await f.post(EVAL, GATEWAY, body);
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { decision: boolean }).decision;
}

describe('POST /pdp/:domain/access/v1/evaluation', () => {
  it('answers a decision with the domain revision in its context (#decision)', async () => {
    const res = await f.post(EVAL, GATEWAY, ask(user('alice'), 'read', book('1')));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ decision: true, context: { revision: f.revision } });
    expect(f.revision).toBeGreaterThan(0);
  });

  it('answers a deny as 200 with decision false, never an HTTP error (#decision)', async () => {
    const res = await f.post(EVAL, GATEWAY, ask(user('bob'), 'read', book('secret-1')));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ decision: false, context: { revision: f.revision } });
    expect(await decisionOf(ask(user('bob'), 'burn', book('1')))).toBe(false);
  });

  it.each([
    ['its name, in any case', 'ALICE'],
    ['an external id', 'idp|alice-17'],
    ['an email', 'Alice@Example.com'],
  ])('finds a user subject by %s (api.md §2)', async (_what, id) => {
    const res = await f.post(EVAL, GATEWAY, ask(user(id), 'update', book('42'), { explain: true }));
    expect(res.statusCode).toBe(200);
    const body = res.json() as { decision: boolean; context: { reason_admin: { principal: string } } };
    expect(body.decision).toBe(true);
    expect(body.context.reason_admin.principal).toBe('user.alice');
  });

  it('evaluates a subject the directory does not know with no memberships: only `*` matches it', async () => {
    expect(await decisionOf(ask(user('nobody@example.com'), 'read', book('1')))).toBe(false);
    expect(await decisionOf(ask(user('nobody@example.com'), 'read', { type: 'notice', id: '1' }))).toBe(true);
    expect(await decisionOf(ask({ type: 'robot', id: 'r2' }, 'read', { type: 'notice', id: '1' }))).toBe(true);
    expect(await decisionOf(ask({ type: 'robot', id: 'alice' }, 'read', book('1')))).toBe(false);
    // Its properties are the request's only.
    const res = await f.post(
      EVAL,
      GATEWAY,
      ask(user('ghost', { department: 'eng' }), 'view', { type: 'doc', id: '1' }, { ip: '10.0.0.1', explain: true }),
    );
    expect(res.json()).toMatchObject({ decision: true, context: { reason_admin: { principal: '~unknown' } } });
  });

  it('shows conditions the type the request named for a subject the directory does not know', async () => {
    const door = { type: 'door', id: 'front' };
    expect(await decisionOf(ask(user('nobody'), 'knock', door))).toBe(true);
    expect(await decisionOf(ask({ type: 'robot', id: 'r2' }, 'knock', door))).toBe(false);
    expect(await decisionOf(ask({ type: 'service', id: 'library.gateway' }, 'knock', door))).toBe(false);
  });

  it('maps a service subject to its principal; an unknown service is an unknown subject', async () => {
    expect(await decisionOf(ask({ type: 'service', id: 'Library.Gateway' }, 'index', book('1')))).toBe(true);
    expect(await decisionOf(ask({ type: 'service', id: 'library.ghost' }, 'index', book('1')))).toBe(false);
    expect(await decisionOf(ask({ type: 'user', id: 'library.gateway' }, 'index', book('1')))).toBe(false);
  });

  it('adds subject properties without overriding stored ones (semantics.md "Conditions")', async () => {
    expect(await decisionOf(ask(user('alice'), 'borrow', book('1')))).toBe(true);
    expect(await decisionOf(ask(user('alice', { department: 'sales' }), 'borrow', book('1')))).toBe(true);
    expect(await decisionOf(ask(user('bob', { department: 'eng' }), 'borrow', book('1')))).toBe(true);
    // A missing attribute is an evaluation error: the allow does not match.
    expect(await decisionOf(ask(user('bob'), 'borrow', book('1')))).toBe(false);
  });

  it('overrides stored resource properties key by key with the request', async () => {
    expect(await decisionOf(ask(user('alice'), 'update', book('42')))).toBe(true);
    expect(await decisionOf(ask(user('bob'), 'update', book('42')))).toBe(false);
    expect(await decisionOf(ask(user('alice'), 'update', book('42', { owner: 'user.bob' })))).toBe(false);
    expect(await decisionOf(ask(user('bob'), 'update', book('42', { owner: 'user.bob' })))).toBe(true);
  });

  it('passes action properties and the context to conditions', async () => {
    expect(await decisionOf(ask(user('bob'), { name: 'rate', properties: { stars: 3 } }, book('1')))).toBe(true);
    expect(await decisionOf(ask(user('bob'), { name: 'rate', properties: { stars: 9 } }, book('1')))).toBe(false);
    expect(await decisionOf(ask(user('bob'), 'view', { type: 'doc', id: '1' }, { ip: '10.0.0.1' }))).toBe(true);
    expect(await decisionOf(ask(user('bob'), 'view', { type: 'doc', id: '1' }, { ip: '10.9.9.9' }))).toBe(false);
  });

  it('explains with context.explain: deciding assertions and match paths for admins, a safe reason for users', async () => {
    const allowed = await f.post(EVAL, GATEWAY, ask(user('alice'), 'read', book('1'), { explain: true }));
    expect(allowed.statusCode).toBe(200);
    const a = allowed.json() as { decision: boolean; context: Record<string, unknown> };
    expect(a.decision).toBe(true);
    expect(a.context).toMatchObject({
      revision: f.revision,
      reason_user: 'access is granted',
      reason_admin: {
        code: 'allow',
        principal: 'user.alice',
        action: 'read',
        resource: 'library:book/1',
        deciding: [
          {
            assertion: { domain: 'library', policy: 'books', index: 0, effect: 'allow' },
            matchedAs: 'library:role.readers',
            path: [{ via: 'member', role: 'readers', entry: 'user.alice' }],
          },
        ],
        summary: expect.stringMatching(/^allowed by library:policy\.books #0/),
      },
    });
    const denied = (await f.post(EVAL, GATEWAY, ask(user('bob'), 'read', book('secret-9'), { explain: true }))).json();
    expect(denied).toMatchObject({
      decision: false,
      context: { reason_user: 'access is denied by policy', reason_admin: { code: 'deny' } },
    });
    const conditional = (
      await f.post(EVAL, GATEWAY, ask(user('bob'), 'borrow', book('1'), { explain: true }))
    ).json() as { context: { reason_user: string; reason_admin: { conditions: { result: unknown }[] } } };
    expect(conditional.context.reason_user).toBe('no policy grants this access');
    expect(conditional.context.reason_admin.conditions).toEqual([
      expect.objectContaining({ result: 'error', effect: 'not_matched' }),
    ]);
    // Without explain, nothing but the revision.
    const plain = (await f.post(EVAL, GATEWAY, ask(user('alice'), 'read', book('1'), { explain: 'yes' }))).json();
    expect(plain).toEqual({ decision: true, context: { revision: f.revision } });
  });

  it('ignores unknown members at the top level and inside entities (c-2-2-9)', async () => {
    const res = await f.post(EVAL, GATEWAY, {
      ...ask({ ...user('alice'), extra: 1 }, { name: 'read', x: [] }, { ...book('1'), y: null }),
      unknown: { member: true },
      page: { limit: 3 },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ decision: true, context: { revision: f.revision } });
  });

  it('echoes X-Request-ID, and makes one up when there is none (c-2-5)', async () => {
    const res = await f.post(EVAL, GATEWAY, ask(user('alice'), 'read', book('1')), { 'x-request-id': 'pep-42' });
    expect(res.headers['x-request-id']).toBe('pep-42');
    const none = await f.post(EVAL, GATEWAY, ask(user('alice'), 'read', book('1')));
    expect(none.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const refused = await f.post(EVAL, GATEWAY, { subject: 'alice' }, { 'x-request-id': 'pep-43' });
    expect(refused.headers['x-request-id']).toBe('pep-43');
  });
});

describe('errors of the evaluation API (authzen.md §6)', () => {
  const json = { 'content-type': 'application/json' };
  it.each([
    ['malformed JSON', '{"subject": ', json, 'request.malformed_json'],
    [
      'a wrong content type',
      JSON.stringify(ask(user('alice'), 'read', book('1'))),
      { 'content-type': 'text/plain' },
      'request.unsupported_media_type',
    ],
    ['an XML content type', '<subject/>', { 'content-type': 'application/xml' }, 'request.unsupported_media_type'],
    [
      'a form',
      'subject=alice',
      { 'content-type': 'application/x-www-form-urlencoded' },
      'request.unsupported_media_type',
    ],
    ['a body without a content type', 'subject', {}, 'request.unsupported_media_type'],
    ['an empty body', '', json, 'request.empty_body'],
    ['no body', undefined, {}, 'request.empty_body'],
    ['an array', '[]', json, 'request.invalid'],
    ['a string', '"alice"', json, 'request.invalid'],
  ] as const)('answers 400 for %s', async (_what, payload, headers, code) => {
    expectProblem(await f.postRaw(EVAL, GATEWAY, payload, headers), 400, code);
  });

  it.each([
    ['"subject": "alice"', { ...ask(user('alice'), 'read', book('1')), subject: 'alice' }, '/body/subject'],
    [
      '"action": {"name": 123}',
      { ...ask(user('alice'), 'read', book('1')), action: { name: 123 } },
      '/body/action/name',
    ],
    ['a missing subject', { action: { name: 'read' }, resource: book('1') }, '/body/subject'],
    ['a missing action', { subject: user('alice'), resource: book('1') }, '/body/action'],
    ['a missing resource', { subject: user('alice'), action: { name: 'read' } }, '/body/resource'],
    ['a subject without id', ask({ type: 'user' }, 'read', book('1')), '/body/subject/id'],
    ['a numeric resource id', ask(user('alice'), 'read', { type: 'book', id: 42 }), '/body/resource/id'],
    ['an empty action name', ask(user('alice'), { name: '' }, book('1')), '/body/action/name'],
    [
      'properties that are not an object',
      ask(user('alice', ['x'] as never), 'read', book('1')),
      '/body/subject/properties',
    ],
    ['a context that is not an object', { ...ask(user('alice'), 'read', book('1')), context: 'now' }, '/body/context'],
  ])('answers 400 with a short message for %s', async (_what, body, pointer) => {
    const res = await f.post(EVAL, GATEWAY, body);
    const problem = expectProblem(res, 400, 'request.invalid') as { detail: string; errors: { pointer: string }[] };
    expect(problem.errors.map((e) => e.pointer)).toContain(pointer);
    expect(problem.detail.length).toBeLessThan(200);
  });

  it('needs a bearer token: 401 with WWW-Authenticate, before the body is looked at', async () => {
    const res = await f.post(EVAL, undefined, ask(user('alice'), 'read', book('1')));
    expectProblem(res, 401, 'auth.required');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="gatehouse"');
    const garbage = await f.postRaw(EVAL, GATEWAY, '{', { ...json, authorization: 'Bearer not.a.token' });
    expectProblem(garbage, 401, 'token.malformed');
    expect(garbage.headers['www-authenticate']).toBe('Bearer realm="gatehouse", error="invalid_token"');
    expectProblem(
      await f.postRaw('/pdp/nowhere/access/v1/evaluation', GATEWAY, '{', { authorization: 'Basic x' }),
      401,
      'auth.required',
    );
  });

  it('takes tokens for the PDP audience and management tokens, and no others', async () => {
    const body = JSON.stringify(ask(user('alice'), 'read', book('1')));
    for (const audience of [f.gh.pdpAudience, f.gh.managementAudience]) {
      const token = await f.token('user.alice', audience);
      const res = await f.postRaw(EVAL, 'user.alice', body, { ...json, authorization: `Bearer ${token}` });
      expect(res.statusCode).toBe(200);
    }
    const other = await f.token('user.alice', 'https://elsewhere.example');
    expectProblem(
      await f.postRaw(EVAL, 'user.alice', body, { ...json, authorization: `Bearer ${other}` }),
      401,
      'token.audience',
    );
    expect(f.gh.pdpAudience).toBe(`${f.gh.config.publicUrl}/pdp`);
  });

  it('answers 404 for a domain without a PDP and 403 for a disabled one, whatever the body', async () => {
    const body = ask(user('alice'), 'read', book('1'));
    expectProblem(await f.post('/pdp/nowhere/access/v1/evaluation', GATEWAY, body), 404, 'domain.not_found');
    expectProblem(
      await f.post('/pdp/nowhere/access/v1/evaluation', GATEWAY, { subject: 'x' }),
      404,
      'domain.not_found',
    );
    expectProblem(await f.post('/pdp/closed/access/v1/evaluation', 'user.root', body), 403, 'domain.disabled');
    // Domain names are case-insensitive.
    expect((await f.post('/pdp/LIBRARY/access/v1/evaluation', GATEWAY, body)).statusCode).toBe(200);
  });
});

describe('who may ask (api.md §2)', () => {
  it('lets any caller ask about itself, however the subject names it', async () => {
    for (const id of ['alice', 'alice@example.com', 'idp|alice-17']) {
      const res = await f.post(EVAL, 'user.alice', ask(user(id), 'read', book('1')));
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ decision: true });
    }
    const service = await f.post(EVAL, GATEWAY, ask({ type: 'service', id: GATEWAY }, 'index', book('1')));
    expect(service.json()).toMatchObject({ decision: true });
    // Asking about itself answers a deny as a deny, not as 403.
    expect((await f.post(EVAL, 'user.bob', ask(user('bob'), 'read', book('secret-2')))).json()).toMatchObject({
      decision: false,
    });
  });

  it('refuses to tell a caller without access.check about others: 403, not decision false', async () => {
    for (const subject of [user('bob'), user('nobody'), { type: 'service', id: GATEWAY }]) {
      const res = await f.post(EVAL, 'user.alice', ask(subject, 'read', book('1')));
      const problem = expectProblem(res, 403, 'pdp.forbidden');
      expect(problem.detail).toContain('access.check on library:access');
    }
  });

  it.each([
    ['a domain admin', 'user.carol'],
    ['a super admin', 'user.root'],
    ['a holder of access.check', GATEWAY],
  ])('lets %s ask about others', async (_who, caller) => {
    const res = await f.post(EVAL, caller, ask(user('bob'), 'read', book('1')));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ decision: true });
  });

  it('never lets access.check in one domain reach another', async () => {
    const res = await f.post('/pdp/sys.auth/access/v1/evaluation', 'user.carol', ask(user('bob'), 'read', book('1')));
    expectProblem(res, 403, 'pdp.forbidden');
  });
});

describe('GET /.well-known/authzen-configuration/pdp/:domain (authzen.md §5)', () => {
  it('describes the PDP of a domain, cacheable', async () => {
    const res = await f.gh.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration/pdp/library' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    const pdp = `${f.gh.config.publicUrl}/pdp/library`;
    expect(res.json()).toEqual({
      policy_decision_point: pdp,
      access_evaluation_endpoint: `${pdp}/access/v1/evaluation`,
      access_evaluations_endpoint: `${pdp}/access/v1/evaluations`,
      search_subject_endpoint: `${pdp}/access/v1/search/subject`,
      search_resource_endpoint: `${pdp}/access/v1/search/resource`,
      search_action_endpoint: `${pdp}/access/v1/search/action`,
    });
    expect(pdp).toBe('http://127.0.0.1:8740/pdp/library');
  });

  it('gives back the identifier exactly as the PEP spelled it (mix-up protection)', async () => {
    const res = await f.gh.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration/pdp/Library' });
    expect(res.json()).toMatchObject({ policy_decision_point: `${f.gh.config.publicUrl}/pdp/Library` });
  });

  it('answers 404 for a domain that does not exist; a disabled domain still has its PDP', async () => {
    const res = await f.gh.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration/pdp/nowhere' });
    expectProblem(res, 404, 'domain.not_found');
    const closed = await f.gh.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration/pdp/closed' });
    expect(closed.statusCode).toBe(200);
  });

  it('is listed in the OpenAPI document with the evaluation and search routes', async () => {
    const doc = (await f.gh.app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/.well-known/authzen-configuration/pdp/{domain}',
        '/pdp/{domain}/access/v1/evaluation',
        '/pdp/{domain}/access/v1/evaluations',
        '/pdp/{domain}/access/v1/search/subject',
        '/pdp/{domain}/access/v1/search/resource',
        '/pdp/{domain}/access/v1/search/action',
      ]),
    );
  });
});
