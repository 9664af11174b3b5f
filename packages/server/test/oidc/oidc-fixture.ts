import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseConfigFile } from '@gatehouse/engine';
import { applyConfig } from '../../src/apply/apply-config.js';
import { CatalogHolder } from '../../src/catalog/catalog-holder.js';
import { loadConfig } from '../../src/config/load-config.js';
import { buildApp, type GatehouseApp } from '../../src/http/build-app.js';
import { KeyService, type SigningAlgorithm } from '../../src/keys/key-service.js';
import { ManagementService, OPERATOR } from '../../src/management/management-service.js';
import type { OidcProviderHolder } from '../../src/oidc/create-oidc-provider.js';
import { registerOidc, type RegisterOidcOptions } from '../../src/oidc/oidc-routes.js';
import { ensureReservedDomains } from '../../src/runtime/ensure-reserved-domains.js';
import { ApiStore } from '../../src/storage/api-store.js';
import { ClientStore } from '../../src/storage/client-store.js';
import { ResourceStore } from '../../src/storage/resource-store.js';
import type { SecretHasher } from '../../src/storage/secret-hasher.js';
import { ServiceStore } from '../../src/storage/service-store.js';
import { Store } from '../../src/storage/store.js';
import { UserStore } from '../../src/storage/user-store.js';
import { cheapHasher } from '../storage/store-fixtures.js';
import type { TestDatabase, TestDatabaseKind } from '../storage/test-databases.js';

/** A Gatehouse node with the token plane, listening on 127.0.0.1 (port chosen by the system). */
export interface OidcNode {
  /** `http://127.0.0.1:<port>`: GATEHOUSE_PUBLIC_URL. */
  readonly base: string;
  /** `{base}/oidc`. */
  readonly issuer: string;
  readonly app: GatehouseApp;
  readonly holder: OidcProviderHolder;
  readonly store: Store;
  readonly keys: KeyService;
  readonly catalog: CatalogHolder;
  readonly management: ManagementService;
  readonly database: TestDatabase;
  readonly hasher: SecretHasher;
  /** Applies a config file (YAML) as the operator and reloads the catalog. */
  apply(yaml: string): Promise<void>;
  close(): Promise<void>;
}

/** The operator, for management calls in tests. */
export const operator = { principal: OPERATOR };

/**
 * Builds a node the way createGatehouse does — store, reserved domains, keys, catalog, stores
 * with a cheap hasher, the HTTP app — plus `registerOidc` in the app's `register`, exactly as
 * createGatehouse is to call it; then serves it on a port chosen before the app is built (the
 * issuer must name it).
 */
export async function startOidcNode(
  kind: TestDatabaseKind,
  options: Partial<Omit<RegisterOidcOptions, 'db' | 'keys' | 'catalog' | 'users' | 'hasher'>> & {
    /** The algorithm of the node's keys (KeyService `alg`). */
    keyAlg?: SigningAlgorithm;
  } = {},
): Promise<OidcNode> {
  const { keyAlg, ...oidcOptions } = options;
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const config = loadConfig({ GATEHOUSE_PUBLIC_URL: base, GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS: '600' });
  const database = await kind.create();
  try {
    const clock = (): Date => new Date();
    const store = new Store(database.open, { clock });
    await ensureReservedDomains(store);
    const keys = new KeyService({
      db: database.open.db,
      clock,
      maxTokenTtlSeconds: config.accessTokenTtlSeconds,
      warn: () => undefined,
      ...(keyAlg !== undefined ? { alg: keyAlg } : {}),
    });
    await keys.ensureKeys({ actor: 'system' });
    const catalog = new CatalogHolder();
    const hasher = cheapHasher();
    const management = new ManagementService(store, catalog, clock, {
      users: new UserStore(store, { hasher }),
      services: new ServiceStore(store, { hasher }),
      clients: new ClientStore(store, { hasher }),
      apis: new ApiStore(store),
      resources: new ResourceStore(store),
      keys,
    });
    await catalog.reload(database.open.db);
    let holder: OidcProviderHolder | undefined;
    const app = await buildApp({
      config,
      logger: false,
      ready: () => store.ready(),
      register: async (a) => {
        holder = await registerOidc(a, {
          db: database.open.db,
          keys,
          catalog,
          users: management.users,
          hasher,
          publicUrl: config.publicUrl,
          accessTokenTtlSeconds: config.accessTokenTtlSeconds,
          trustProxy: config.trustProxy,
          masterKey: config.masterKey,
          clock,
          ...oidcOptions,
        });
      },
    });
    await app.ready();
    server.on('request', app.routing);
    return {
      base,
      issuer: `${base}/oidc`,
      app,
      holder: holder!,
      store,
      keys,
      catalog,
      management,
      database,
      hasher,
      async apply(yaml) {
        const parsed = parseConfigFile('oidc-test.yaml', yaml);
        if (parsed.issues.length > 0) throw new Error(parsed.issues.map((i) => `${i.line}: ${i.message}`).join('\n'));
        await applyConfig(store, parsed, { ctx: { actor: OPERATOR }, hasher });
        await catalog.reload(database.open.db);
      },
      async close() {
        server.closeAllConnections();
        server.close();
        await app.close();
        await database.dispose();
      },
    };
  } catch (err) {
    server.close();
    await database.dispose();
    throw err;
  }
}
