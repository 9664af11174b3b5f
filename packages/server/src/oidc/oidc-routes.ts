/**
 * Mounts the token plane (oidc-provider, create-oidc-provider.ts) inside the Fastify app at
 * `/oidc`, and keeps its table tidy.
 *
 * The routes live in an encapsulated plugin without body parsers: oidc-provider reads and limits
 * request bodies itself (56 KiB, shared/selective_body.js), so Fastify must leave the stream
 * alone. Each request is handed to the current provider with the reply hijacked; Fastify's hooks
 * still run around it — the request id (its X-Request-ID header is copied onto the response),
 * request logging, and metrics, labelled by route pattern (`/oidc/token`, `/oidc/jwks`, …).
 * oidc-provider sees the path without the `/oidc` prefix and the full one in `req.originalUrl`,
 * from which it builds its endpoint URLs (helpers/oidc_context.js urlFor).
 *
 * Also served: `/.well-known/oauth-authorization-server/oidc`, where RFC 8414 §3.1 puts the
 * metadata of an issuer whose URL has a path (`{PUBLIC_URL}/oidc`); and, as Fastify routes of
 * their own beside the provider's catch-all, the login, consent and grants pages under
 * `/oidc/interaction/{uid}` and `/oidc/account/grants` (interaction-routes.ts).
 */

import type { IncomingMessage } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GatehouseApp } from '../http/build-app.js';
import type { OidcAdapterClass } from './database-adapter.js';
import { OidcProviderHolder, type OidcLogger, type OidcProviderParts } from './create-oidc-provider.js';
import { registerInteractionRoutes, type InteractionRoutesOptions } from './interaction-routes.js';

/** Where the token plane is mounted. */
export const OIDC_PREFIX = '/oidc';

/** RFC 8414 §3.1: the authorization server metadata of the issuer `{PUBLIC_URL}/oidc`. */
export const OAUTH_METADATA_PATH = `/.well-known/oauth-authorization-server${OIDC_PREFIX}`;

/**
 * The provider's routes (api.md §1), registered one by one so that metrics and logs name them;
 * everything else under the prefix goes through `/oidc/*`.
 */
export const OIDC_ROUTES: readonly string[] = [
  OIDC_PREFIX,
  `${OIDC_PREFIX}/*`,
  `${OIDC_PREFIX}/.well-known/openid-configuration`,
  `${OIDC_PREFIX}/.well-known/oauth-authorization-server`,
  `${OIDC_PREFIX}/auth`,
  `${OIDC_PREFIX}/token`,
  `${OIDC_PREFIX}/token/introspection`,
  `${OIDC_PREFIX}/token/revocation`,
  `${OIDC_PREFIX}/jwks`,
  `${OIDC_PREFIX}/me`,
  `${OIDC_PREFIX}/session/end`,
];

/** Default interval of the purge of expired oidc_payloads rows. */
export const DEFAULT_PURGE_INTERVAL_SECONDS = 60;

/** Rows deleted per statement by the purge, and statements per run at most. */
const PURGE_BATCH = 1000;
const PURGE_MAX_BATCHES = 20;

/** Options of registerOidc: the node's parts (OidcProviderParts, without the loggers). */
export interface RegisterOidcOptions extends Omit<OidcProviderParts, 'log' | 'logFor'> {
  /** How often expired tokens, codes, sessions… are deleted (default 60 s; 0 turns it off). */
  purgeIntervalSeconds?: number;
  /** Throttles of failed sign-ins (login-throttle.ts; defaults: 5 per account, 20 per address). */
  loginThrottle?: InteractionRoutesOptions['loginThrottle'];
}

/**
 * Adds the token plane to `app` (before it is ready): builds the provider (OidcProviderHolder),
 * registers the routes, and starts the purge timer, which stops when the app closes. Returns the
 * holder. Throws what OidcProviderHolder.create throws.
 */
export async function registerOidc(app: GatehouseApp, options: RegisterOidcOptions): Promise<OidcProviderHolder> {
  const requestLogs = new WeakMap<IncomingMessage, OidcLogger>();
  const { purgeIntervalSeconds = DEFAULT_PURGE_INTERVAL_SECONDS, loginThrottle, ...parts } = options;
  if (!Number.isFinite(purgeIntervalSeconds) || purgeIntervalSeconds < 0) {
    throw new RangeError('purgeIntervalSeconds must be a finite number ≥ 0');
  }
  const holder = await OidcProviderHolder.create({
    ...parts,
    log: app.log,
    logFor: (req) => requestLogs.get(req),
  });
  if (holder.runtimeNotice !== undefined) {
    // load-oidc-provider.ts: oidc-provider 9 asks for Node.js 22; Gatehouse runs it on ≥ 20.19.
    app.log.debug({ node: process.version }, holder.runtimeNotice);
  }
  await app.register(async (scope) => {
    // oidc-provider parses bodies itself: accept any content type and leave the stream unread.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    const forward = (request: FastifyRequest, reply: FastifyReply): Promise<void> =>
      forwardToProvider(holder, requestLogs, request, reply);
    for (const path of [...OIDC_ROUTES, OAUTH_METADATA_PATH]) {
      scope.all(path, { schema: { hide: true } }, forward);
    }
  });
  // More specific than `/oidc/*`, so the router picks them for their paths.
  await registerInteractionRoutes(app, {
    holder,
    users: parts.users,
    catalog: parts.catalog,
    clock: parts.clock ?? (() => new Date()),
    prefix: OIDC_PREFIX,
    ...(loginThrottle !== undefined ? { loginThrottle } : {}),
  });
  if (purgeIntervalSeconds > 0) {
    const purge = startOidcPurge(holder.Adapter, purgeIntervalSeconds * 1000, app.log);
    app.addHook('onClose', async () => {
      await purge.stop();
    });
  }
  return holder;
}

/** Hands the request to the current provider; the reply is oidc-provider's from then on. */
async function forwardToProvider(
  holder: OidcProviderHolder,
  requestLogs: WeakMap<IncomingMessage, OidcLogger>,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  // Before hijacking: a failure here is answered by Fastify's error handler (500 problem).
  const { handler } = await holder.current();
  const raw = request.raw as IncomingMessage & { originalUrl?: string };
  const url = raw.url ?? '/';
  const [originalUrl, providerUrl] = providerUrlsOf(url);
  reply.hijack();
  // Headers set by Fastify's hooks (X-Request-ID) live on the reply until it is sent; a
  // hijacked reply is never sent by Fastify, so they go onto the raw response now.
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) reply.raw.setHeader(name, value);
  }
  requestLogs.set(raw, request.log);
  raw.originalUrl = originalUrl;
  raw.url = providerUrl;
  try {
    await handler(raw, reply.raw);
  } finally {
    raw.url = url;
  }
}

/**
 * `[originalUrl, url]` for oidc-provider: the URL as mounted (`/oidc/token?…`) and relative to the
 * mount (`/token?…`). The RFC 8414 path is presented as the provider's own metadata route under
 * the mount, so that the endpoint URLs it lists carry the `/oidc` prefix.
 */
export function providerUrlsOf(url: string): [string, string] {
  if (url === OAUTH_METADATA_PATH || url.startsWith(`${OAUTH_METADATA_PATH}?`)) {
    const query = url.slice(OAUTH_METADATA_PATH.length);
    return [
      `${OIDC_PREFIX}/.well-known/oauth-authorization-server${query}`,
      `/.well-known/oauth-authorization-server${query}`,
    ];
  }
  const rest = url.slice(OIDC_PREFIX.length);
  return [url, rest.startsWith('/') ? rest : `/${rest}`];
}

/** A running purge: deletes expired oidc_payloads rows every interval. */
export interface OidcPurge {
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Every `intervalMs`, deletes expired rows through `Adapter.purgeExpired` in batches of 1,000,
 * at most 20 batches a run (one run at a time); failures are logged and retried next time. The
 * timer is unref'd: it never keeps the process alive.
 */
export function startOidcPurge(
  Adapter: Pick<OidcAdapterClass, 'purgeExpired'>,
  intervalMs: number,
  log: Pick<OidcLogger, 'warn'>,
): OidcPurge {
  let running: Promise<void> | undefined;
  const run = async (): Promise<void> => {
    try {
      // Bounded work per run: a backlog is worked off over several runs.
      for (let i = 0; i < PURGE_MAX_BATCHES; i++) {
        if ((await Adapter.purgeExpired(PURGE_BATCH)) < PURGE_BATCH) break;
      }
    } catch (err) {
      log.warn({ err }, 'oidc: purging expired tokens failed; will retry');
    }
  };
  const timer = setInterval(() => {
    running ??= run().finally(() => {
      running = undefined;
    });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
