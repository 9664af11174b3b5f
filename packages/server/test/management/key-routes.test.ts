import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CatalogHolder } from '../../src/catalog/catalog-holder.js';
import { ProblemError } from '../../src/http/problem.js';
import { mintAccessToken } from '../../src/keys/access-tokens.js';
import { ManagementService } from '../../src/management/management-service.js';
import { expectProblem, startManagementFixture, type ManagementFixture } from './management-fixture.js';

// api.md §3 `/v1/keys` and §4 `/v1/keys/control`: the public halves of both key holders, for
// anyone (they are public), with no private member ever.
let f: ManagementFixture;

beforeAll(async () => {
  f = await startManagementFixture([]);
});
afterAll(() => f.close());

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

describe('/v1/keys', () => {
  it('publishes both JWKS without authentication, public members only', async () => {
    const res = await f.gh.app.inject({ method: 'GET', url: '/v1/keys' });
    expect(res.statusCode).toBe(200);
    const body = res.json() as {
      token: { keys: Record<string, string>[] };
      control: { keys: Record<string, string>[] };
    };
    expect(Object.keys(body)).toEqual(['token', 'control']);
    for (const jwks of [body.token, body.control]) {
      expect(jwks.keys).toHaveLength(1);
      const key = jwks.keys[0] as Record<string, string>;
      expect(key).toEqual({
        kty: 'OKP',
        crv: 'Ed25519',
        x: expect.any(String),
        kid: expect.any(String),
        alg: 'EdDSA',
        use: 'sig',
      });
      for (const m of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(m);
    }
    expect(body.token.keys[0]?.kid).not.toBe(body.control.keys[0]?.kid);
    // The token key is the one access tokens name.
    const token = await mintAccessToken(f.gh.keys, {
      issuer: f.gh.issuer,
      subject: 'user.x',
      audience: f.gh.managementAudience,
      ttlSeconds: 60,
    });
    expect(decodeProtectedHeader(token).kid).toBe(body.token.keys[0]?.kid);
    const control = await f.gh.app.inject({ method: 'GET', url: '/v1/keys/control' });
    expect(control.statusCode).toBe(200);
    expect(control.json()).toEqual(body.control);
  });

  it('lists a retired key beside the new one until it expires', async () => {
    const before = (await f.gh.app.inject({ method: 'GET', url: '/v1/keys/control' })).json().keys as { kid: string }[];
    const kid = await f.gh.keys.rotate('control', { actor: 'user.root', overlapSeconds: 3600 });
    const after = (await f.gh.app.inject({ method: 'GET', url: '/v1/keys/control' })).json().keys as { kid: string }[];
    expect(after.map((k) => k.kid)).toEqual([kid, before[0]?.kid]);
    const all = (await f.gh.app.inject({ method: 'GET', url: '/v1/keys' })).json();
    expect(all.control.keys).toHaveLength(2);
    expect(all.token.keys).toHaveLength(1);
  });

  it('answers 503 from a service built without keys', async () => {
    const bare = new ManagementService(f.gh.store, new CatalogHolder());
    const err = await bare.getPublicJwks('control').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProblemError);
    expect(err).toMatchObject({ status: 503, code: 'keys.unavailable' });
  });

  it('is read-only', async () => {
    const res = await f.gh.app.inject({ method: 'POST', url: '/v1/keys', payload: {} });
    expectProblem(res, 405, 'route.method_not_allowed');
  });

  it('publishes every new route in OpenAPI, with request and response schemas', async () => {
    const doc = (await f.gh.app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as {
      paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>>;
    };
    const expected: Record<string, string[]> = {
      '/v1/users': ['get', 'post'],
      '/v1/users/{name}': ['get', 'patch', 'delete'],
      '/v1/domains/{domain}/services': ['get', 'post'],
      '/v1/domains/{domain}/services/{name}': ['get', 'patch', 'delete'],
      '/v1/domains/{domain}/services/{name}/secret': ['post'],
      '/v1/domains/{domain}/clients': ['get', 'post'],
      '/v1/domains/{domain}/clients/{clientId}': ['get', 'patch', 'delete'],
      '/v1/domains/{domain}/clients/{clientId}/secret': ['post'],
      '/v1/domains/{domain}/apis': ['get', 'post'],
      '/v1/domains/{domain}/apis/{name}': ['get', 'patch', 'delete'],
      '/v1/domains/{domain}/resources': ['get'],
      '/v1/domains/{domain}/resources/{type}/{id}': ['get', 'put', 'delete'],
      '/v1/keys': ['get'],
      '/v1/keys/control': ['get'],
    };
    for (const [path, methods] of Object.entries(expected)) {
      expect(Object.keys(doc.paths[path] ?? {}).sort(), path).toEqual([...methods].sort());
      for (const m of methods) {
        const op = doc.paths[path]?.[m];
        const ok = m === 'delete' ? '204' : m === 'post' && !path.endsWith('/secret') ? '201' : '200';
        expect(op?.responses, `${m} ${path}`).toHaveProperty(ok);
        if (!path.startsWith('/v1/keys')) expect(op?.responses, `${m} ${path}`).toHaveProperty('403');
        if (m === 'post' || m === 'patch' || m === 'put') expect(op?.requestBody, `${m} ${path}`).toBeDefined();
      }
    }
  });
});
