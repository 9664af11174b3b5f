/**
 * The token plane: oidc-provider 9 configured from Gatehouse's parts (architecture.md "The three
 * planes"; docs/oidc.md). One `OidcProviderHolder` per node holds the current `Provider` and
 * rebuilds it when the signing keys change.
 *
 * What Gatehouse supplies, and where:
 * - storage: the database adapter (oidc_payloads) for every model but `Client`, whose adapter
 *   reads our `clients` and `services` tables (oidc-clients.ts);
 * - client secrets: argon2id hashes, compared by ClientSecretCache (replaces
 *   Client.prototype.compareClientSecret);
 * - keys: the KeyService's `token` keys as ExternalSigningKeys (signing-keys.ts): private keys stay
 *   in the KeyService; the current one signs, retired ones stay in `/oidc/jwks` until they expire;
 * - resource servers (RFC 8707): our APIs and the server's own audiences; which requested scopes
 *   each principal gets is a policy decision (token-claims.ts), made again at every token request;
 * - token claims: `domain`, `roles`, `groups`, `permissions`, with `exp` capped by the memberships
 *   they carry; grant-bound JWT access tokens are recorded, client-credentials ones checked
 *   against a revocation list (jwt-access-tokens.ts), so that introspection, revocation and
 *   userinfo accept them;
 * - accounts: our users; ID token and userinfo claims `sub name email email_verified` by scope plus
 *   `org_id`, `roles`, `features`;
 * - grants: remembered per account and client, granted without consent to first-party clients,
 *   with what policy denies recorded as rejected (remembered-grants.ts); the login and consent
 *   pages that make them are interaction-routes.ts;
 * - refresh tokens to every client allowed the refresh_token grant (bound to the session unless
 *   offline_access was granted), rotated at every use;
 * - `scope_rejected` in token responses (post-processing middleware).
 *
 * Time: oidc-provider reads the system clock itself (helpers/epoch_time.js). `clock` drives our
 * parts (policy decisions, record expiry, the key checks); in production both are the system
 * clock, and tests that need time to pass must move the system's (they do not).
 */

import type { IncomingMessage } from 'node:http';
import type { Catalog } from '@gatehouse/engine';
import type { Kysely } from 'kysely';
import type {
  Account,
  Adapter,
  BaseToken,
  Client,
  Configuration,
  JsonObject,
  KoaContextWithOIDC,
  Middleware,
  Provider,
  ResourceServerInfo,
} from 'oidc-provider';
import type { CatalogHolder } from '../catalog/catalog-holder.js';
import type { KeyService } from '../keys/key-service.js';
import { NotFoundError } from '../storage/errors.js';
import type { Database } from '../storage/schema.js';
import type { SecretHasher } from '../storage/secret-hasher.js';
import type { UserRecord } from '../storage/user-store.js';
import { ClientSecretCache } from './client-secret-cache.js';
import { loadCookieKeys } from './cookie-keys.js';
import { createDatabaseAdapter, type OidcAdapterClass } from './database-adapter.js';
import {
  findJwtToken,
  jwtIntrospectionAndRevocation,
  JwtAccessTokenStore,
  looksLikeJws,
  markRefusedJwt,
  oidcOf,
  type AllowedPolicy,
} from './jwt-access-tokens.js';
import { loadOidcProvider, type OidcProviderExports } from './load-oidc-provider.js';
import { ClientLookup, gatehouseFactsOf, GATEHOUSE_CLIENT_METADATA } from './oidc-clients.js';
import { logoutSource, postLogoutSuccessSource, renderError } from './oidc-pages.js';
import { createLoadExistingGrant, RememberedGrants } from './remembered-grants.js';
import { loadSigningKeySet, signingKeyFingerprint, type SigningKeySet } from './signing-keys.js';
import { decideScopes, identityClaimsFor, tokenFactsFor, type TokenApi, type TokenFacts } from './token-claims.js';
import { findApiRow, listApiAudiences } from './token-plane-reads.js';

/** Where the token plane writes what goes wrong (pino's, Fastify's logger). */
export interface OidcLogger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** The parts of a node the token plane is built from. */
export interface OidcProviderParts {
  db: Kysely<Database>;
  keys: KeyService;
  catalog: CatalogHolder;
  /**
   * Accounts: users by name (NotFoundError when there is none), and their password check (false
   * for an unknown user too, after the time of a real check).
   */
  users: {
    getUser(name: string): Promise<UserRecord>;
    verifyPassword(name: string, password: string): Promise<boolean>;
  };
  /** Verifies client and service secrets against their argon2id hashes (the stores' hasher). */
  hasher: Pick<SecretHasher, 'verify'>;
  /** GATEHOUSE_PUBLIC_URL: the issuer is `{publicUrl}/oidc`. */
  publicUrl: string;
  /** Lifetime of access tokens and ID tokens, before the membership cap. */
  accessTokenTtlSeconds: number;
  /** Trust X-Forwarded-Proto/Host (Koa's `proxy`), as Fastify does with GATEHOUSE_TRUST_PROXY. */
  trustProxy: boolean;
  /** GATEHOUSE_MASTER_KEY: derives the cookie keys (cookie-keys.ts). */
  masterKey?: Uint8Array | undefined;
  clock?: () => Date;
  /**
   * The server's own audiences, accepted as resource servers although no API declares them
   * (default: `{publicUrl}/v1`, the management API, and `{publicUrl}/pdp`, the decision API).
   * Their tokens carry no Gatehouse claims and no permission scopes.
   */
  ownAudiences?: readonly string[];
  /** Secret cache bounds (client-secret-cache.ts defaults otherwise). */
  secretCache?: { ttlMs?: number; maxEntries?: number };
  /**
   * How long a client or service read from the database is reused at most (ClientLookup;
   * default 1,000 ms, 0: read on every request).
   */
  clientCacheTtlMs?: number;
  /** Where problems go when no request logger is known. */
  log: OidcLogger;
  /** The logger of the HTTP request `req` (Fastify's request.log), for errors inside a request. */
  logFor?: (req: IncomingMessage) => OidcLogger | undefined;
}

/** oidc-provider's clockTolerance (its default), also the adapter's grace on expiry. */
export const CLOCK_TOLERANCE_SECONDS = 15;

/** How long an API read from the database is used at most, even when its domain did not change. */
export const API_CACHE_TTL_MS = 60_000;
/** Most APIs remembered. */
const API_CACHE_MAX_ENTRIES = 10_000;

/** How often the holder asks the KeyService whether the keys changed, at most. */
export const KEY_CHECK_INTERVAL_MS = 1000;

/** The OpenID Connect scopes (OIDC Core §5.4) offered; permission scopes are resource scopes. */
const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];
/** OIDC scopes a resource server's tokens may carry in the code flow (not offline_access). */
const RESOURCE_OIDC_SCOPES = ['openid', 'profile', 'email'];
/** Asymmetric JWS algorithms only: nothing keys on client_secret (which holds a hash). */
const ASYMMETRIC_ALGS = [
  'EdDSA',
  'Ed25519',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
  'RS256',
  'RS384',
  'RS512',
];
/** What we sign with: the KeyService's algorithms. */
const OWN_ALGS = ['EdDSA', 'ES256'];
const FOURTEEN_DAYS = 14 * 24 * 60 * 60;
/** How long a grant (a consent) lives: `ttl.Grant`. */
export const GRANT_TTL_SECONDS = FOURTEEN_DAYS;

/** One built provider and what it was built from. */
export interface ProviderHandle {
  readonly provider: Provider;
  /** provider.callback(), made once. */
  readonly handler: ReturnType<Provider['callback']>;
  /** The signing keys' fingerprint (signing-keys.ts) the provider was built with. */
  readonly fingerprint: string;
}

interface Built extends ProviderHandle {
  generation: number;
  checkAfterMs: number;
}

/** What one request has told us so far. */
interface RequestState {
  /** The `scope` parameter as it arrived (oidc-provider may filter it later). */
  requestedScope: string | undefined;
  recorded: boolean;
  /** Resource servers resolved for this request, by identifier and by audience. */
  readonly apis: Map<string, TokenApi>;
}

/**
 * Holds the node's current oidc-provider and rebuilds it — atomically, for new requests; requests
 * in flight finish on the one they started on — when the `token` keys change: a rotation here or
 * on another node (read within the KeyService's refreshSeconds), or a retired key leaving the
 * JWKS when its overlap ends.
 */
export class OidcProviderHolder {
  /** `{publicUrl}/oidc`. */
  readonly issuer: string;
  /** The database adapter class: the runtime's purge timer calls its purgeExpired. */
  readonly Adapter: OidcAdapterClass;
  /** The verified-secret cache shared by every build. */
  readonly secretCache: ClientSecretCache;
  /** oidc-provider's Node.js runtime notice, if it printed one (load-oidc-provider.ts). */
  readonly runtimeNotice: string | undefined;
  /** JWT access tokens: the records of grant-bound ones, the revocation list. */
  readonly jwtAccessTokens: JwtAccessTokenStore;
  /** Clients and services by client_id (briefly remembered, see ClientLookup). */
  readonly clients: ClientLookup;
  /** What users allowed clients, by account and client (remembered-grants.ts). */
  readonly rememberedGrants: RememberedGrants;
  /** oidc-provider's cookie keys (cookie-keys.ts); the form tokens derive theirs from the first. */
  readonly cookieKeys: readonly string[];

  readonly #module: OidcProviderExports;
  readonly #parts: OidcProviderParts;
  readonly #clock: () => Date;
  readonly #ownAudiences: ReadonlyMap<string, TokenApi>;
  readonly #refusedJwts = new WeakSet<KoaContextWithOIDC>();
  /** APIs by resource indicator, each with its domain's revision when it was read. */
  readonly #apis = new Map<string, { api: TokenApi; revision: number; atMs: number }>();
  #built: Built | undefined;
  #checking: Promise<Built> | undefined;

  private constructor(
    module: OidcProviderExports,
    runtimeNotice: string | undefined,
    parts: OidcProviderParts,
    cookieKeys: string[],
  ) {
    this.#module = module;
    this.runtimeNotice = runtimeNotice;
    this.#parts = parts;
    this.#clock = parts.clock ?? (() => new Date());
    this.cookieKeys = cookieKeys;
    this.issuer = `${parts.publicUrl}/oidc`;
    this.#ownAudiences = new Map<string, TokenApi>(
      (parts.ownAudiences ?? [`${parts.publicUrl}/v1`, `${parts.publicUrl}/pdp`]).map((audience) => [
        audience,
        { domain: undefined, audience, scopes: [], permissionsClaim: false },
      ]),
    );
    this.rememberedGrants = new RememberedGrants(parts.db, this.#clock, GRANT_TTL_SECONDS);
    this.Adapter = createDatabaseAdapter(parts.db, {
      clock: this.#clock,
      clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS,
      // RFC 6749 §5.2: a reused code or rotated refresh token is invalid_grant.
      mapConsumeError: (error) => new module.errors.InvalidGrant({ cause: error }),
    });
    this.secretCache = new ClientSecretCache({ hasher: parts.hasher, clock: this.#clock, ...parts.secretCache });
    this.clients = new ClientLookup({
      db: parts.db,
      catalog: () => parts.catalog.catalog,
      clock: this.#clock,
      ...(parts.clientCacheTtlMs !== undefined ? { ttlMs: parts.clientCacheTtlMs } : {}),
    });
    const clients = this.clients;
    this.jwtAccessTokens = new JwtAccessTokenStore({
      Adapter: this.Adapter,
      keys: parts.keys,
      issuer: this.issuer,
      clock: this.#clock,
      // The same lookup as the token endpoint's: a deleted client, or one of a disabled domain,
      // is not found; an OAuth client may have lost the grant.
      clientMayUseClientCredentials: async (clientId) => {
        const grantTypes = (await clients.find(clientId, false))?.grant_types as readonly string[] | undefined;
        return grantTypes?.includes('client_credentials') === true;
      },
    });
  }

  /**
   * Loads oidc-provider and the cookie keys and builds the first provider. Throws when the
   * module cannot be loaded, when the KeyService has no `token` key (ensureKeys first), and what
   * the database throws.
   */
  static async create(parts: OidcProviderParts): Promise<OidcProviderHolder> {
    if (!Number.isSafeInteger(parts.accessTokenTtlSeconds) || parts.accessTokenTtlSeconds < 1) {
      throw new RangeError('accessTokenTtlSeconds must be a whole number of seconds ≥ 1');
    }
    const [{ module, runtimeNotice }, cookieKeys] = await Promise.all([
      loadOidcProvider(),
      loadCookieKeys(parts.db, parts.masterKey),
    ]);
    const holder = new OidcProviderHolder(module, runtimeNotice, parts, cookieKeys);
    await holder.current();
    return holder;
  }

  /**
   * The provider to serve a request with: the current one, after checking (at most once per
   * KEY_CHECK_INTERVAL_MS, and at once when the KeyService read its keys again) that the signing
   * keys are still those it was built with. Concurrent callers share one check. When a check
   * fails and a provider exists, that provider goes on serving (the failure is logged).
   */
  async current(): Promise<ProviderHandle> {
    const built = this.#built;
    if (
      built !== undefined &&
      built.generation === this.#parts.keys.generation &&
      this.#clock().getTime() < built.checkAfterMs
    ) {
      return built;
    }
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #check(): Promise<Built> {
    const { keys } = this.#parts;
    const checkAfterMs = this.#clock().getTime() + KEY_CHECK_INTERVAL_MS;
    const built = this.#built;
    try {
      const fingerprint = await signingKeyFingerprint(keys);
      if (built !== undefined && built.fingerprint === fingerprint) {
        built.generation = keys.generation;
        built.checkAfterMs = checkAfterMs;
        return built;
      }
      const set = await loadSigningKeySet(this.#module.ExternalSigningKey, keys);
      const provider = this.#build(set);
      this.#built = {
        provider,
        handler: provider.callback(),
        fingerprint: set.fingerprint,
        generation: keys.generation,
        checkAfterMs,
      };
      return this.#built;
    } catch (err) {
      if (built === undefined) throw new Error('the token plane could not load its signing keys', { cause: err });
      this.#parts.log.warn({ err }, 'oidc: checking the signing keys failed; serving with the keys in use');
      built.checkAfterMs = checkAfterMs;
      return built;
    }
  }

  /**
   * The resource server `resource` names (RFC 8707): an API of an enabled domain, or one of the
   * server's own audiences; undefined when there is none. APIs are remembered while their
   * domain's revision is unchanged, API_CACHE_TTL_MS at most. Passes database errors through.
   */
  async findTokenApi(resource: string): Promise<TokenApi | undefined> {
    const own = this.#ownAudiences.get(resource);
    if (own !== undefined) return own;
    const catalog = (): Catalog => this.#parts.catalog.catalog;
    const apiCache = this.#apis;
    const nowMs = this.#clock().getTime();
    const cached = apiCache.get(resource);
    if (cached !== undefined) {
      // Every write to an API bumps its domain's revision, and the catalog holds the domain at
      // that revision before the write returns on this node (other nodes: the change feed).
      const domain = catalog().domains.get(cached.api.domain ?? '');
      if (domain?.revision === cached.revision && nowMs - cached.atMs < API_CACHE_TTL_MS) {
        return domain.enabled ? cached.api : undefined;
      }
      apiCache.delete(resource);
    }
    // The catalog as it was before the query (it is replaced whole on every change): a write
    // landing meanwhile leaves the entry tagged with an older revision, so it is read again.
    const before = catalog();
    const row = await findApiRow(this.#parts.db, resource);
    if (row === undefined) return undefined;
    const domain = before.domains.get(row.domain);
    if (domain === undefined || !domain.enabled) return undefined;
    const api: TokenApi = {
      domain: row.domain,
      audience: row.audience,
      scopes: row.scopes,
      permissionsClaim: row.permissionsClaim,
    };
    if (apiCache.size >= API_CACHE_MAX_ENTRIES) apiCache.delete(apiCache.keys().next().value as string);
    apiCache.set(resource, { api, revision: domain.revision, atMs: nowMs });
    return api;
  }

  /** Builds a Provider signing with `set` (see the module comment for what each option is for). */
  #build(set: SigningKeySet): Provider {
    const { Provider: ProviderClass, errors } = this.#module;
    const parts = this.#parts;
    const clock = this.#clock;
    const catalog = (): Catalog => parts.catalog.catalog;
    const issuerPath = new URL(this.issuer).pathname;
    const ownAudiences = this.#ownAudiences;
    const jwtStore = this.jwtAccessTokens;
    const secretCache = this.secretCache;
    const DbAdapter = this.Adapter;
    const refused = this.#refusedJwts;
    const requests = new WeakMap<KoaContextWithOIDC, RequestState>();
    const facts = new WeakMap<BaseToken, TokenFacts | null>();

    const nowSeconds = (): number => Math.floor(clock().getTime() / 1000);

    const stateOf = (ctx: KoaContextWithOIDC | undefined): RequestState | undefined => {
      if (ctx === undefined) return undefined;
      let state = requests.get(ctx);
      if (state === undefined) {
        state = { requestedScope: undefined, recorded: false, apis: new Map() };
        requests.set(ctx, state);
      }
      return state;
    };

    // The scope parameter as the client sent it: oidc-provider drops the non-OpenID scopes from
    // it when no resource applies (shared/check_resource.js filterStatics), after our hooks run.
    const recordRequestedScope = (ctx: KoaContextWithOIDC | undefined): void => {
      const state = stateOf(ctx);
      if (ctx === undefined || state === undefined || state.recorded) return;
      const scope = oidcOf(ctx)?.params?.scope;
      state.requestedScope = typeof scope === 'string' ? scope : undefined;
      state.recorded = true;
    };

    const isClientCredentials = (ctx: KoaContextWithOIDC | undefined): boolean =>
      ctx !== undefined && oidcOf(ctx)?.params?.grant_type === 'client_credentials';

    /** The scopes asked for, as a list: the parameter, else the code's or refresh token's. */
    const requestedScopes = (ctx: KoaContextWithOIDC | undefined): string[] | undefined => {
      if (ctx === undefined) return undefined;
      recordRequestedScope(ctx);
      const oidc = oidcOf(ctx);
      const scope =
        stateOf(ctx)?.requestedScope ?? oidc?.entities.AuthorizationCode?.scope ?? oidc?.entities.RefreshToken?.scope;
      return scope === undefined ? undefined : scope.split(' ').filter((s) => s !== '');
    };

    /** Whose token it is: the client in client credentials, else the signed-in user. */
    const principalOf = (ctx: KoaContextWithOIDC | undefined, client: Client | undefined): string | undefined => {
      if (isClientCredentials(ctx)) return client?.clientId;
      const entities = ctx === undefined ? undefined : oidcOf(ctx)?.entities;
      return (
        entities?.Account?.accountId ??
        entities?.AuthorizationCode?.accountId ??
        entities?.RefreshToken?.accountId ??
        entities?.Session?.accountId
      );
    };

    const resolveApi = (resource: string): Promise<TokenApi | undefined> => this.findTokenApi(resource);

    const apiOfToken = (ctx: KoaContextWithOIDC | undefined, token: BaseToken): TokenApi | undefined => {
      const aud = Array.isArray(token.aud) ? token.aud[0] : token.aud;
      if (aud === undefined) return undefined;
      return ownAudiences.get(aud) ?? stateOf(ctx)?.apis.get(aud);
    };

    // Computed once per token, at its first use (its TTL, then its claims): the same instant
    // decides the claims and caps exp.
    const factsOf = (ctx: KoaContextWithOIDC | undefined, token: BaseToken): TokenFacts | undefined => {
      const known = facts.get(token);
      if (known !== undefined) return known ?? undefined;
      const api = apiOfToken(ctx, token);
      const principal = token.accountId ?? token.clientId;
      const computed =
        api === undefined || principal === undefined
          ? undefined
          : tokenFactsFor(catalog(), principal, api, token.scope, nowSeconds());
      facts.set(token, computed ?? null);
      return computed;
    };

    const accessTokenTtl = (ctx: KoaContextWithOIDC | undefined, token: BaseToken): number => {
      const base = token.resourceServer?.accessTokenTTL ?? parts.accessTokenTtlSeconds;
      const maxExp = factsOf(ctx, token)?.maxExp;
      // semantics.md "Privileged access": never past the earliest membership the token carries.
      return maxExp === undefined ? base : Math.max(1, Math.min(base, maxExp - nowSeconds()));
    };

    const idTokenTtl = (
      _ctx: KoaContextWithOIDC | undefined,
      token: BaseToken & { available?: JsonObject },
      client?: Client,
    ): number => {
      const base = parts.accessTokenTtlSeconds;
      const sub = token.available?.sub;
      const domain = gatehouseFactsOf(client)?.domain;
      if (typeof sub !== 'string' || domain === undefined) return base;
      const { maxExp } = identityClaimsFor(catalog(), sub, domain, clock().getTime());
      return maxExp === undefined ? base : Math.max(1, Math.min(base, maxExp - nowSeconds()));
    };

    const introspectionPolicy: AllowedPolicy = async (_ctx, client, token) => {
      // RFC 7662 §2.1 leaves who may introspect to the server: the token's own client, and the
      // confidential clients and services of the domain whose API the token is for (its
      // resource servers' backends authenticate as those).
      if (token.clientId === client.clientId) return true;
      if (client.clientAuthMethod === 'none') return false;
      const domain = token.extra?.domain;
      return typeof domain === 'string' && gatehouseFactsOf(client)?.domain === domain;
    };

    const revocationPolicy: AllowedPolicy = async (_ctx, client, token) => {
      // RFC 7009 §2.1: only the client the token was issued to may revoke it.
      if (token.clientId === client.clientId) return true;
      if (client.clientAuthMethod === 'none') return false;
      throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
    };

    class StorageAdapter implements Adapter {
      readonly #inner: Adapter;
      constructor(model: string) {
        this.#inner = model === 'Client' ? clientAdapter : new DbAdapter(model);
      }
      upsert(id: string, payload: JsonObject, expiresIn?: number): Promise<void> {
        return this.#inner.upsert(id, payload, expiresIn);
      }
      find(id: string): Promise<JsonObject | undefined> {
        return this.#inner.find(id);
      }
      findByUid(uid: string): Promise<JsonObject | undefined> {
        return this.#inner.findByUid(uid);
      }
      findByUserCode(userCode: string): Promise<JsonObject | undefined> {
        return this.#inner.findByUserCode(userCode);
      }
      consume(id: string): Promise<void> {
        return this.#inner.consume(id);
      }
      destroy(id: string): Promise<void> {
        return this.#inner.destroy(id);
      }
      revokeByGrantId(grantId: string): Promise<void> {
        return this.#inner.revokeByGrantId(grantId);
      }
    }

    const readOnly = async (): Promise<never> => {
      // Dynamic registration is off: clients change only through the management API.
      throw new Error('clients are managed through the management API, not by oidc-provider');
    };
    const clientLookup = this.clients;
    const clientAdapter: Adapter = {
      find: (id) => {
        const ctx = ProviderClass.ctx;
        return clientLookup.find(id, ctx !== undefined && oidcOf(ctx)?.params?.client_assertion !== undefined);
      },
      findByUid: async () => undefined,
      findByUserCode: async () => undefined,
      upsert: readOnly,
      consume: readOnly,
      destroy: readOnly,
      revokeByGrantId: async () => undefined,
    };

    const findAccount = async (ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> => {
      // Accounts are users: the subject is the principal `user.<name>`.
      if (typeof sub !== 'string' || !sub.startsWith('user.')) return undefined;
      let user: UserRecord;
      try {
        user = await parts.users.getUser(sub.slice('user.'.length));
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
      return {
        accountId: sub,
        claims: () => {
          // org_id is the domain of the client the user signs in to; roles and features are the
          // user's in that domain (docs/oidc.md "ID tokens").
          const domain = gatehouseFactsOf(ctx.oidc.client)?.domain;
          const identity =
            domain === undefined
              ? { roles: [], features: [] }
              : identityClaimsFor(catalog(), sub, domain, clock().getTime());
          return {
            sub,
            name: user.displayName ?? undefined,
            email: user.email ?? undefined,
            // Emails are set by administrators and never verified by Gatehouse (OIDC Core §5.1).
            email_verified: user.email === null ? undefined : false,
            org_id: domain,
            roles: identity.roles,
            features: identity.features,
          };
        },
      };
    };

    const defaultResource = async (
      ctx: KoaContextWithOIDC,
      client: Client,
      oneOf?: string | string[],
    ): Promise<string | string[] | undefined> => {
      recordRequestedScope(ctx);
      if (oneOf !== undefined) return oneOf;
      // RFC 8707 lets the server pick a default: the client's domain's API, when it has exactly one.
      const domain = gatehouseFactsOf(client)?.domain;
      const audiences = domain === undefined ? [] : await listApiAudiences(parts.db, domain, 2);
      if (audiences.length === 1) return audiences[0];
      if (isClientCredentials(ctx)) {
        // RFC 8707 §2: without a resource the access token would have no audience.
        throw new errors.InvalidTarget(
          audiences.length === 0
            ? `domain ${domain ?? '?'} has no API: name the API in the resource parameter (RFC 8707)`
            : `domain ${domain ?? '?'} has several APIs: name one in the resource parameter (RFC 8707)`,
        );
      }
      return undefined;
    };

    const getResourceServerInfo = async (
      ctx: KoaContextWithOIDC,
      resource: string,
      client: Client,
    ): Promise<ResourceServerInfo> => {
      recordRequestedScope(ctx);
      const api = await resolveApi(resource);
      // RFC 8707 §2: an unknown resource (or one of a disabled domain) is invalid_target.
      if (api === undefined) throw new errors.InvalidTarget();
      const state = stateOf(ctx);
      state?.apis.set(resource, api);
      state?.apis.set(api.audience, api);
      const principal = principalOf(ctx, client);
      const requested = requestedScopes(ctx);
      // Before sign-in there is nobody to decide for: the API's scopes are offered, and the
      // token request decides again for the user.
      const scopes =
        principal === undefined
          ? [...api.scopes]
          : [...decideScopes(catalog(), principal, api, requested ?? api.scopes, clock().getTime()).granted];
      if (!isClientCredentials(ctx)) {
        for (const s of RESOURCE_OIDC_SCOPES) if (requested?.includes(s) === true) scopes.push(s);
      }
      return {
        scope: scopes.join(' '),
        audience: api.audience,
        accessTokenFormat: 'jwt',
        accessTokenTTL: parts.accessTokenTtlSeconds,
        jwt: { sign: { alg: set.alg } },
      };
    };

    const extraTokenClaims = async (
      ctx: KoaContextWithOIDC | undefined,
      token: BaseToken,
    ): Promise<JsonObject | undefined> => {
      const found = factsOf(ctx, token);
      return found === undefined ? undefined : { ...found.claims };
    };

    const customizeJwt = async (
      ctx: KoaContextWithOIDC | undefined,
      token: BaseToken,
      jwt: { header: JsonObject | undefined; payload: JsonObject },
    ): Promise<void> => {
      const maxExp = factsOf(ctx, token)?.maxExp;
      if (maxExp !== undefined && typeof jwt.payload.exp === 'number' && jwt.payload.exp > maxExp) {
        jwt.payload.exp = maxExp;
      }
      await jwtStore.remember(token, jwt.payload);
    };

    const configuration: Configuration = {
      adapter: StorageAdapter,
      jwks: { keys: set.keys },
      cookies: { keys: [...this.cookieKeys] },
      scopes: OIDC_SCOPES,
      claims: { openid: ['sub', 'org_id', 'roles', 'features'], profile: ['name'], email: ['email', 'email_verified'] },
      responseTypes: ['code'],
      subjectTypes: ['public'],
      clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
      clientDefaults: {
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: set.alg,
      },
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      enabledJWA: {
        clientAuthSigningAlgValues: ASYMMETRIC_ALGS,
        requestObjectSigningAlgValues: ASYMMETRIC_ALGS,
        idTokenSigningAlgValues: OWN_ALGS,
        userinfoSigningAlgValues: OWN_ALGS,
        introspectionSigningAlgValues: OWN_ALGS,
        authorizationSigningAlgValues: OWN_ALGS,
      },
      extraClientMetadata: { properties: [...GATEHOUSE_CLIENT_METADATA] },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: true, allowedPolicy: introspectionPolicy },
        revocation: { enabled: true, allowedPolicy: revocationPolicy },
        userinfo: { enabled: true },
        rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
        resourceIndicators: {
          enabled: true,
          defaultResource,
          // The code flow's access token is for the granted API (a JWT), not for userinfo only.
          useGrantedResource: async () => true,
          getResourceServerInfo,
        },
        externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      },
      formats: { customizers: { jwt: customizeJwt } },
      extraTokenClaims,
      findAccount,
      // The login and consent pages (interaction-routes.ts) live under the issuer's path.
      interactions: { url: (_ctx, interaction) => `${issuerPath}/interaction/${interaction.uid}` },
      loadExistingGrant: createLoadExistingGrant(this.rememberedGrants),
      // RFC 6749 §1.5: refresh tokens for every client registered with the refresh_token grant,
      // not only when offline_access was granted (oidc-provider's default): without it the token
      // expires with the user's session (OIDC Core §11), with it it outlives the session.
      issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      // Every refresh rotates the refresh token; presenting a rotated one again revokes the grant.
      rotateRefreshToken: () => true,
      renderError,
      clientBasedCORS: (ctx, origin, client) => {
        // Browsers may call userinfo and, for public clients, the token endpoint from the
        // origins of the client's redirect URIs (oidc-provider's default, without its notice).
        if (origin === 'null') return false;
        if (oidcOf(ctx)?.route !== 'userinfo' && client.clientAuthMethod !== 'none') return false;
        return client.redirectUris.some((uri) => originOf(uri) === origin);
      },
      ttl: {
        AccessToken: accessTokenTtl,
        ClientCredentials: accessTokenTtl,
        IdToken: idTokenTtl,
        AuthorizationCode: 60,
        RefreshToken: FOURTEEN_DAYS,
        Grant: FOURTEEN_DAYS,
        Session: FOURTEEN_DAYS,
        Interaction: 60 * 60,
      },
    };

    const provider = new ProviderClass(this.issuer, configuration);
    provider.proxy = parts.trustProxy;
    if (new URL(parts.publicUrl).protocol === 'https:') {
      // Browsers reach an https public URL over TLS, which Gatehouse never terminates itself:
      // its cookies are Secure (RFC 6265 §4.1.2.5) even when the proxy in front is not trusted
      // to say so (GATEHOUSE_TRUST_PROXY). oidc-provider marks its cookies Secure when
      // ctx.secure (the session's) or when Koa's cookie jar thinks the request secure (the rest).
      provider.use(async (ctx, next) => {
        Object.defineProperty(ctx, 'secure', { value: true, configurable: true });
        (ctx as unknown as { cookies: { secure: boolean } }).cookies.secure = true;
        await next();
      });
    }

    // Secrets are stored as argon2id hashes: `clientSecret` holds the hash (oidc-clients.ts).
    Object.defineProperty(provider.Client.prototype, 'compareClientSecret', {
      configurable: true,
      writable: true,
      value: function compareClientSecret(this: Client, actual: string): Promise<boolean> {
        return secretCache.verify(this.clientId, this.clientSecret, actual);
      },
    });

    // Userinfo finds its access token with AccessToken.find(value); a JWT value is looked up
    // through its record (jwt-access-tokens.ts).
    const AccessToken = provider.AccessToken;
    const nativeFind = AccessToken.find.bind(AccessToken);
    Object.defineProperty(AccessToken, 'find', {
      configurable: true,
      writable: true,
      value: async (value: string, options?: { ignoreExpiration?: boolean }): Promise<BaseToken | undefined> => {
        if (!looksLikeJws(value)) return nativeFind(value, options);
        const token = await findJwtToken(provider, jwtStore, value, ['AccessToken']);
        const ctx = ProviderClass.ctx;
        if (token !== undefined && ctx !== undefined && oidcOf(ctx)?.route === 'userinfo') {
          // RFC 9068 tokens name their API as audience, and oidc-provider refuses any token with
          // an audience at userinfo (actions/userinfo.js validateAudience). Gatehouse accepts
          // the code flow's token there (issue 4): userinfo sees it without one. It still needs
          // the openid scope, a live grant and a live account.
          delete token.aud;
        }
        return token;
      },
    });

    provider.use(
      jwtIntrospectionAndRevocation({ provider, store: jwtStore, introspectionPolicy, revocationPolicy, refused }),
    );
    provider.use(scopeRejected(requestedScopes));
    provider.on('introspection.error', markRefusedJwt(refused));
    provider.on('revocation.error', markRefusedJwt(refused));
    provider.on('server_error', (ctx, err) => {
      const log = (ctx !== undefined ? parts.logFor?.(ctx.req) : undefined) ?? parts.log;
      log.error({ err }, 'oidc: server error');
    });
    // Koa's own error event (an error no oidc-provider route handled); without a listener Koa
    // would print it to stderr.
    provider.on('error', (err, ctx) => {
      const log = (ctx !== undefined ? parts.logFor?.(ctx.req) : undefined) ?? parts.log;
      log.error({ err }, 'oidc: request failed');
    });
    return provider;
  }
}

/**
 * Post-processing middleware: adds `scope_rejected` to successful token responses — the requested
 * scopes that were not granted (denied by policy, unknown to the API, or not consented), space-
 * separated, omitted when there are none (api.md §1). For the code flow the request's scopes are
 * the code's (those consented) plus those the user's grant rejected; OpenID scopes the grant
 * holds count as granted (they shaped the ID token).
 */
function scopeRejected(requestedScopes: (ctx: KoaContextWithOIDC) => string[] | undefined): Middleware {
  return async (ctx, next) => {
    await next();
    const oidc = oidcOf(ctx);
    if (oidc?.route !== 'token' || ctx.status !== 200) return;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (typeof body !== 'object' || body === null || typeof body.access_token !== 'string') return;
    const requested = new Set(requestedScopes(ctx) ?? []);
    const granted = new Set(typeof body.scope === 'string' ? body.scope.split(' ') : []);
    const grant = oidc.entities.Grant;
    if (grant !== undefined && oidc.params?.grant_type !== 'client_credentials') {
      for (const s of grant.getOIDCScope().split(' ')) if (s !== '') granted.add(s);
      for (const s of grant.getRejectedOIDCScope().split(' ')) if (s !== '') requested.add(s);
      const resources = oidc.entities.AuthorizationCode?.resource ?? oidc.entities.RefreshToken?.resource;
      for (const resource of typeof resources === 'string' ? [resources] : (resources ?? [])) {
        for (const s of grant.getRejectedResourceScope(resource).split(' ')) if (s !== '') requested.add(s);
      }
    }
    const rejected = [...requested].filter((s) => !granted.has(s));
    if (rejected.length > 0) body.scope_rejected = rejected.join(' ');
  };
}

function originOf(uri: string): string | undefined {
  try {
    return new URL(uri).origin;
  } catch {
    return undefined;
  }
}
