/**
 * The messages between the token benchmark (run.ts) and its server children, over IPC. The
 * helpers are those of bench/pdp/protocol.ts (duplicated: the two benchmarks' messages differ).
 */

/** What a server child reports once it listens. */
export interface ServerReady {
  type: 'ready';
  port: number;
  /** The issuer its tokens name (`iss`). */
  issuer: string;
  /** The token endpoint's path (`/token` for the bare provider, `/oidc/token` for Gatehouse). */
  tokenPath: string;
  /** The client's credentials (client_secret_basic). */
  clientId: string;
  clientSecret: string;
  /** What the child runs on: `memory` (the bare provider), `sqlite` or `postgres`. */
  storage: 'memory' | 'sqlite' | 'postgres';
  /** Starting the server: for Gatehouse creating the node, applying the config, reloading the catalog. */
  setupMs: number;
  /** oidc-provider's version, as its package.json says. */
  providerVersion: string;
}

/** The child's CPU time and memory so far (an answer to `usage`). */
export interface Usage {
  type: 'usage';
  /** process.cpuUsage(): user and system µs. */
  userUs: number;
  systemUs: number;
  rssMb: number;
}

export type ChildMessage = ServerReady | Usage | { type: 'error'; message: string };

/** `usage`: answer with a Usage; `stop`: close and exit (writing a --cpu-prof profile). */
export type ParentMessage = { type: 'usage' } | { type: 'stop' };

/** Answers `usage` and `stop` from the parent; exits when the parent goes away. */
export function serveParent(close: () => Promise<void>): void {
  let exiting = false;
  const exit = async (): Promise<void> => {
    if (exiting) return;
    exiting = true;
    try {
      await close();
    } finally {
      // process.exit (not a kill) lets --cpu-prof write its profile.
      process.exit(0);
    }
  };
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'usage') {
      const cpu = process.cpuUsage();
      const answer: Usage = {
        type: 'usage',
        userUs: cpu.user,
        systemUs: cpu.system,
        rssMb: process.memoryUsage().rss / (1024 * 1024),
      };
      process.send?.(answer);
    } else if (m.type === 'stop') {
      void exit();
    }
  });
  process.on('disconnect', () => void exit());
}

/** Sends `message` to the parent and waits until it is handed over. */
export function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send) process.send(message, () => resolve());
    else {
      process.stdout.write(`${JSON.stringify(message)}\n`);
      resolve();
    }
  });
}
