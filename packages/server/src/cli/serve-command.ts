import { installGracefulShutdown } from '../http/shutdown.js';
import { createGatehouse } from '../runtime/create-gatehouse.js';
import { CommandError, configFromEnv, type CommandOutput } from './run-operator-command.js';

/** `gatehouse serve`: starts the node and serves until SIGTERM or SIGINT (graceful shutdown). */
export async function runServe(output: CommandOutput): Promise<void> {
  const config = configFromEnv();
  const started = Date.now();
  const gh = await createGatehouse(config);
  try {
    await gh.app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await gh.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new CommandError(
        `cannot listen on ${config.host}:${config.port}: the port is in use (set GATEHOUSE_PORT to another one)`,
      );
    }
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') {
      throw new CommandError(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
    }
    throw err;
  }
  installGracefulShutdown(gh.app, { onClose: () => gh.store.close() });
  output.err(
    `Gatehouse is listening on ${config.publicUrl} (ready in ${Date.now() - started} ms; API reference at ${config.publicUrl}/docs)`,
  );
}
