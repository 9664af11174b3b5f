/**
 * JWT access tokens (RFC 9068) that can still be introspected and revoked.
 *
 * Out of the box oidc-provider signs JWT access tokens and forgets them: it stores nothing, so it
 * cannot say at introspection (RFC 7662) whether one is still active, cannot revoke one (RFC
 * 7009), and refuses them at both endpoints (`unsupported_token_type`) and at userinfo. Gatehouse
 * answers for all of them, in two ways:
 *
 * - **Grant-bound tokens** (model `AccessToken`: the code flow, refresh) get a record, **stored**
 *   by the `formats.customizers.jwt` hook before the token is signed (the token is not handed
 *   out before its record is committed): the same payload oidc-provider stores for an opaque
 *   token (id = the JWT's `jti`, `grantId`, so that revoking the grant — a reused refresh token,
 *   a revoked consent — deletes it with the family), plus `format: "jwt"`. That marker makes
 *   oidc-provider's own lookups refuse the record (formats/opaque.js `verify`): a `jti` is
 *   printed in the token and seen by every resource server, and must never work as an opaque
 *   access token by itself. Such a token is active only while its record exists.
 * - **Client-credentials tokens** (model `ClientCredentials`: no grant, no account) get no
 *   record: the JWT stands for itself. It is active while its signature verifies, its `jti` is
 *   not on the **revocation list** (model `RevokedAccessToken` in `oidc_payloads`, id = `jti`,
 *   kept until the token's `exp`, then purged), and its client still exists and may still use
 *   client credentials. Its subject must be its client (RFC 9068 §2.2): a code-flow token names
 *   its user, so one whose record is gone (revoked) never passes for a client-credentials token.
 *   A JWT without `client_id` (`gatehouse token`, operator mode) has no client to check; who may
 *   introspect it is still the allowed policy's decision.
 *
 * Both are **found** only through the JWT itself: its signature must verify with a published
 * `token` key of this issuer (AccessTokenVerifier: `typ` at+jwt, `iss`, not expired).
 * Client-credentials records written before this rule (a previous version) are still honoured.
 *
 * **Introspected and revoked** by post-processing middleware: when oidc-provider refused a
 * structured token at those endpoints (after authenticating the client), the middleware answers
 * instead, as oidc-provider answers for opaque tokens (lib/actions/introspection.js,
 * revocation.js), with the same allowed policies. Revocation deletes the record, if any, and puts
 * the `jti` on the revocation list.
 *
 * Userinfo accepts the code flow's tokens through AccessToken.find (create-oidc-provider.ts), with
 * findJwtToken.
 *
 * Records are written in batches: every record asked for in one turn of the event loop goes into
 * one multi-row statement (the adapter's upsertMany), and each token request waits for its batch.
 * One insert per token halved the token endpoint's throughput on SQLite (~250 µs each: building,
 * preparing and committing a statement); shared by the requests in flight, it costs a fraction.
 */

import type { KeyService } from '../keys/key-service.js';
import type {
  BaseToken,
  Client,
  JsonObject,
  KoaContextWithOIDC,
  Middleware,
  OIDCContext,
  OIDCProviderError,
  Provider,
} from 'oidc-provider';
import {
  AccessTokenVerifier,
  InvalidTokenError,
  MAX_ACCESS_TOKEN_LENGTH,
  type AccessTokenClaims,
} from '../keys/access-tokens.js';
import { MAX_UPSERT_BATCH, type OidcAdapter, type OidcAdapterClass, type OidcUpsert } from './database-adapter.js';

/** The token models whose JWTs are looked up by record (ClientCredentials: records of older versions). */
export const JWT_TOKEN_KINDS = ['AccessToken', 'ClientCredentials'] as const;

/** A model of JWT access tokens. */
export type JwtTokenKind = (typeof JWT_TOKEN_KINDS)[number];

/** The model of the revocation list: revoked JWT access tokens by `jti`, until their `exp`. */
export const REVOKED_ACCESS_TOKEN_MODEL = 'RevokedAccessToken';

/** JWT claims that are not the token's `extra` (oidc-provider's formats/jwt.js sets them). */
const REGISTERED_JWT_CLAIMS = new Set([
  'jti',
  'sub',
  'iat',
  'exp',
  'nbf',
  'authorization_details',
  'scope',
  'client_id',
  'iss',
  'aud',
  'cnf',
]);

/** The marker of a JWT access token's record; oidc-provider's opaque lookups refuse it. */
export const JWT_RECORD_FORMAT = 'jwt';

/** Token fields copied into the record, as oidc-provider's models name them (IN_PAYLOAD). */
const RECORD_FIELDS = [
  'accountId',
  'clientId',
  'grantId',
  'gty',
  'scope',
  'sid',
  'sessionUid',
  'expiresWithSession',
  'aud',
  'extra',
  'rar',
  'claims',
  'jkt',
  'x5t#S256',
] as const;

/** Options of a JwtAccessTokenStore. */
export interface JwtAccessTokenStoreOptions {
  /** The database adapter class (createDatabaseAdapter): records live in `oidc_payloads`. */
  Adapter: OidcAdapterClass;
  keys: KeyService;
  /** The issuer whose tokens these are (`{PUBLIC_URL}/oidc`). */
  issuer: string;
  clock: () => Date;
  /**
   * Whether the client `clientId` still exists (its domain enabled) and may use the client
   * credentials grant: a client-credentials token without a record is active only then.
   */
  clientMayUseClientCredentials(clientId: string): Promise<boolean>;
}

/** A JWT access token found: its model, its payload (as a record holds it) and its subject. */
export interface FoundJwt {
  readonly kind: JwtTokenKind;
  readonly payload: JsonObject;
  /** The JWT's `sub`. */
  readonly sub: string;
  /** Whether it has a record (deleted when it is revoked). */
  readonly stored: boolean;
}

/** The records of issued JWT access tokens (see the module comment). */
export class JwtAccessTokenStore {
  readonly #adapters: ReadonlyMap<JwtTokenKind, OidcAdapter>;
  readonly #revoked: OidcAdapter;
  readonly #writer: RecordWriter;
  readonly #verifier: AccessTokenVerifier;
  readonly #clock: () => Date;
  readonly #clientMayUseClientCredentials: (clientId: string) => Promise<boolean>;

  constructor(options: JwtAccessTokenStoreOptions) {
    this.#adapters = new Map(JWT_TOKEN_KINDS.map((kind) => [kind, new options.Adapter(kind)]));
    this.#revoked = new options.Adapter(REVOKED_ACCESS_TOKEN_MODEL);
    this.#clientMayUseClientCredentials = options.clientMayUseClientCredentials;
    this.#writer = new RecordWriter(options.Adapter);
    // No skew: RFC 7662 §2.2 — an expired token is not active. Verified tokens are cached by the
    // verifier, so a token presented again (userinfo, introspection) skips the signature check.
    this.#verifier = new AccessTokenVerifier({ keys: options.keys, issuer: options.issuer, clockSkewSeconds: 0 });
    this.#clock = options.clock;
  }

  /**
   * Stores the record of `token`, about to be issued as a JWT with `payload` (its claims, `exp`
   * already final), when it is grant-bound (`AccessToken`); a client-credentials token gets none.
   * Throws OidcPayloadError for a record the adapter refuses, and database errors.
   */
  async remember(token: BaseToken, payload: Readonly<JsonObject>): Promise<void> {
    const kind = token.kind as JwtTokenKind;
    if (kind === 'ClientCredentials') return;
    if (kind !== 'AccessToken') throw new TypeError(`no JWT record for tokens of kind ${token.kind}`);
    const { jti, iat, exp } = payload;
    if (typeof jti !== 'string' || typeof iat !== 'number' || typeof exp !== 'number') {
      throw new TypeError('a JWT access token needs jti, iat and exp');
    }
    const record: JsonObject = { jti, kind, iat, exp };
    for (const field of RECORD_FIELDS) {
      const value = token[field];
      if (value !== undefined) record[field] = value;
    }
    record.format = JWT_RECORD_FORMAT;
    const nowSeconds = Math.floor(this.#clock().getTime() / 1000);
    await this.#writer.write(kind, { id: jti, payload: record, expiresIn: Math.max(1, exp - nowSeconds) });
  }

  /**
   * The JWT access token `value` when it is one of ours and not revoked: its record, or — for a
   * client-credentials token (or an operator's, without `client_id`) — its claims. Undefined when
   * `value` is not a JWS, too long, has a signature or key that does not verify, another issuer,
   * has expired, is on the revocation list, is grant-bound without its record (revoked, or its
   * grant revoked), or names a client that no longer exists or may not use client credentials.
   * Passes database errors through.
   */
  async find(value: unknown): Promise<FoundJwt | undefined> {
    if (!looksLikeJws(value)) return undefined;
    let claims;
    try {
      claims = await this.#verifier.verify(value);
    } catch (err) {
      if (err instanceof InvalidTokenError) return undefined;
      throw err;
    }
    const [revoked, ...found] = await Promise.all([
      this.#revoked.find(claims.jti),
      ...JWT_TOKEN_KINDS.map(async (kind) => ({ kind, stored: await this.#adapters.get(kind)!.find(claims.jti) })),
    ]);
    if (revoked !== undefined) return undefined;
    for (const { kind, stored } of found) {
      if (stored === undefined || stored.format !== JWT_RECORD_FORMAT || stored.jti !== claims.jti) continue;
      // The record names the client the JWT names: a record never answers for another token.
      if (stored.clientId !== claims.client_id) continue;
      const { format: _format, ...payload } = stored;
      return { kind, payload, sub: claims.sub, stored: true };
    }
    const clientId = claims.client_id;
    if (clientId !== undefined) {
      // A client-credentials token's subject is its client (RFC 9068 §2.2); a grant-bound token's
      // is its user, and without its record it is revoked. (An OAuth client whose id is a user's
      // principal name may not use client credentials: oidc-clients.ts.)
      if (claims.sub !== clientId) return undefined;
      if (!(await this.#clientMayUseClientCredentials(clientId))) return undefined;
    }
    return { kind: 'ClientCredentials', payload: payloadOfClaims(claims), sub: claims.sub, stored: false };
  }

  /**
   * Puts the JWT access token `payload` names (its `jti`, until its `exp`) on the revocation list.
   * Passes database errors through.
   */
  async revoke(payload: Readonly<JsonObject>): Promise<void> {
    const { jti, exp } = payload;
    if (typeof jti !== 'string' || typeof exp !== 'number') throw new TypeError('a JWT access token needs jti and exp');
    const nowSeconds = Math.floor(this.#clock().getTime() / 1000);
    await this.#revoked.upsert(jti, { jti, exp }, Math.max(1, exp - nowSeconds));
  }
}

/** The payload oidc-provider would have stored for the client-credentials token with `claims`. */
function payloadOfClaims(claims: Readonly<AccessTokenClaims>): JsonObject {
  const payload: JsonObject = { jti: claims.jti, kind: 'ClientCredentials', iat: claims.iat, exp: claims.exp };
  if (claims.client_id !== undefined) payload.clientId = claims.client_id;
  payload.aud = Array.isArray(claims.aud) ? [...claims.aud] : claims.aud;
  if (typeof claims.scope === 'string' && claims.scope !== '') payload.scope = claims.scope;
  if (claims.authorization_details !== undefined) payload.rar = claims.authorization_details as JsonObject;
  const cnf = claims.cnf as Partial<Record<'jkt' | 'x5t#S256', string>> | undefined;
  if (typeof cnf?.jkt === 'string') payload.jkt = cnf.jkt;
  if (typeof cnf?.['x5t#S256'] === 'string') payload['x5t#S256'] = cnf['x5t#S256'];
  const extra: JsonObject = {};
  for (const [name, value] of Object.entries(claims)) {
    if (!REGISTERED_JWT_CLAIMS.has(name)) extra[name] = value as JsonObject[string];
  }
  if (Object.keys(extra).length > 0) payload.extra = extra;
  return payload;
}

interface PendingRecord {
  readonly kind: JwtTokenKind;
  readonly entry: OidcUpsert;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Writes records in batches: what is asked for before the next `setImmediate` goes into one
 * statement per model (up to MAX_UPSERT_BATCH rows). When a batch fails, its records are written
 * one by one, so that one bad record (too large, say) fails only its own token request.
 */
class RecordWriter {
  readonly #Adapter: OidcAdapterClass;
  #queue: PendingRecord[] = [];

  constructor(Adapter: OidcAdapterClass) {
    this.#Adapter = Adapter;
  }

  write(kind: JwtTokenKind, entry: OidcUpsert): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#queue.push({ kind, entry, resolve, reject }) === 1) setImmediate(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    const queue = this.#queue;
    this.#queue = [];
    const batches: PendingRecord[][] = [];
    for (const kind of JWT_TOKEN_KINDS) {
      const ofKind = queue.filter((p) => p.kind === kind);
      for (let i = 0; i < ofKind.length; i += MAX_UPSERT_BATCH) batches.push(ofKind.slice(i, i + MAX_UPSERT_BATCH));
    }
    await Promise.all(batches.map((batch) => this.#writeBatch(batch)));
  }

  async #writeBatch(batch: PendingRecord[]): Promise<void> {
    const kind = batch[0]!.kind;
    try {
      await this.#Adapter.upsertMany(
        kind,
        batch.map((p) => p.entry),
      );
      for (const p of batch) p.resolve();
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      await Promise.all(batch.map((p) => this.#writeBatch([p])));
    }
  }
}

/** Whether `value` has the shape of a compact JWS (three base64url parts), within the size limit. */
export function looksLikeJws(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length <= MAX_ACCESS_TOKEN_LENGTH &&
    /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(value)
  );
}

/** A JWT access token as a token model instance, with its subject and whether it has a record. */
export interface FoundJwtToken {
  readonly token: BaseToken;
  readonly sub: string;
  readonly stored: boolean;
}

/**
 * The token model instance a JWT access token stands for, as oidc-provider's own `find` would
 * give it for an opaque token: valid (not expired), and — for a token that ends with its session
 * (`expiresWithSession`) — with that session still there for the same account and grant
 * (lib/models/token_helpers.js checkSessionBinding). Undefined otherwise.
 */
export async function findJwtToken(
  provider: Provider,
  store: JwtAccessTokenStore,
  value: unknown,
  kinds: readonly JwtTokenKind[] = JWT_TOKEN_KINDS,
): Promise<BaseToken | undefined> {
  return (await findJwt(provider, store, value, kinds))?.token;
}

async function findJwt(
  provider: Provider,
  store: JwtAccessTokenStore,
  value: unknown,
  kinds: readonly JwtTokenKind[] = JWT_TOKEN_KINDS,
): Promise<FoundJwtToken | undefined> {
  const found = await store.find(value);
  if (found === undefined || !kinds.includes(found.kind)) return undefined;
  const token = provider[found.kind].instantiate(found.payload);
  if (!token.isValid) return undefined;
  if (token.expiresWithSession === true) {
    const session =
      typeof token.sessionUid === 'string' ? await provider.Session.findByUid(token.sessionUid) : undefined;
    if (
      session === undefined ||
      token.accountId !== session.accountId ||
      token.clientId === undefined ||
      token.grantId !== session.grantIdFor(token.clientId)
    ) {
      return undefined;
    }
  }
  return { token, sub: found.sub, stored: found.stored };
}

/** Decides whether `client` may introspect or revoke `token` (oidc-provider's allowedPolicy). */
export type AllowedPolicy = (ctx: KoaContextWithOIDC, client: Client, token: BaseToken) => Promise<boolean>;

/** What the introspection and revocation middleware needs. */
export interface JwtEndpointOptions {
  provider: Provider;
  store: JwtAccessTokenStore;
  introspectionPolicy: AllowedPolicy;
  revocationPolicy: AllowedPolicy;
  /** The requests oidc-provider refused with unsupported_token_type (see markRefusedJwt). */
  refused: WeakSet<KoaContextWithOIDC>;
}

/** The request's OIDC context, or undefined when no oidc-provider route matched it. */
export function oidcOf(ctx: KoaContextWithOIDC): OIDCContext | undefined {
  return (ctx as { oidc?: OIDCContext }).oidc;
}

/**
 * A `provider.on('introspection.error' | 'revocation.error')` listener: notes the requests
 * oidc-provider refused because their token is a JWT (shared/reject_structured_tokens.js). That
 * refusal comes after client authentication, so a noted request has an authenticated client.
 */
export function markRefusedJwt(refused: WeakSet<KoaContextWithOIDC>): (ctx: KoaContextWithOIDC, err: unknown) => void {
  return (ctx, err) => {
    if ((err as Partial<OIDCProviderError> | undefined)?.error === 'unsupported_token_type') refused.add(ctx);
  };
}

/**
 * Post-processing middleware (`provider.use`): answers introspection (RFC 7662) and revocation
 * (RFC 7009) for Gatehouse's JWT access tokens, which oidc-provider refused (see the module).
 */
export function jwtIntrospectionAndRevocation(options: JwtEndpointOptions): Middleware {
  return async (ctx, next) => {
    await next();
    if (!options.refused.has(ctx)) return;
    const oidc = oidcOf(ctx);
    const client = oidc?.client;
    if (oidc === undefined || client === undefined) return;
    if (oidc.route === 'introspection') await introspect(ctx, oidc, client, options);
    else if (oidc.route === 'revocation') await revoke(ctx, oidc, client, options);
  };
}

async function introspect(
  ctx: KoaContextWithOIDC,
  oidc: OIDCContext,
  client: Client,
  options: JwtEndpointOptions,
): Promise<void> {
  const { provider } = options;
  ctx.status = 200;
  // RFC 7662 §2.2: anything not active, for whatever reason, is just `active: false`.
  ctx.body = { active: false };
  const found = await findJwt(provider, options.store, oidc.params?.token);
  if (found === undefined) return;
  const { token } = found;
  if (token.grantId !== undefined) {
    const grant = await provider.Grant.find(token.grantId, { ignoreExpiration: true });
    if (
      grant === undefined ||
      grant.isExpired ||
      grant.clientId !== token.clientId ||
      grant.accountId !== token.accountId
    ) {
      return;
    }
  }
  if (!(await options.introspectionPolicy(ctx, client, token))) return;
  ctx.body = {
    ...token.extra,
    active: true,
    // RFC 9068 §2.2: the subject is the resource owner, or the client itself when there is none.
    sub: token.accountId ?? found.sub,
    client_id: token.clientId,
    exp: token.exp,
    iat: token.iat,
    sid: token.sid,
    iss: provider.issuer,
    jti: token.jti,
    aud: token.aud,
    scope: token.scope === '' ? undefined : token.scope,
    token_type: token.tokenType,
    ...(token.isSenderConstrained() ? { cnf: senderConstraint(token) } : {}),
  };
}

function senderConstraint(token: BaseToken): JsonObject {
  const cnf: JsonObject = {};
  if (token['x5t#S256'] !== undefined) cnf['x5t#S256'] = token['x5t#S256'];
  if (token.jkt !== undefined) cnf.jkt = token.jkt;
  return cnf;
}

async function revoke(
  ctx: KoaContextWithOIDC,
  oidc: OIDCContext,
  client: Client,
  options: JwtEndpointOptions,
): Promise<void> {
  // RFC 7009 §2.2: 200 whether or not the token was valid; the client cannot tell.
  ctx.status = 200;
  ctx.body = '';
  const found = await findJwt(options.provider, options.store, oidc.params?.token);
  if (found === undefined) return;
  const { token } = found;
  let allowed: boolean;
  try {
    allowed = await options.revocationPolicy(ctx, client, token);
  } catch (err) {
    // The policy refuses with an OAuth error (RFC 7009 §2.2.1): render it as oidc-provider would.
    const e = err as Partial<OIDCProviderError>;
    if (typeof e.error !== 'string' || typeof e.statusCode !== 'number') throw err;
    ctx.status = e.statusCode;
    ctx.body = {
      error: e.error,
      ...(e.error_description !== undefined ? { error_description: e.error_description } : {}),
    };
    return;
  }
  if (!allowed) return;
  // Revoking an access token leaves its grant (oidc-provider's revokeGrantPolicy for revocation).
  // The jti goes on the revocation list, so that no client-credentials rule finds the token again.
  await options.store.revoke({ jti: token.jti, exp: token.exp });
  if (found.stored) await token.destroy();
}
