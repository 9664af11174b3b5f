import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatehouseApp } from '../../src/http/build-app.js';
import type { ProblemDetails } from '../../src/http/problem.js';
import { buildTestApp, captureLogs } from './build-test-app.js';

// RFC 9457 §3: every error is application/problem+json with type, title, status, detail and
// instance; ours adds the stable `code`, the `requestId` and, for validation, `errors`.
function expectProblem(res: LightMyRequestResponse, expected: Omit<ProblemDetails, 'type' | 'requestId'>): void {
  const requestId = res.headers['x-request-id'];
  expect(typeof requestId).toBe('string');
  expect(res.statusCode).toBe(expected.status);
  expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
  expect(res.json()).toEqual({
    type: `https://gatehouse.dev/problems/${expected.code}`,
    ...expected,
    requestId,
  });
}

describe('problem+json error handler', () => {
  let app: GatehouseApp;
  const logs = captureLogs();
  beforeAll(async () => {
    app = await buildTestApp({ logger: { level: 'info', stream: logs.stream } });
  });
  afterAll(() => app.close());

  const post = (payload: unknown, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url: '/test/widgets',
      headers,
      ...(payload === undefined ? {} : { payload: payload as string }),
    });

  it('lets a valid body through untouched', async () => {
    const res = await post({ name: 'gear', size: 3 });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ name: 'gear', size: 3 });
  });

  it.each([
    {
      name: 'an unknown field (additionalProperties: false)',
      body: { name: 'gear', colour: 'red' },
      errors: [{ pointer: '/body/colour', code: 'field.unknown', message: 'is not a known field' }],
    },
    {
      name: 'a string over maxLength',
      body: { name: 'x'.repeat(11) },
      errors: [{ pointer: '/body/name', code: 'field.too_long', message: 'must NOT have more than 10 characters' }],
    },
    {
      name: 'a missing required field',
      body: { size: 2 },
      errors: [{ pointer: '/body/name', code: 'field.required', message: 'is required' }],
    },
    {
      name: 'a number sent as a string (bodies are never coerced)',
      body: { name: 'gear', size: '3' },
      errors: [{ pointer: '/body/size', code: 'field.type', message: 'must be integer' }],
    },
    {
      name: 'a number below its minimum',
      body: { name: 'gear', size: 0 },
      errors: [{ pointer: '/body/size', code: 'field.too_small', message: 'must be >= 1' }],
    },
    {
      name: 'an array instead of an object',
      body: [],
      errors: [{ pointer: '/body', code: 'field.type', message: 'must be object' }],
    },
    {
      name: 'a JSON null body',
      body: 'null',
      errors: [{ pointer: '/body', code: 'field.type', message: 'must be object' }],
    },
  ])('400 request.invalid for $name, with the pointer of the field', async ({ body, errors }) => {
    const res = await post(typeof body === 'string' ? body : JSON.stringify(body), {
      'content-type': 'application/json',
    });
    const [only] = errors;
    expectProblem(res, {
      title: 'Invalid request',
      status: 400,
      detail: `${only!.pointer} ${only!.message}`,
      code: 'request.invalid',
      instance: '/test/widgets',
      errors,
    });
  });

  it('lists every failing field, unknown ones included, with escaped pointers (RFC 6901)', async () => {
    const res = await post({ 'a/b~c': 1, extra: true, name: '', size: 1.5 });
    expectProblem(res, {
      title: 'Invalid request',
      status: 400,
      detail: 'the request has 4 invalid fields; see errors',
      code: 'request.invalid',
      instance: '/test/widgets',
      errors: [
        { pointer: '/body/a~1b~0c', code: 'field.unknown', message: 'is not a known field' },
        { pointer: '/body/extra', code: 'field.unknown', message: 'is not a known field' },
        { pointer: '/body/name', code: 'field.too_short', message: 'must NOT have fewer than 1 characters' },
        { pointer: '/body/size', code: 'field.type', message: 'must be integer' },
      ],
    });
  });

  it('coerces path parameters and query strings, and points into them when they are wrong', async () => {
    const ok = await app.inject({ url: '/test/widgets/7?verbose=true' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ id: 7, verbose: true });

    expectProblem(await app.inject({ url: '/test/widgets/seven' }), {
      title: 'Invalid request',
      status: 400,
      detail: '/params/id must be integer',
      code: 'request.invalid',
      instance: '/test/widgets/seven',
      errors: [{ pointer: '/params/id', code: 'field.type', message: 'must be integer' }],
    });
    expectProblem(await app.inject({ url: '/test/widgets/7?verbose=perhaps&debug=1' }), {
      title: 'Invalid request',
      status: 400,
      detail: 'the request has 2 invalid fields; see errors',
      code: 'request.invalid',
      instance: '/test/widgets/7?verbose=perhaps&debug=1',
      errors: [
        { pointer: '/query/debug', code: 'field.unknown', message: 'is not a known field' },
        { pointer: '/query/verbose', code: 'field.type', message: 'must be boolean' },
      ],
    });
  });

  it('400 request.malformed_json for a body that is not JSON', async () => {
    expectProblem(await post('{"name": "gear"', { 'content-type': 'application/json' }), {
      title: 'Malformed JSON',
      status: 400,
      detail: 'the request body is not valid JSON',
      code: 'request.malformed_json',
      instance: '/test/widgets',
    });
  });

  it('400 request.malformed_json for prototype poisoning', async () => {
    expectProblem(
      await post('{"name": "gear", "__proto__": {"admin": true}}', { 'content-type': 'application/json' }),
      {
        title: 'Malformed JSON',
        status: 400,
        detail: 'the request body is not valid JSON',
        code: 'request.malformed_json',
        instance: '/test/widgets',
      },
    );
  });

  it.each<{ name: string; payload: string | undefined; headers: Record<string, string> }>([
    { name: 'an empty body declared as JSON', payload: '', headers: { 'content-type': 'application/json' } },
    { name: 'no body at all', payload: undefined, headers: {} },
  ])('400 request.empty_body for $name', async ({ payload, headers }) => {
    expectProblem(await post(payload, headers), {
      title: 'Empty request body',
      status: 400,
      detail: 'the request body is empty; this endpoint expects a JSON body',
      code: 'request.empty_body',
      instance: '/test/widgets',
    });
  });

  it('413 request.too_large, naming the limit, for a body over GATEHOUSE_BODY_LIMIT_BYTES', async () => {
    expectProblem(await post({ name: 'x'.repeat(2000) }), {
      title: 'Request body too large',
      status: 413,
      detail: 'the request body is larger than the limit of 1024 bytes',
      code: 'request.too_large',
      instance: '/test/widgets',
    });
  });

  it.each([
    { type: 'text/plain', payload: 'gear' },
    { type: 'application/x-www-form-urlencoded', payload: 'name=gear' },
    { type: 'application/xml', payload: '<widget name="gear"/>' },
  ])('415 request.unsupported_media_type for $type', async ({ type, payload }) => {
    expectProblem(await post(payload, { 'content-type': type }), {
      title: 'Unsupported media type',
      status: 415,
      detail: `content type "${type}" is not supported; send application/json`,
      code: 'request.unsupported_media_type',
      instance: '/test/widgets',
    });
  });

  it('404 route.not_found for an unknown route', async () => {
    expectProblem(await app.inject({ url: '/v1/nothing/here?x=1' }), {
      title: 'Not Found',
      status: 404,
      detail: 'no route matches GET /v1/nothing/here',
      code: 'route.not_found',
      instance: '/v1/nothing/here?x=1',
    });
  });

  it('405 route.method_not_allowed with Allow when the path exists for other methods (RFC 9110 §15.5.6)', async () => {
    const res = await app.inject({ method: 'DELETE', url: '/test/widgets' });
    expect(res.headers.allow).toBe('POST');
    expectProblem(res, {
      title: 'Method Not Allowed',
      status: 405,
      detail: 'DELETE is not allowed on /test/widgets; allowed: POST',
      code: 'route.method_not_allowed',
      instance: '/test/widgets',
    });
    expect((await app.inject({ method: 'PUT', url: '/healthz' })).headers.allow).toBe('GET, HEAD');
  });

  it('400 request.invalid_url for bad percent-encoding, request id included', async () => {
    const res = await app.inject({ url: '/test/widgets/%zz', headers: { 'x-request-id': 'bad-url-1' } });
    expect(res.headers['x-request-id']).toBe('bad-url-1');
    expectProblem(res, {
      title: 'Bad Request',
      status: 400,
      detail: 'the request URL is not valid (bad percent-encoding?)',
      code: 'request.invalid_url',
      instance: '/test/widgets/%zz',
    });
  });

  it('renders a ProblemError thrown by a handler as it is', async () => {
    expectProblem(await app.inject({ url: '/test/widgets/404' }), {
      title: 'Not Found',
      status: 404,
      detail: 'widget 404 does not exist',
      code: 'widget.not_found',
      instance: '/test/widgets/404',
    });
  });

  it('500 internal with a generic body for unexpected errors; the cause is logged with the request id', async () => {
    const res = await app.inject({ url: '/test/boom', headers: { 'x-request-id': 'boom-1' } });
    expectProblem(res, {
      title: 'Internal Server Error',
      status: 500,
      detail: 'an unexpected error occurred; the request id identifies it in the server log',
      code: 'internal',
      instance: '/test/boom',
    });
    expect(res.body).not.toMatch(/hunter2|connection reset|\n\s+at |\.ts/);
    const logged = logs.lines.find((l) => l.requestId === 'boom-1' && l.level === 50);
    expect(logged).toMatchObject({ msg: 'unexpected error: internal', err: { type: 'Error' } });
    const err = logged!.err as { message: string; stack: string };
    expect(err.message).toContain('password=hunter2');
    expect(err.message).toContain('connection reset');
    expect(err.stack).toContain('build-test-app.ts');
  });
});
