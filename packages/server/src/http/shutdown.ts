/**
 * Graceful shutdown: on SIGTERM or SIGINT the server stops accepting connections, lets the requests
 * in flight finish (`app.close()`), runs `onClose` (closing the database), then exits 0 — or exits 1
 * when that takes longer than `timeoutMs`, fails, or a second signal arrives.
 */

import type { EventEmitter } from 'node:events';
import type { FastifyInstance } from 'fastify';

/** Options of installGracefulShutdown. */
export interface GracefulShutdownOptions {
  /** Signals that start the shutdown; default SIGTERM and SIGINT. */
  signals?: readonly NodeJS.Signals[];
  /** How long the shutdown may take before the process exits 1; default 10,000 ms. */
  timeoutMs?: number;
  /** Runs after the server has closed (every request answered), such as closing the database. */
  onClose?: () => Promise<void> | void;
  /** Ends the process; default `process.exit`. Injected by tests. */
  exit?: (code: number) => void;
  /** Where the signals come from; default `process`. Injected by tests. */
  emitter?: Pick<EventEmitter, 'on' | 'off'>;
}

/** An installed shutdown. */
export interface GracefulShutdown {
  /** Shuts down now, as a signal would; resolves once the process has been told to exit. */
  shutdown(reason: string): Promise<void>;
  /** Stops listening for the signals. */
  uninstall(): void;
}

/** Shuts `app` down gracefully when one of the signals arrives. */
export function installGracefulShutdown(app: FastifyInstance, options: GracefulShutdownOptions = {}): GracefulShutdown {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const timeoutMs = options.timeoutMs ?? 10_000;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const emitter = options.emitter ?? process;
  let started: Promise<void> | undefined;
  let exited = false;

  function exitOnce(code: number): void {
    if (exited) return;
    exited = true;
    exit(code);
  }

  async function run(reason: string): Promise<void> {
    app.log.info({ reason, timeoutMs }, 'shutting down: refusing new connections, finishing requests in flight');
    const timer = setTimeout(() => {
      app.log.error({ timeoutMs }, 'shutdown timed out; exiting');
      exitOnce(1);
    }, timeoutMs);
    try {
      await app.close();
      await options.onClose?.();
      app.log.info('shut down');
      exitOnce(0);
    } catch (err) {
      app.log.error({ err }, 'shutdown failed; exiting');
      exitOnce(1);
    } finally {
      clearTimeout(timer);
    }
  }

  function shutdown(reason: string): Promise<void> {
    started ??= run(reason);
    return started;
  }

  function onSignal(signal: NodeJS.Signals): void {
    if (started !== undefined) {
      // A second Ctrl-C means "now".
      app.log.warn({ signal }, 'second signal during shutdown; exiting');
      exitOnce(1);
      return;
    }
    void shutdown(signal);
  }

  const listeners = signals.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, listener] of listeners) emitter.on(signal, listener);
  return {
    shutdown,
    uninstall() {
      for (const [signal, listener] of listeners) emitter.off(signal, listener);
    },
  };
}
