import { ConfigError, loadConfig, type ServerConfig } from '../config/load-config.js';
import { openDatabase, type OpenDatabase } from '../storage/open-database.js';
import { Store } from '../storage/store.js';

/** Where a command writes: standard output and standard error (injected by tests). */
export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
}

/** The process's own output. */
export const processOutput: CommandOutput = {
  out: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

/** Thrown by commands to end with a message and an exit code (not a stack trace). */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Reads the configuration from the environment; a bad variable is a CommandError (exit 2). */
export function configFromEnv(env: Record<string, string | undefined> = process.env): ServerConfig {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CommandError(err.message, 2);
    throw err;
  }
}

/**
 * Runs an operator-mode command against the database of the configuration (migrated first),
 * closing it afterwards whatever happens.
 */
export async function withStore<T>(
  config: ServerConfig,
  fn: (store: Store, database: OpenDatabase) => Promise<T>,
): Promise<T> {
  const database = await openDatabase(config.database);
  try {
    return await fn(new Store(database), database);
  } finally {
    await database.close();
  }
}
