/**
 * The messages between the token benchmark (run.ts) and its server children, over IPC (the
 * helpers are bench/shared's).
 */

import type { Usage } from '../shared/bench-tools.js';

export { send, serveParent, type ParentMessage, type Usage } from '../shared/bench-tools.js';

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

export type ChildMessage = ServerReady | Usage | { type: 'error'; message: string };
