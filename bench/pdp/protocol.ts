/** The messages between the decision benchmark (run.ts) and its server children, over IPC. */

/** What the Gatehouse child reports once it listens. */
export interface GatehouseReady {
  type: 'ready';
  port: number;
  /** A decision API token for the PEP service (`access.check` on `<domain>:access`). */
  token: string;
  revision: number;
  /** Creating the node, applying the config and reloading the catalog. */
  setupMs: number;
  /** The catalog's assertions in the benchmark domain. */
  assertions: number;
}

/** What the node:http child reports once it listens. */
export interface HelloReady {
  type: 'ready';
  port: number;
}

/** The child's CPU time and memory so far (an answer to `usage`). */
export interface Usage {
  type: 'usage';
  /** process.cpuUsage(): user and system µs. */
  userUs: number;
  systemUs: number;
  rssMb: number;
}

export type ChildMessage = GatehouseReady | HelloReady | Usage | { type: 'error'; message: string };

/** `usage`: answer with a Usage; `stop`: close and exit (writing a --cpu-prof profile). */
export type ParentMessage = { type: 'usage' } | { type: 'stop' };

/** Answers `usage` and `stop` from the parent; exits when the parent goes away. */
export function serveParent(close: () => Promise<void>): void {
  const exit = async (): Promise<void> => {
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
