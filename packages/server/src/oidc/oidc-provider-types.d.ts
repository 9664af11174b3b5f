/**
 * The few types Gatehouse needs from oidc-provider 9, which ships none (DefinitelyTyped's
 * @types/oidc-provider is not used: it lags the package and would pin a second description of
 * it). Only what the token plane touches is declared; everything else oidc-provider accepts is
 * left out on purpose, so that reaching for it is a visible change to this file.
 */

declare module 'oidc-provider' {
  import type { KeyObject } from 'node:crypto';
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** A JSON object as oidc-provider stores and passes it. */
  export type JsonObject = Record<string, unknown>;

  /** The error classes of `errors` (lib/helpers/errors.js): `error` is the RFC 6749 §5.2 code. */
  export class OIDCProviderError extends Error {
    readonly error: string;
    error_description?: string;
    readonly status: number;
    readonly statusCode: number;
    readonly expose: boolean;
  }

  /** An error class whose constructor takes an optional description. */
  export type DescribedError = new (description?: string, options?: { cause?: unknown }) => OIDCProviderError;

  /** lib/helpers/errors.js. */
  export const errors: {
    readonly OIDCProviderError: typeof OIDCProviderError;
    readonly InvalidClient: DescribedError;
    readonly InvalidGrant: new (options?: { cause?: unknown }) => OIDCProviderError;
    readonly InvalidRequest: DescribedError;
    readonly InvalidTarget: DescribedError;
    readonly InvalidToken: new (options?: string | { cause?: unknown }) => OIDCProviderError;
  };

  /** A client as oidc-provider holds it (lib/models/client.js); metadata in camelCase. */
  export interface Client {
    readonly clientId: string;
    /** For Gatehouse clients: the argon2id hash of the secret (see oidc-clients.ts). */
    readonly clientSecret?: string;
    readonly clientAuthMethod: string;
    readonly redirectUris: readonly string[];
    readonly [metadata: string]: unknown;
    compareClientSecret(actual: string): Promise<boolean> | boolean;
    grantTypeAllowed(grantType: string): boolean;
  }

  /** The Client class: Gatehouse overrides `compareClientSecret` on its prototype. */
  export interface ClientClass {
    readonly prototype: Client;
    find(id: string): Promise<Client | undefined>;
  }

  /** A resource server (RFC 8707 resource) as getResourceServerInfo describes it. */
  export interface ResourceServerInfo {
    /** The scopes this resource server may receive, space-separated (may be empty). */
    scope: string;
    audience?: string;
    accessTokenTTL?: number;
    accessTokenFormat?: 'opaque' | 'jwt';
    jwt?: { sign?: { alg?: string; kid?: string } };
  }

  /** lib/helpers/resource_server.js. */
  export interface ResourceServer {
    readonly audience?: string;
    readonly scope: string;
    /** `scope` as a set. */
    readonly scopes: Set<string>;
    readonly accessTokenTTL?: number;
    identifier(): string;
  }

  /** What every token model instance has (lib/models/base_token.js, access_token.js). */
  export interface BaseToken {
    jti: string;
    readonly kind: string;
    iat?: number;
    exp?: number;
    clientId?: string;
    accountId?: string;
    grantId?: string;
    gty?: string;
    scope?: string;
    aud?: string | string[];
    sid?: string;
    sessionUid?: string;
    expiresWithSession?: boolean;
    extra?: JsonObject;
    rar?: unknown;
    claims?: unknown;
    jkt?: string;
    'x5t#S256'?: string;
    readonly resourceServer?: ResourceServer;
    readonly client?: Client;
    readonly isValid: boolean;
    readonly tokenType: string;
    readonly scopes: Set<string>;
    isSenderConstrained(): boolean;
    destroy(): Promise<void>;
  }

  /** A token model class: `find` by value, `instantiate` from a stored payload. */
  export interface TokenClass<T extends BaseToken = BaseToken> {
    find(value: string, options?: { ignoreExpiration?: boolean }): Promise<T | undefined>;
    instantiate(payload: JsonObject): T;
  }

  /** The scopes and claims a grant holds, or has rejected (lib/models/grant.js). */
  export interface GrantScopes {
    openid?: { scope?: string; claims?: string[] };
    /** Scopes by resource indicator, space-separated. */
    resources?: Record<string, string>;
  }

  /** lib/models/grant.js: what an account allowed a client. `jti` is set by the first save. */
  export interface Grant extends GrantScopes {
    readonly jti: string;
    readonly accountId?: string;
    readonly clientId?: string;
    readonly iat?: number;
    readonly exp?: number;
    readonly isExpired: boolean;
    rejected?: GrantScopes;
    getOIDCScope(): string;
    getRejectedOIDCScope(): string;
    getResourceScope(resource: string): string;
    getRejectedResourceScope(resource: string): string;
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    /** Saves the grant (its TTL is `ttl.Grant` from its first save); returns its id. */
    save(): Promise<string>;
  }

  /** The Grant class. */
  export interface GrantClass {
    new (init: { accountId: string; clientId: string }): Grant;
    find(id: string, options?: { ignoreExpiration?: boolean }): Promise<Grant | undefined>;
  }

  /** lib/models/session.js. */
  export interface Session {
    readonly uid: string;
    readonly accountId?: string;
    grantIdFor(clientId: string): string | undefined;
  }

  /**
   * lib/models/interaction.js: a pending interaction (login or consent), as interactionDetails
   * returns it.
   */
  export interface Interaction {
    readonly uid: string;
    /** Epoch seconds. */
    readonly exp: number;
    readonly returnTo: string;
    readonly prompt: {
      readonly name: string;
      readonly reasons: readonly string[];
      readonly details: {
        readonly missingOIDCScope?: readonly string[];
        readonly missingOIDCClaims?: readonly string[];
        readonly missingResourceScopes?: Readonly<Record<string, readonly string[]>>;
        readonly [detail: string]: unknown;
      };
    };
    /** The authorization request's parameters (after defaults: `resource` holds the default). */
    readonly params: Readonly<Record<string, unknown>>;
    /** The signed-in account, when there is one. */
    readonly session?: { readonly accountId: string; readonly uid?: string };
    /** The grant the request found, when it had been saved. */
    readonly grantId?: string;
  }

  /** What an interaction ends with (interactionResult). */
  export type InteractionResult =
    | { login: { accountId: string; remember?: boolean } }
    | { consent: { grantId: string } }
    | { error: string; error_description?: string };

  /** An account as findAccount returns it. */
  export interface Account {
    accountId: string;
    claims(use: string, scope: string, claims: JsonObject, rejected: string[]): Promise<JsonObject> | JsonObject;
  }

  /** The request's OIDC context (lib/helpers/oidc_context.js); absent on requests no route matched. */
  export interface OIDCContext {
    readonly route?: string;
    readonly params?: Readonly<Record<string, unknown>>;
    readonly client?: Client;
    readonly account?: Account;
    readonly provider: Provider;
    /** The signed-in session (authorization and resume routes). */
    readonly session?: Session;
    /** The interaction's result (resume route). */
    readonly result?: { readonly consent?: { readonly grantId?: string } };
    /** The request's resource servers, by indicator, as getResourceServerInfo described them. */
    readonly resourceServers: Readonly<Record<string, ResourceServer>>;
    /** The request's `scope`, as a set; and its OpenID scopes (those in `scopes`) only. */
    readonly requestParamScopes: Set<string>;
    readonly requestParamOIDCScopes: Set<string>;
    /** Claims requested with the `claims` parameter. */
    readonly requestParamClaims: Set<string>;
    readonly entities: {
      readonly Account?: Account;
      readonly AccessToken?: BaseToken;
      readonly AuthorizationCode?: BaseToken & { readonly resource?: string | string[] };
      readonly RefreshToken?: BaseToken & { readonly resource?: string | string[] };
      readonly Grant?: Grant;
      readonly Session?: Session;
      readonly [entity: string]: unknown;
    };
    entity(key: string, value: unknown): void;
  }

  /** The Koa context oidc-provider passes to configuration functions and middleware. */
  export interface KoaContextWithOIDC {
    readonly req: IncomingMessage;
    readonly res: ServerResponse;
    readonly oidc: OIDCContext;
    readonly method: string;
    readonly path: string;
    status: number;
    body: unknown;
    type: string;
    set(field: string, value: string): void;
  }

  /** A middleware of `provider.use` (Koa). */
  export type Middleware = (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>;

  /** The adapter contract (example/my_adapter.js). */
  export interface Adapter {
    upsert(id: string, payload: JsonObject, expiresIn?: number): Promise<void>;
    find(id: string): Promise<JsonObject | undefined>;
    findByUid(uid: string): Promise<JsonObject | undefined>;
    findByUserCode(userCode: string): Promise<JsonObject | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  /** The `adapter` option: a class oidc-provider instantiates once per model name. */
  export type AdapterConstructor = new (model: string) => Adapter;

  /** Client metadata (RFC 7591 §2 names), as the Client adapter's `find` returns it. */
  export type ClientMetadata = JsonObject & { client_id: string };

  /**
   * The configuration (docs/README.md "Configuration options"): the members Gatehouse sets, each
   * optional; see create-oidc-provider.ts for the values and why.
   */
  export interface Configuration {
    adapter?: AdapterConstructor;
    clients?: ClientMetadata[];
    jwks?: { keys: (JsonObject | ExternalSigningKey)[] };
    cookies?: { keys?: (string | Buffer)[]; long?: JsonObject; short?: JsonObject };
    claims?: Record<string, string[]>;
    scopes?: string[];
    responseTypes?: string[];
    subjectTypes?: string[];
    clientAuthMethods?: string[];
    clientDefaults?: JsonObject;
    clockTolerance?: number;
    enabledJWA?: Record<string, string[]>;
    extraClientMetadata?: {
      properties: string[];
      validator?: (ctx: KoaContextWithOIDC | undefined, key: string, value: unknown, metadata: JsonObject) => void;
    };
    features?: Record<string, JsonObject>;
    formats?: {
      customizers?: {
        jwt?: (
          ctx: KoaContextWithOIDC | undefined,
          token: BaseToken,
          jwt: { header: JsonObject | undefined; payload: JsonObject },
        ) => Promise<void> | void;
      };
    };
    extraTokenClaims?: (ctx: KoaContextWithOIDC | undefined, token: BaseToken) => Promise<JsonObject | undefined>;
    findAccount?: (ctx: KoaContextWithOIDC, sub: string, token?: BaseToken) => Promise<Account | undefined>;
    loadExistingGrant?: (ctx: KoaContextWithOIDC) => Promise<Grant | undefined>;
    issueRefreshToken?: (ctx: KoaContextWithOIDC, client: Client, code: BaseToken) => Promise<boolean> | boolean;
    interactions?: { url?: (ctx: KoaContextWithOIDC, interaction: { uid: string }) => Promise<string> | string };
    pkce?: JsonObject;
    renderError?: (ctx: KoaContextWithOIDC, out: Record<string, unknown>, error: unknown) => Promise<void>;
    rotateRefreshToken?: (ctx: KoaContextWithOIDC) => boolean;
    clientBasedCORS?: (ctx: KoaContextWithOIDC, origin: string, client: Client) => boolean;
    ttl?: Record<string, number | ((ctx: KoaContextWithOIDC | undefined, token: BaseToken, client?: Client) => number)>;
  }

  /**
   * A signing key whose private part oidc-provider never sees (features.externalSigningSupport):
   * `keyObject()` gives the public key, `sign(data)` the JWS signature of `data`.
   */
  export class ExternalSigningKey {
    get kid(): string;
    set kid(value: string);
    get alg(): string;
    set alg(value: string);
    keyObject(): KeyObject;
    sign(data: Buffer): Promise<Uint8Array>;
  }

  /** The provider: a Koa application. */
  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    /** Koa's `proxy`: trust X-Forwarded-* headers. */
    proxy: boolean;
    readonly Client: ClientClass;
    readonly AccessToken: TokenClass;
    readonly ClientCredentials: TokenClass;
    readonly Grant: GrantClass;
    readonly Session: {
      findByUid(uid: string): Promise<Session | undefined>;
      /** The session of the request's cookie (a new, unsaved one without an account when none). */
      get(ctx: unknown): Promise<Session>;
    };
    /** A Koa context for a raw request (reads oidc-provider's signed cookies). */
    createContext(req: IncomingMessage, res: ServerResponse): unknown;
    /**
     * The interaction of the request's interaction cookie. Throws an OIDCProviderError
     * (`invalid_request`, SessionNotFound) when there is no cookie, no such interaction or its
     * session is gone.
     */
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    /** Stores the interaction's result; returns the URL to resume the authorization at. */
    interactionResult(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResult,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<string>;
    /** The context of the request being handled (AsyncLocalStorage), if any. */
    static readonly ctx: KoaContextWithOIDC | undefined;
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    use(middleware: Middleware): this;
    /** `server_error`, and `<route>.error` for the OAuth errors of a route (shared/error_handler.js). */
    on(
      event: 'server_error' | 'introspection.error' | 'revocation.error' | 'grant.error' | 'userinfo.error',
      listener: (ctx: KoaContextWithOIDC, err: unknown) => void,
    ): this;
    on(event: 'error', listener: (err: unknown, ctx: KoaContextWithOIDC | undefined) => void): this;
  }

  export default Provider;
}
