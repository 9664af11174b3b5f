import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatehouseApp } from '../../src/http/build-app.js';
import { buildTestApp } from './build-test-app.js';

let app: GatehouseApp;
let port: number;
beforeAll(async () => {
  app = await buildTestApp();
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as { port: number }).port;
});
afterAll(async () => {
  await app.close();
});

function raw(bytes: Buffer, closeEarly = false): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.write(bytes);
    if (closeEarly) socket.destroy();
  });
}

// Requests Node's HTTP parser refuses get a problem too, and never bring the process down.
describe('requests the HTTP parser refuses', () => {
  it('answers a byte outside the grammar with a 400 problem', async () => {
    const res = await raw(Buffer.from('GET /v1/domains/caf\xe9 HTTP/1.1\r\nhost: x\r\n\r\n', 'latin1'));
    expect(res).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(res).toContain('application/problem+json');
    expect(res).toContain('"code":"request.malformed"');
  });

  it('answers oversized headers with a 431 problem', async () => {
    const res = await raw(Buffer.from(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`));
    expect(res).toMatch(/^HTTP\/1\.1 431 /);
    expect(res).toContain('"code":"request.headers_too_large"');
  });

  it('survives clients that reset the connection mid-error, many times over', async () => {
    await Promise.all(
      Array.from({ length: 50 }, () =>
        raw(Buffer.from(`GET /x HTTP/1.1\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`), true),
      ),
    );
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
