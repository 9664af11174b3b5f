import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { GatehouseApp } from '../../src/http/build-app.js';
import { buildTestApp, captureLogs, widgetSchema } from './build-test-app.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids', () => {
  let app: GatehouseApp;
  const logs = captureLogs();
  beforeAll(async () => {
    app = await buildTestApp({ logger: { level: 'info', stream: logs.stream } });
  });
  afterAll(() => app.close());

  it('echoes a usable X-Request-ID and puts it in every log line of the request', async () => {
    const res = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'req-42 from gateway' } });
    expect(res.headers['x-request-id']).toBe('req-42 from gateway');
    const lines = logs.lines.filter((l) => l.requestId === 'req-42 from gateway');
    expect(lines.map((l) => l.msg)).toEqual(['incoming request', 'request completed']);
  });

  it('generates a UUID when the header is absent', async () => {
    const res = await app.inject({ url: '/healthz' });
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it.each([
    { name: 'exactly 200 characters', id: 'a'.repeat(200), echoed: true },
    { name: 'longer than 200 characters', id: 'a'.repeat(201), echoed: false },
    { name: 'non-ASCII', id: 'café', echoed: false },
    { name: 'a control character', id: 'abc\tdef', echoed: false },
  ])('$name: echoed is $echoed', async ({ id, echoed }) => {
    const res = await app.inject({ url: '/healthz', headers: { 'x-request-id': id } });
    if (echoed) expect(res.headers['x-request-id']).toBe(id);
    else expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('is on error responses too, header and body alike', async () => {
    const res = await app.inject({ url: '/nowhere', headers: { 'x-request-id': 'lost-1' } });
    expect(res.headers['x-request-id']).toBe('lost-1');
    expect(res.json()).toMatchObject({ requestId: 'lost-1' });
  });
});

describe('/healthz and /readyz', () => {
  let app: GatehouseApp | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('/healthz answers 200 {status:"ok"}', async () => {
    app = await buildTestApp({
      ready: () => {
        throw new Error('not yet');
      },
    });
    const res = await app.inject({ url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it.each([
    { name: 'without a ready check', ready: undefined },
    { name: 'when ready() returns', ready: () => undefined },
    { name: 'when ready() resolves', ready: async () => undefined },
  ])('/readyz answers 200 {status:"ready"} $name', async ({ ready }) => {
    app = await buildTestApp(ready ? { ready } : {});
    const res = await app.inject({ url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready' });
  });

  it.each([
    {
      name: 'throws',
      ready: () => {
        throw new Error('database is down: secret');
      },
    },
    { name: 'rejects', ready: () => Promise.reject(new Error('database is down: secret')) },
  ])('/readyz answers 503 server.not_ready when ready() $name, without the reason', async ({ ready }) => {
    const logs = captureLogs();
    app = await buildTestApp({ ready, logger: { level: 'info', stream: logs.stream } });
    const res = await app.inject({ url: '/readyz', headers: { 'x-request-id': 'probe-1' } });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.json()).toEqual({
      type: 'https://gatehouse.dev/problems/server.not_ready',
      title: 'Service Unavailable',
      status: 503,
      detail: 'the server is not ready to serve requests',
      code: 'server.not_ready',
      instance: '/readyz',
      requestId: 'probe-1',
    });
    const logged = logs.lines.find((l) => l.requestId === 'probe-1' && l.level === 40);
    expect(logged).toMatchObject({ code: 'server.not_ready', err: { message: 'database is down: secret' } });
  });
});

describe('/metrics', () => {
  let app: GatehouseApp;
  beforeAll(async () => {
    app = await buildTestApp();
  });
  afterAll(() => app.close());

  const scrape = async () => (await app.inject({ url: '/metrics' })).body;

  it('answers the Prometheus text format with the process metrics', async () => {
    const res = await app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.body).toContain('# TYPE process_cpu_seconds_total counter');
    expect(res.body).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');
    expect(res.body).toContain('# TYPE gatehouse_http_requests_total counter');
    expect(res.body).toContain('# TYPE gatehouse_http_request_duration_seconds histogram');
    expect(res.body).toContain('# TYPE gatehouse_decisions_total counter');
    expect(res.body).toContain('# TYPE gatehouse_store_errors_total counter');
  });

  it('counts requests by route pattern, not by URL, and times them', async () => {
    await app.inject({ url: '/healthz' });
    await app.inject({ url: '/healthz' });
    await app.inject({ url: '/test/widgets/1' });
    await app.inject({ url: '/test/widgets/2' });
    await app.inject({ url: '/test/widgets/x' });
    await app.inject({ url: '/no/such/thing' });
    const text = await scrape();
    expect(text).toContain('gatehouse_http_requests_total{method="GET",route="/healthz",status="200"} 2');
    expect(text).toContain('gatehouse_http_requests_total{method="GET",route="/test/widgets/:id",status="200"} 2');
    expect(text).toContain('gatehouse_http_requests_total{method="GET",route="/test/widgets/:id",status="400"} 1');
    expect(text).toContain('gatehouse_http_requests_total{method="GET",route="(unmatched)",status="404"} 1');
    expect(text).toContain('gatehouse_http_request_duration_seconds_count{method="GET",route="/healthz"} 2');
    expect(text).toContain('gatehouse_http_request_duration_seconds_count{method="GET",route="/test/widgets/:id"} 3');
    expect(text).not.toContain('/test/widgets/1');
    expect(text).not.toContain('/no/such/thing');

    await app.inject({ url: '/healthz' });
    expect(await scrape()).toContain('gatehouse_http_requests_total{method="GET",route="/healthz",status="200"} 3');
  });

  it('counts decisions and store errors through app.metrics', async () => {
    app.metrics.countDecision('library', true);
    app.metrics.countDecision('library', true);
    app.metrics.countDecision('library', false);
    app.metrics.countStoreError('createRole');
    const text = await scrape();
    expect(text).toContain('gatehouse_decisions_total{domain="library",decision="allow"} 2');
    expect(text).toContain('gatehouse_decisions_total{domain="library",decision="deny"} 1');
    expect(text).toContain('gatehouse_store_errors_total{operation="createRole"} 1');
  });

  it('keeps a registry per app', async () => {
    const other = await buildTestApp();
    try {
      expect(other.metrics.registry).not.toBe(app.metrics.registry);
      expect((await other.inject({ url: '/metrics' })).body).not.toContain('gatehouse_decisions_total{');
    } finally {
      await other.close();
    }
  });
});

describe('OpenAPI document and reference', () => {
  let app: GatehouseApp;
  beforeAll(async () => {
    app = await buildTestApp();
  });
  afterAll(() => app.close());

  it('/v1/openapi.json is an OpenAPI 3.1 document generated from the route schemas', async () => {
    const res = await app.inject({ url: '/v1/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const doc = res.json() as {
      openapi: string;
      info: { title: string; version: string };
      servers: { url: string }[];
      paths: Record<string, Record<string, { responses: Record<string, { description?: string }> }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'Gatehouse API', version: '0.1.0' });
    expect(doc.servers).toEqual([{ url: 'http://127.0.0.1:8740' }]);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/healthz',
      '/metrics',
      '/readyz',
      '/test/boom',
      '/test/widgets',
      '/test/widgets/{id}',
    ]);

    // OpenAPI 3.1 §4.8.10 and §4.8.17: every operation has responses, every response a description.
    for (const operations of Object.values(doc.paths)) {
      for (const operation of Object.values(operations)) {
        expect(Object.keys(operation.responses).length).toBeGreaterThan(0);
        for (const response of Object.values(operation.responses)) expect(typeof response.description).toBe('string');
      }
    }

    const post = doc.paths['/test/widgets']!.post as unknown as {
      requestBody: { required: boolean; content: Record<string, { schema: unknown }> };
      responses: Record<string, { content: Record<string, { schema: { title?: string } }> }>;
    };
    expect(post.requestBody).toEqual({
      required: true,
      content: { 'application/json': { schema: JSON.parse(JSON.stringify(widgetSchema)) } },
    });
    expect(Object.keys(post.responses).sort()).toEqual(['201', '400', '413', '415']);
    expect(post.responses['400']!.content['application/problem+json']!.schema.title).toBe('Problem');
    expect(doc.paths['/test/widgets/{id}']!.get).toMatchObject({
      parameters: expect.arrayContaining([
        expect.objectContaining({ in: 'path', name: 'id', required: true }),
        expect.objectContaining({ in: 'query', name: 'verbose', required: false }),
      ]),
    });
  });

  it('/docs renders the reference from assets served locally', async () => {
    const res = await app.inject({ url: '/docs' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<div id="swagger-ui"></div>');
    const assets = [...res.body.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      expect(asset.startsWith('/docs/static/')).toBe(true);
      expect((await app.inject({ url: asset })).statusCode).toBe(200);
    }
    const spec = await app.inject({ url: '/docs/json' });
    expect(spec.json()).toEqual((await app.inject({ url: '/v1/openapi.json' })).json());
  });
});

describe('schemas', () => {
  it('resolve shared schemas (app.addSchema) with the same rules: no coercion, no unknown fields', async () => {
    const app = await buildTestApp({
      register(a) {
        a.addSchema({
          $id: 'Counter',
          type: 'object',
          properties: { n: { type: 'integer' } },
          required: ['n'],
          additionalProperties: false,
        });
        a.post('/test/counters', { schema: { body: { $ref: 'Counter#' } } }, async (request) => request.body);
      },
    });
    try {
      const ok = await app.inject({ method: 'POST', url: '/test/counters', payload: { n: 1 } });
      expect(ok.json()).toEqual({ n: 1 });
      const bad = await app.inject({ method: 'POST', url: '/test/counters', payload: { n: '1', m: 2 } });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().errors).toEqual([
        { pointer: '/body/m', code: 'field.unknown', message: 'is not a known field' },
        { pointer: '/body/n', code: 'field.type', message: 'must be integer' },
      ]);
    } finally {
      await app.close();
    }
  });
});
