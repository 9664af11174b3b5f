/**
 * Wires one Gatehouse node: the database (migrated), the store, the reserved domains, the keys,
 * the decision catalog and directory, the HTTP app with the management API, the AuthZEN
 * decision API and the OpenID Connect provider at `/oidc`, and — on PostgreSQL — the change
 * listener that keeps the catalog and directory current with other nodes' writes
 * (docs/scale-out.md). `close()` releases it all.
 */

import type { ServerConfig } from '../config/load-config.js';
import { CatalogHolder } from '../catalog/catalog-holder.js';
import { AuditPoller } from '../catalog/audit-poller.js';
import {
  ChangeApplier,
  reloadEverything,
  startChangeListener,
  storeChangeSource,
  type ChangeListener,
} from '../catalog/change-listener.js';
import { Directory } from '../catalog/directory.js';
import { buildApp, type BuildAppOptions, type GatehouseApp } from '../http/build-app.js';
import { authenticateBearer } from '../http/authenticate-bearer.js';
import { AccessTokenVerifier } from '../keys/access-tokens.js';
import { KeyService } from '../keys/key-service.js';
import { BundleService } from '../bundles/bundle-service.js';
import { registerManagementRoutes } from '../management/management-routes.js';
import { ManagementService } from '../management/management-service.js';
import { registerPdpRoutes } from '../pdp/pdp-routes.js';
import { PdpService } from '../pdp/pdp-service.js';
import { ApiStore } from '../storage/api-store.js';
import { ClientStore } from '../storage/client-store.js';
import type { OidcProviderHolder } from '../oidc/create-oidc-provider.js';
import { loadOidcProvider } from '../oidc/load-oidc-provider.js';
import { registerOidc } from '../oidc/oidc-routes.js';
import { openDatabase } from '../storage/open-database.js';
import { ResourceStore } from '../storage/resource-store.js';
import { OWASP_ARGON2ID, SecretHasher } from '../storage/secret-hasher.js';
import { ServiceStore } from '../storage/service-store.js';
import { Store } from '../storage/store.js';
import { UserStore } from '../storage/user-store.js';
import { ensureReservedDomains } from './ensure-reserved-domains.js';

/** A running node's parts. */
export interface Gatehouse {
  readonly config: ServerConfig;
  readonly app: GatehouseApp;
  readonly store: Store;
  readonly keys: KeyService;
  readonly catalog: CatalogHolder;
  /** Users' lookup keys and service principals, in memory: subjects are found without SQL. */
  readonly directory: Directory;
  /**
   * On PostgreSQL, the session following other nodes' changes (stopped by `close()`);
   * undefined on SQLite, where a node is alone with its file.
   */
  readonly changeListener: ChangeListener | undefined;
  readonly management: ManagementService;
  /** The issuer of this node's tokens: `{PUBLIC_URL}/oidc`. */
  readonly issuer: string;
  /** The audience of management API tokens: `{PUBLIC_URL}/v1`. */
  readonly managementAudience: string;
  /** The audience of decision API tokens: `{PUBLIC_URL}/pdp` (management tokens are accepted too). */
  readonly pdpAudience: string;
  /** The AuthZEN decision service behind `/pdp/<domain>`. */
  readonly pdp: PdpService;
  /** The OpenID Connect provider mounted at `/oidc` (docs/oidc.md). */
  readonly oidc: OidcProviderHolder;
  /**
   * Reloads the catalog and the directory whole from the database, in one snapshot: for writes
   * made to the database behind this node's back (operator commands on a SQLite file, tests).
   */
  reload(): Promise<void>;
  /** Closes the app, the change listener and the database. */
  close(): Promise<void>;
}

/** Options of createGatehouse. */
export interface CreateGatehouseOptions {
  logger?: BuildAppOptions['logger'];
  clock?: () => Date;
  /**
   * Hashes passwords and client/service secrets (default: argon2id at OWASP_ARGON2ID). Tests
   * pass a cheap one; production never should.
   */
  hasher?: SecretHasher;
  /**
   * SQLite: how often the audit trail is read for writes made by other processes (default 1 s);
   * 0 never reads it (tests that write behind the node's back on purpose).
   */
  auditPollIntervalMs?: number;
}

/** Builds a node from its configuration; nothing listens until `app.listen`. */
export async function createGatehouse(config: ServerConfig, options: CreateGatehouseOptions = {}): Promise<Gatehouse> {
  const clock = options.clock ?? (() => new Date());
  // Importing oidc-provider takes a few hundred milliseconds: overlap it with opening the database.
  void loadOidcProvider().catch(() => undefined);
  // The app's logger exists only once the app is built; a lost connection before that is not logged.
  let log: Pick<GatehouseApp['log'], 'warn'> | undefined;
  const database = await openDatabase(config.database, {
    onIdleConnectionError: (err) =>
      log?.warn({ err }, 'database: an idle connection was lost; the next query opens a new one'),
  });
  try {
    const store = new Store(database, { clock });
    await ensureReservedDomains(store);
    const keys = new KeyService({
      db: database.db,
      masterKey: config.masterKey,
      clock,
      maxTokenTtlSeconds: Math.max(config.accessTokenTtlSeconds, config.bundleTtlSeconds),
    });
    await keys.ensureKeys({ actor: 'system' });
    // Loaded below, once the listener (if any) is listening: see startChangeListener.
    const catalog = new CatalogHolder();
    const directory = new Directory();
    const hasher = options.hasher ?? new SecretHasher(OWASP_ARGON2ID);
    // The app (and its metrics) is built after the service; decisions are counted once it is.
    let metrics: GatehouseApp['metrics'] | undefined = undefined;
    const management = new ManagementService(store, catalog, clock, {
      onDecision: (domain, allowed) => metrics?.countDecision(domain, allowed),
      users: new UserStore(store, { hasher }),
      services: new ServiceStore(store, { hasher }),
      clients: new ClientStore(store, { hasher }),
      apis: new ApiStore(store),
      resources: new ResourceStore(store),
      keys,
      bundles: new BundleService({ catalog, keys, ttlSeconds: config.bundleTtlSeconds, clock }),
      directory,
    });
    const issuer = `${config.publicUrl}/oidc`;
    const managementAudience = `${config.publicUrl}/v1`;
    const verifier = new AccessTokenVerifier({ keys, issuer, audience: managementAudience, clock });
    const authenticate = authenticateBearer(verifier);
    // Decision API tokens: the PDP audience, or a management token (whose holder may ask the
    // same questions through the management API's decisions anyway).
    const pdpAudience = `${config.publicUrl}/pdp`;
    const pdpVerifier = new AccessTokenVerifier({ keys, issuer, audience: [pdpAudience, managementAudience], clock });
    const pdp = new PdpService({
      catalog,
      directory,
      db: database.db,
      clock,
      onDecision: (domain, allowed, count) => metrics?.countDecision(domain, allowed, count),
    });
    let changeListener: ChangeListener | undefined;
    let auditPoller: AuditPoller | undefined;
    let oidc: OidcProviderHolder | undefined;
    const app = await buildApp({
      config,
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
      ready: () => store.ready(),
      register: async (a) => {
        registerManagementRoutes(a, management, authenticate);
        await registerPdpRoutes(a, pdp, authenticateBearer(pdpVerifier), config.publicUrl);
        oidc = await registerOidc(a, {
          db: database.db,
          keys,
          catalog,
          users: management.users,
          hasher,
          publicUrl: config.publicUrl,
          accessTokenTtlSeconds: config.accessTokenTtlSeconds,
          trustProxy: config.trustProxy,
          masterKey: config.masterKey,
          clock,
        });
        // However the app is closed (close() below, or the graceful shutdown of `gatehouse
        // serve`), the listener stops with it, before the database does.
        a.addHook('onClose', async () => {
          await changeListener?.stop();
          await auditPoller?.stop();
        });
      },
    });
    metrics = app.metrics;
    log = app.log;
    try {
      if (config.database.kind === 'postgres') {
        changeListener = await startChangeListener({
          url: config.database.url,
          db: database.db,
          catalog,
          directory,
          users: management.users,
          services: management.services,
          log: app.log,
        });
      } else {
        // One node per SQLite file, but operator commands (`gatehouse apply`…) may write to it
        // while the node runs: follow the audit trail (docs/scale-out.md).
        if (options.auditPollIntervalMs !== 0) {
          auditPoller = new AuditPoller({
            db: database.db,
            applier: new ChangeApplier({
              catalog,
              directory,
              source: storeChangeSource({
                db: database.db,
                catalog,
                directory,
                users: management.users,
                services: management.services,
                log: app.log,
              }),
              log: app.log,
            }),
            ...(options.auditPollIntervalMs !== undefined ? { intervalMs: options.auditPollIntervalMs } : {}),
            log: app.log,
          });
        }
        await auditPoller?.start();
        await reloadEverything(database.db, catalog, directory, app.log);
      }
    } catch (err) {
      await app.close();
      throw err;
    }
    let closed = false;
    return {
      config,
      app,
      store,
      keys,
      catalog,
      directory,
      changeListener,
      management,
      issuer,
      managementAudience,
      pdpAudience,
      pdp,
      oidc: oidc as OidcProviderHolder,
      reload: () => reloadEverything(database.db, catalog, directory, app.log),
      async close() {
        if (closed) return;
        closed = true;
        await app.close();
        await database.close();
      },
    };
  } catch (err) {
    await database.close();
    throw err;
  }
}
