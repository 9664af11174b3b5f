import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { mintAccessToken } from '../../src/keys/access-tokens.js';
import { createGatehouse, type Gatehouse } from '../../src/runtime/create-gatehouse.js';

// api.md §3 through the HTTP API: every route, every error path, who may manage what.
let dir: string;
let gh: Gatehouse;
const tokens: Record<string, string> = {};

async function tokenFor(principal: string): Promise<string> {
  return mintAccessToken(gh.keys, {
    issuer: gh.issuer,
    subject: principal,
    audience: gh.managementAudience,
    ttlSeconds: 600,
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-mgmt-'));
  gh = await createGatehouse(loadConfig({ GATEHOUSE_DATABASE_URL: `sqlite:${join(dir, 'g.db')}` }), { logger: false });
  await gh.management.replaceRole(
    { principal: 'operator' },
    'sys.auth',
    'admin',
    { members: [{ name: 'user.root' }] },
    undefined,
  );
  for (const p of ['user.root', 'user.alice', 'user.sam', 'user.nobody']) tokens[p] = await tokenFor(p);
});
afterAll(async () => {
  await gh.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  as?: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  return gh.app.inject({
    method,
    url,
    headers: { ...(as ? { authorization: `Bearer ${tokens[as]}` } : {}), ...headers },
    ...(body !== undefined ? { payload: body as object } : {}),
  });
}

describe('management API', () => {
  it('needs a valid bearer token', async () => {
    const none = await call('GET', '/v1/domains');
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="gatehouse"');
    expect(none.json()).toMatchObject({ code: 'auth.required', status: 401 });
    // Authentication comes first: a malformed request without a token learns nothing about it.
    const invalidBody = await gh.app.inject({ method: 'POST', url: '/v1/domains', payload: { nonsense: true } });
    expect(invalidBody.statusCode).toBe(401);
    const bad = await gh.app.inject({
      method: 'GET',
      url: '/v1/domains',
      headers: { authorization: 'Bearer abc.def.ghi' },
    });
    expect(bad.statusCode).toBe(401);
    expect(bad.headers['www-authenticate']).toBe('Bearer realm="gatehouse", error="invalid_token"');
  });

  it('lets super admins create domains and their admins manage them', async () => {
    const created = await call('POST', '/v1/domains', 'user.root', {
      name: 'library',
      admins: [{ name: 'user.alice' }],
    });
    expect(created.statusCode).toBe(201);
    expect(created.headers.location).toBe('/v1/domains/library');
    expect(created.headers.etag).toBe('"1"');
    expect(created.json()).toMatchObject({ name: 'library', enabled: true, revision: 1 });
    expect(
      (await call('POST', '/v1/domains', 'user.root', { name: 'shop', admins: [{ name: 'user.sam' }] })).statusCode,
    ).toBe(201);
    const role = await call('POST', '/v1/domains/library/roles', 'user.alice', {
      name: 'readers',
      members: [{ name: 'user.bob' }],
    });
    expect(role.statusCode).toBe(201);
    expect(role.json()).toMatchObject({
      domain: 'library',
      name: 'readers',
      members: [{ name: 'user.bob' }],
      revision: 1,
    });
    const sub = await call('POST', '/v1/domains', 'user.alice', { name: 'library.archive' });
    expect(sub.statusCode).toBe(201);
  });

  it('keeps one domain’s admin out of another domain', async () => {
    expect((await call('GET', '/v1/domains/shop', 'user.alice')).statusCode).toBe(403);
    expect((await call('GET', '/v1/domains/shop/roles', 'user.alice')).statusCode).toBe(403);
    const r = await call('POST', '/v1/domains/shop/roles', 'user.alice', { name: 'x' });
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ code: 'management.forbidden', detail: 'user.alice may not create shop:role.x' });
    expect((await call('POST', '/v1/domains', 'user.alice', { name: 'newtop' })).statusCode).toBe(403);
    expect((await call('POST', '/v1/domains', 'user.nobody', { name: 'shop.sub' })).statusCode).toBe(403);
    const list = await call('GET', '/v1/domains', 'user.alice');
    expect(list.json().items.map((d: { name: string }) => d.name)).toEqual(['library', 'library.archive']);
  });

  it('answers every error with a problem', async () => {
    const badJson = await gh.app.inject({
      method: 'POST',
      url: '/v1/domains/library/roles',
      headers: { authorization: `Bearer ${tokens['user.alice']}`, 'content-type': 'application/json' },
      payload: '{"name":',
    });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().code).toBe('request.malformed_json');
    const unknown = await call('POST', '/v1/domains/library/roles', 'user.alice', { name: 'x', colour: 'red' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().errors).toEqual([expect.objectContaining({ pointer: '/body/colour' })]);
    const long = await call('POST', '/v1/domains/library/roles', 'user.alice', { name: 'x'.repeat(129) });
    expect(long.statusCode).toBe(400);
    expect(long.json().errors[0].pointer).toBe('/body/name');
    const missing = await call('PUT', '/v1/domains/library/policies/books', 'user.alice', {
      assertions: [{ effect: 'allow', action: 'read', resource: 'library:book/*', role: 'librarians' }],
    });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({
      code: 'role.not_found',
      errors: [
        {
          pointer: '/body/assertions/0/role',
          code: 'role.not_found',
          message: 'role "librarians" is not a role of domain library',
        },
      ],
    });
    const cond = await call('PUT', '/v1/domains/library/policies/books', 'user.alice', {
      assertions: [
        { effect: 'allow', action: 'read', resource: 'library:book/*', role: 'readers', condition: 'subject.id ==' },
      ],
    });
    expect(cond.statusCode).toBe(400);
    expect(cond.json()).toMatchObject({
      code: 'policy.invalid_condition',
      errors: [{ pointer: '/body/assertions/0/condition' }],
    });
    const dup = await call('POST', '/v1/domains/library/roles', 'user.alice', { name: 'Readers' });
    expect(dup.statusCode).toBe(409);
    expect(dup.json()).toMatchObject({
      code: 'role.exists',
      detail: 'role "readers" already exists in domain library',
    });
    expect((await call('GET', '/v1/domains/library/roles/nope', 'user.alice')).json()).toMatchObject({
      status: 404,
      code: 'role.not_found',
    });
    const badIfMatch = await call(
      'PUT',
      '/v1/domains/library/roles/readers',
      'user.alice',
      { members: [] },
      { 'if-match': 'yesterday' },
    );
    expect(badIfMatch.json()).toMatchObject({ status: 400, code: 'request.invalid_if_match' });
  });

  it('honours If-Match: a stale revision is 412, and exactly one of many concurrent updates wins', async () => {
    const current = await call('GET', '/v1/domains/library/roles/readers', 'user.alice');
    const etag = current.headers.etag as string;
    const stale = await call(
      'PUT',
      '/v1/domains/library/roles/readers',
      'user.alice',
      { members: [] },
      { 'if-match': '"999"' },
    );
    expect(stale.statusCode).toBe(412);
    expect(stale.json().code).toBe('revision.stale');
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        call(
          'PUT',
          '/v1/domains/library/roles/readers',
          'user.alice',
          { members: [{ name: `user.p${i}` }] },
          { 'if-match': etag },
        ),
      ),
    );
    const codes = results.map((r) => r.statusCode).sort();
    expect(codes.filter((c) => c === 200)).toHaveLength(1);
    expect(codes.filter((c) => c === 412)).toHaveLength(11);
    const winner = results.find((r) => r.statusCode === 200)!.json().members;
    expect((await call('GET', '/v1/domains/library/roles/readers', 'user.alice')).json().members).toEqual(winner);
  });

  it('never loses a member added concurrently', async () => {
    const adds = await Promise.all(
      Array.from({ length: 15 }, (_, i) => call('POST', '/v1/domains/library/groups', 'user.alice', { name: `g${i}` })),
    );
    expect(adds.every((r) => r.statusCode === 201)).toBe(true);
    const members = await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        call('POST', '/v1/domains/library/roles/readers/members', 'user.alice', { name: `user.m${i}` }),
      ),
    );
    expect(members.every((r) => r.statusCode === 200)).toBe(true);
    const names = (await call('GET', '/v1/domains/library/roles/readers', 'user.alice'))
      .json()
      .members.map((m: { name: string }) => m.name);
    for (let i = 0; i < 15; i++) expect(names).toContain(`user.m${i}`);
    const removed = await call('DELETE', '/v1/domains/library/roles/readers/members/user.m0', 'user.alice');
    expect(removed.statusCode).toBe(200);
    expect((await call('DELETE', '/v1/domains/library/roles/readers/members/user.m0', 'user.alice')).json().code).toBe(
      'member.not_found',
    );
  });

  it('manages policies, exports and imports the domain, and audits everything', async () => {
    const put = await call('PUT', '/v1/domains/library/policies/books', 'user.alice', {
      version: '1',
      assertions: [{ effect: 'allow', action: 'read', resource: 'library:book/*', role: 'readers' }],
    });
    expect(put.statusCode).toBe(200);
    expect((await call('GET', '/v1/domains/library/policies/books', 'user.alice')).json().versions).toHaveLength(1);
    const exported = await call('GET', '/v1/domains/library/export', 'user.alice');
    expect(exported.statusCode).toBe(200);
    expect(exported.headers['content-type']).toMatch(/^application\/yaml/);
    const dry = await call('POST', '/v1/domains/library/import?dryRun=true', 'user.alice', { config: exported.body });
    expect(dry.json()).toEqual({ applied: false, changes: [] });
    const changed = exported.body.replace('name: readers', 'name: readers\n        description: People who read');
    const plan = await call('POST', '/v1/domains/library/import?dryRun=true', 'user.alice', { config: changed });
    expect(plan.json().changes).toEqual([
      {
        action: 'update',
        kind: 'role',
        domain: 'library',
        name: 'readers',
        details: ['description: null → "People who read"'],
      },
    ]);
    expect((await call('GET', '/v1/domains/library/roles/readers', 'user.alice')).json().description).toBeNull();
    const wrong = await call('POST', '/v1/domains/library/import', 'user.alice', {
      config: 'domains:\n  - name: shop\n',
    });
    expect(wrong.json()).toMatchObject({ status: 400, code: 'import.wrong_domain' });
    const badFile = await call('POST', '/v1/domains/library/import', 'user.alice', {
      config: 'domains:\n  - name: library\n    rolez: []\n',
    });
    expect(badFile.json()).toMatchObject({
      status: 400,
      code: 'config.unknown_field',
      detail: expect.stringContaining('library.yaml:3:5'),
    });
    const audit = await call('GET', '/v1/audit?domain=library&limit=3', 'user.alice');
    expect(audit.statusCode).toBe(200);
    expect(audit.json().items.map((e: { action: string }) => e.action)).toEqual([
      'domain.create',
      'role.create',
      'role.update',
    ]);
    expect(audit.json().nextCursor).toBeDefined();
    expect((await call('GET', '/v1/audit', 'user.alice')).statusCode).toBe(403);
    expect((await call('GET', '/v1/audit?domain=shop', 'user.alice')).statusCode).toBe(403);
    expect((await call('GET', '/v1/audit', 'user.root')).statusCode).toBe(200);
  });

  it('deletes with the right checks', async () => {
    expect((await call('DELETE', '/v1/domains/library/roles/admin', 'user.alice')).json().code).toBe('role.builtin');
    expect((await call('DELETE', '/v1/domains/library', 'user.alice')).statusCode).toBe(403);
    expect((await call('DELETE', '/v1/domains/library', 'user.root')).json().code).toBe('domain.has_subdomains');
    expect((await call('DELETE', '/v1/domains/library.archive', 'user.alice')).statusCode).toBe(204);
    expect((await call('DELETE', '/v1/domains/shop', 'user.root')).statusCode).toBe(204);
    expect((await call('GET', '/v1/domains/shop', 'user.root')).statusCode).toBe(404);
  });

  it('publishes the management API in OpenAPI', async () => {
    const doc = (await gh.app.inject({ method: 'GET', url: '/v1/openapi.json' })).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/domains', '/v1/domains/{domain}/roles/{name}', '/v1/audit']),
    );
  });
});

describe('metrics', () => {
  it('counts management decisions', async () => {
    await call('GET', '/v1/domains/library/roles', 'user.nobody');
    const metrics = (await gh.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/gatehouse_decisions_total\{domain="library",decision="deny"\} [1-9]/);
    expect(metrics).toMatch(/gatehouse_decisions_total\{domain="library",decision="allow"\} [1-9]/);
  });
});

describe('lock-out protection', () => {
  it('refuses to disable sys.auth or remove the last super admin through the API', async () => {
    const disable = await call('PATCH', '/v1/domains/sys.auth', 'user.root', { enabled: false });
    expect(disable.json()).toMatchObject({ status: 409, code: 'domain.lockout' });
    const empty = await call('PUT', '/v1/domains/sys.auth/roles/admin', 'user.root', { members: [] });
    expect(empty.json()).toMatchObject({ status: 409, code: 'role.last_super_admin' });
    const last = await call('DELETE', '/v1/domains/sys.auth/roles/admin/members/user.root', 'user.root');
    expect(last.json()).toMatchObject({ status: 409, code: 'role.last_super_admin' });
    expect((await gh.store.getRole('sys.auth', 'admin')).members).toEqual([{ name: 'user.root' }]);
  });
});
