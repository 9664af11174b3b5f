/**
 * The token benchmark's reference (started by run.ts): a bare oidc-provider 9 — its default
 * in-memory adapter, one static client (client_secret_basic, client_credentials only), resource
 * indicators with one resource server whose tokens are JWTs — signing with an Ed25519 key (EdDSA),
 * the key type of Gatehouse's default `token` keys, served by `node:http` with
 * `provider.callback()` on 127.0.0.1 at a free port. It is sent the very request Gatehouse is sent
 * (same client_id, scopes and resource); what differs is everything Gatehouse adds: its database,
 * argon2id secrets (cached), client and API lookups, policy-decided scopes and claims.
 *
 * oidc-provider is imported as packages/server/src/oidc/load-oidc-provider.ts does it, with its
 * Node.js 20 "Unsupported runtime" notice caught; its notice about the development-only in-memory
 * adapter (printed when the provider is built) is caught too: using that adapter is the point.
 */

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as OidcProviderModule from 'oidc-provider';
import { CLIENT_ID, GRANTED_SCOPE, RESOURCE, TOKEN_TTL_SECONDS } from './domain.js';
import { send, serveParent } from './protocol.js';

/** The notices caught (see the module comment); every other warning passes. */
const QUIET = ['oidc-provider WARNING: Unsupported runtime.', 'oidc-provider WARNING: a quick start development-only'];

/** Runs `f` with console.warn's known oidc-provider notices caught (as load-oidc-provider.ts does). */
async function quietly<T>(f: () => Promise<T> | T): Promise<T> {
  const original = console.warn;
  const filter = (...args: unknown[]): void => {
    const [first] = args;
    if (args.length === 1 && typeof first === 'string' && QUIET.some((q) => first.includes(q))) return;
    original.apply(console, args);
  };
  console.warn = filter;
  try {
    return await f();
  } finally {
    if (console.warn === filter) console.warn = original;
  }
}

function providerVersion(): string {
  const url = new URL('../package.json', import.meta.resolve('oidc-provider'));
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

async function main(): Promise<void> {
  const started = performance.now();
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  const { Provider, errors }: typeof OidcProviderModule = await quietly(() => import('oidc-provider'));

  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-1', alg: 'EdDSA', use: 'sig' };
  const secret = randomBytes(24).toString('base64url');

  const provider = await quietly(
    () =>
      new Provider(issuer, {
        clients: [
          {
            client_id: CLIENT_ID,
            client_secret: secret,
            grant_types: ['client_credentials'],
            response_types: [],
            redirect_uris: [],
            token_endpoint_auth_method: 'client_secret_basic',
          },
        ],
        jwks: { keys: [jwk] },
        cookies: { keys: [randomBytes(32).toString('base64url')] },
        clientDefaults: { id_token_signed_response_alg: 'EdDSA' },
        enabledJWA: {
          idTokenSigningAlgValues: ['EdDSA'],
          userinfoSigningAlgValues: ['EdDSA'],
          introspectionSigningAlgValues: ['EdDSA'],
          authorizationSigningAlgValues: ['EdDSA'],
        },
        features: {
          devInteractions: { enabled: false },
          clientCredentials: { enabled: true },
          resourceIndicators: {
            enabled: true,
            defaultResource: async () => RESOURCE,
            getResourceServerInfo: async (_ctx: unknown, resource: string) => {
              if (resource !== RESOURCE) throw new errors.InvalidTarget();
              // The scopes Gatehouse's policy grants the service: the request's third scope is
              // dropped (oidc-provider filters requested scopes by this list, without a word).
              return {
                scope: GRANTED_SCOPE,
                audience: RESOURCE,
                accessTokenFormat: 'jwt',
                accessTokenTTL: TOKEN_TTL_SECONDS,
                jwt: { sign: { alg: 'EdDSA' } },
              };
            },
          },
        },
        ttl: { ClientCredentials: TOKEN_TTL_SECONDS },
      }),
  );
  provider.on('server_error', (_ctx, err) => console.error('bare oidc-provider: server error', err));
  server.on('request', provider.callback());
  serveParent(
    () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  await send({
    type: 'ready',
    port,
    issuer,
    tokenPath: '/token',
    clientId: CLIENT_ID,
    clientSecret: secret,
    storage: 'memory',
    setupMs: performance.now() - started,
    providerVersion: providerVersion(),
  });
}

try {
  await main();
} catch (err) {
  await send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
}
