import { EventEmitter } from 'node:events';
import { request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { GatehouseApp } from '../../src/http/build-app.js';
import { installGracefulShutdown } from '../../src/http/shutdown.js';
import { buildTestApp } from './build-test-app.js';

/** A promise and the functions that settle it. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** GET over a fresh connection (no keep-alive pool); resolves with status and body. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a TCP connection; resolves 'connected' or the error code. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

describe('installGracefulShutdown', () => {
  let app: GatehouseApp | undefined;
  afterEach(async () => {
    vi.useRealTimers();
    await app?.close();
    app = undefined;
  });

  it('on SIGTERM refuses new connections, finishes the request in flight, runs onClose, exits 0', async () => {
    const entered = deferred();
    const release = deferred();
    const events: string[] = [];
    app = await buildTestApp({
      register(a) {
        a.get('/slow', async () => {
          entered.resolve();
          await release.promise;
          events.push('handler done');
          return { done: true };
        });
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const signals = new EventEmitter();
    const exited = deferred<number>();
    installGracefulShutdown(app, {
      emitter: signals,
      exit: (code) => {
        events.push(`exit ${code}`);
        exited.resolve(code);
      },
      onClose: () => {
        events.push('onClose');
      },
    });

    const inFlight = get(port, '/slow');
    await entered.promise;
    signals.emit('SIGTERM');

    await vi.waitFor(() => expect(app!.server.listening).toBe(false));
    expect(await tryConnect(port)).toBe('ECONNREFUSED');
    expect(events).toEqual([]);

    release.resolve();
    expect(await inFlight).toEqual({ status: 200, body: '{"done":true}' });
    expect(await exited.promise).toBe(0);
    // The database closes only after the last response has been written.
    expect(events).toEqual(['handler done', 'onClose', 'exit 0']);
  });

  it('exits 1 when shutting down takes longer than timeoutMs', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    app = await buildTestApp();
    const signals = new EventEmitter();
    const exit = vi.fn();
    installGracefulShutdown(app, {
      emitter: signals,
      exit,
      timeoutMs: 5000,
      onClose: () => new Promise<void>(() => {}), // a database that never closes
    });
    signals.emit('SIGINT');
    await vi.advanceTimersByTimeAsync(4999);
    expect(exit).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(exit.mock.calls).toEqual([[1]]);
  });

  it('exits 1 when onClose fails, and at once on a second signal', async () => {
    const failing = await buildTestApp();
    const signals = new EventEmitter();
    const exit = vi.fn();
    const { shutdown } = installGracefulShutdown(failing, {
      emitter: signals,
      exit,
      onClose: () => Promise.reject(new Error('cannot close the database')),
    });
    await shutdown('test');
    expect(exit.mock.calls).toEqual([[1]]);

    app = await buildTestApp();
    const otherSignals = new EventEmitter();
    const exitAgain = vi.fn();
    const hanging = deferred();
    installGracefulShutdown(app, { emitter: otherSignals, exit: exitAgain, onClose: () => hanging.promise });
    otherSignals.emit('SIGTERM');
    otherSignals.emit('SIGINT');
    expect(exitAgain.mock.calls).toEqual([[1]]);
    hanging.resolve();
  });

  it('listens only for the given signals until uninstalled', async () => {
    app = await buildTestApp();
    const signals = new EventEmitter();
    const { uninstall } = installGracefulShutdown(app, { emitter: signals, signals: ['SIGHUP'], exit: vi.fn() });
    expect(signals.listenerCount('SIGHUP')).toBe(1);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
    uninstall();
    expect(signals.listenerCount('SIGHUP')).toBe(0);
  });
});
