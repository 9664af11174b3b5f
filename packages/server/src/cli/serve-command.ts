import { installGracefulShutdown } from '../http/shutdown.js';
import { createGatehouse } from '../runtime/create-gatehouse.js';
import { configFromEnv, type CommandOutput } from './run-operator-command.js';

/** `gatehouse serve`: starts the node and serves until SIGTERM or SIGINT (graceful shutdown). */
export async function runServe(output: CommandOutput): Promise<void> {
  const config = configFromEnv();
  const started = Date.now();
  const gh = await createGatehouse(config);
  await gh.app.listen({ port: config.port, host: config.host });
  installGracefulShutdown(gh.app, { onClose: () => gh.store.close() });
  output.err(
    `Gatehouse is listening on ${config.publicUrl} (ready in ${Date.now() - started} ms; API reference at ${config.publicUrl}/docs)`,
  );
}
