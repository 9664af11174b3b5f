import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { providerUrlsOf, startOidcPurge } from '../../src/oidc/oidc-routes.js';
import { TEST_DATABASE_KINDS } from '../storage/test-databases.js';
import { startOidcNode, type OidcNode } from './oidc-fixture.js';

describe('providerUrlsOf', () => {
  it.each([
    ['/oidc/token', '/oidc/token', '/token'],
    ['/oidc/auth?client_id=x&scope=openid', '/oidc/auth?client_id=x&scope=openid', '/auth?client_id=x&scope=openid'],
    ['/oidc', '/oidc', '/'],
    ['/oidc?x=1', '/oidc?x=1', '/?x=1'],
    // RFC 8414 §3.1: presented as the provider's own metadata route under the mount.
    [
      '/.well-known/oauth-authorization-server/oidc',
      '/oidc/.well-known/oauth-authorization-server',
      '/.well-known/oauth-authorization-server',
    ],
    [
      '/.well-known/oauth-authorization-server/oidc?a=b',
      '/oidc/.well-known/oauth-authorization-server?a=b',
      '/.well-known/oauth-authorization-server?a=b',
    ],
  ])('maps %s to originalUrl %s and url %s', (url, originalUrl, providerUrl) => {
    expect(providerUrlsOf(url)).toEqual([originalUrl, providerUrl]);
  });
});

describe('startOidcPurge', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('purges in bounded batches every interval, logs failures and stops', async () => {
    const results: (number | Error)[] = [1000, 1000, 12, new Error('database is gone'), 0];
    const purgeExpired = vi.fn(async (limit: number) => {
      expect(limit).toBe(1000);
      const next = results.shift() ?? 0;
      if (next instanceof Error) throw next;
      return next;
    });
    const warn = vi.fn();
    const purge = startOidcPurge({ purgeExpired }, 60_000, { warn });
    await vi.advanceTimersByTimeAsync(59_999);
    expect(purgeExpired).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    // A full batch means more may be waiting: the run goes on until a batch comes back short.
    expect(purgeExpired).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(purgeExpired).toHaveBeenCalledTimes(4);
    expect(warn).toHaveBeenCalledWith(
      { err: expect.any(Error) },
      expect.stringContaining('purging expired tokens failed'),
    );
    await purge.stop();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(purgeExpired).toHaveBeenCalledTimes(4);
  });
});

describe('loadOidcProvider', () => {
  afterEach(() => {
    vi.doUnmock('oidc-provider');
    vi.resetModules();
    vi.restoreAllMocks();
  });

  it('keeps oidc-provider’s Node.js runtime notice off the console and hands it back; other warnings pass', async () => {
    const notice = 'oidc-provider WARNING: Unsupported runtime. Use Node.js v22.x LTS, or a later LTS release.';
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    vi.resetModules();
    vi.doMock('oidc-provider', () => {
      // What lib/index.js does when it is evaluated on Node.js 20 (here in colour, as on a TTY).
      console.warn(`\x1b[31;1m${notice}\x1b[0m`);
      console.warn('something else', 42);
      return { Provider: class {} };
    });
    const { loadOidcProvider } = await import('../../src/oidc/load-oidc-provider.js');
    const loaded = await loadOidcProvider();
    expect(loaded.runtimeNotice).toBe(notice);
    expect(warn.mock.calls).toEqual([['something else', 42]]);
    expect(console.warn).toBe(warn);
    // Loaded once per process.
    expect(await loadOidcProvider()).toBe(loaded);
  });
});

describe.each(TEST_DATABASE_KINDS)('the token plane inside Fastify on $name', (kind) => {
  let node: OidcNode;
  beforeEach(async () => {
    node = await startOidcNode(kind);
  });
  afterEach(async () => {
    await node.close();
  });

  it('answers with the request id, and is counted in the metrics under its route', async () => {
    const res = await fetch(`${node.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'req-oidc-1' },
      body: 'grant_type=client_credentials&client_id=nobody&client_secret=nothing-at-all-0123',
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('x-request-id')).toBe('req-oidc-1');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const generated = await fetch(`${node.issuer}/jwks`);
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const metrics = await (await fetch(`${node.base}/metrics`)).text();
    expect(metrics).toContain('gatehouse_http_requests_total{method="POST",route="/oidc/token",status="401"} 1');
    expect(metrics).toContain('gatehouse_http_requests_total{method="GET",route="/oidc/jwks",status="200"} 1');
  });

  it('leaves request bodies to oidc-provider: its content types and its size limit, as OAuth errors', async () => {
    const json = await fetch(`${node.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'client_credentials' }),
    });
    expect(json.status).toBe(400);
    expect(await json.json()).toEqual({
      error: 'invalid_request',
      error_description: 'only application/x-www-form-urlencoded content-type bodies are supported on POST /token',
    });
    const huge = await fetch(`${node.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&scope=${'x'.repeat(64 * 1024)}`,
    });
    expect(huge.status).toBe(400);
    expect(await huge.json()).toMatchObject({
      error: 'invalid_request',
      error_description: 'failed to parse the request body',
    });
  });

  it('keeps the rest of the app as it was: the management routes still parse JSON', async () => {
    const res = await fetch(`${node.base}/healthz`);
    expect(await res.json()).toEqual({ status: 'ok' });
    const openapi = (await (await fetch(`${node.base}/v1/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(openapi.paths).filter((p) => p.startsWith('/oidc'))).toEqual([]);
  });
});
