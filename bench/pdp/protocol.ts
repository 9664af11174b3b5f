/** The messages between the decision benchmark (run.ts) and its server children, over IPC (the helpers are bench/shared's). */

import type { Usage } from '../shared/bench-tools.js';

export { send, serveParent, type ParentMessage, type Usage } from '../shared/bench-tools.js';

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

export type ChildMessage = GatehouseReady | HelloReady | Usage | { type: 'error'; message: string };
