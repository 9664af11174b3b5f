/**
 * Remembered grants (docs/oidc.md "Remembered grants"): what a user allowed a client, kept so that the
 * next authorization of that client asks again only for what is new — on any browser, not only
 * in the session that consented — and listed on the user's grants page, where it can be revoked.
 *
 * oidc-provider keeps a `Grant` per consent and finds it through the session (the session's
 * `authorizations[clientId].grantId`). Gatehouse adds a pointer per (account, client) in
 * `oidc_payloads` (model `GatehouseRememberedGrant`, id `<accountId> <clientId>` — account names
 * hold no space —, `uid` the account, so that an account's pointers are one indexed query),
 * expiring with its grant. The pointer is only a hint: the Grant must still exist and name the
 * same account and client, or nothing is remembered.
 *
 * `loadExistingGrant` (oidc-provider's hook, run at every authorization of a signed-in user)
 * also
 * - skips consent for **first-party** clients (`firstParty` on the client): their grant is
 *   created, or topped up, with everything requested that policy allows;
 * - records what policy **denies** this request as the grant's rejected resource scopes, replacing
 *   what it held: the token response's `scope_rejected` lists them (create-oidc-provider.ts
 *   scopeRejected), and a scope denied before but allowed now is no longer "encountered", so the
 *   consent page asks for it.
 *
 * And the grant operations of the pages: allowConsent ("Allow"), listGrants and
 * revokeClientGrants (the grants page).
 */

import type { Kysely } from 'kysely';
import type { Client, Grant, Interaction, KoaContextWithOIDC, OIDCContext, Provider, Session } from 'oidc-provider';
import type { Database } from '../storage/schema.js';
import { MAX_OIDC_KEY_LENGTH, type OidcAdapterClass } from './database-adapter.js';

/** The `oidc_payloads` model of the pointers. */
export const REMEMBERED_GRANT_MODEL = 'GatehouseRememberedGrant';

/** Most remembered grants listed for one account. */
export const MAX_LISTED_GRANTS = 200;

/** A pointer from (account, client) to a Grant. */
export interface RememberedGrant {
  readonly accountId: string;
  readonly clientId: string;
  readonly grantId: string;
}

/** Whether oidc-provider's client is a first-party client (`firstParty` on the OAuth client). */
export function isFirstPartyClient(client: Readonly<Record<string, unknown>> | undefined): boolean {
  return client?.gatehouse_first_party === true;
}

/** The pointers, in `oidc_payloads`. */
export class RememberedGrants {
  readonly #db: Kysely<Database>;
  readonly #clock: () => Date;
  readonly #ttlMs: number;

  /** `grantTtlSeconds`: how long a grant lives (oidc-provider's `ttl.Grant`), and its pointer. */
  constructor(db: Kysely<Database>, clock: () => Date, grantTtlSeconds: number) {
    this.#db = db;
    this.#clock = clock;
    this.#ttlMs = grantTtlSeconds * 1000;
  }

  /**
   * Remembers `grantId` as what `accountId` allowed `clientId`, for the grant's lifetime from now,
   * replacing any earlier pointer. Does nothing for keys no row can hold; passes database errors.
   */
  async remember(accountId: string, clientId: string, grantId: string): Promise<void> {
    const id = pointerId(accountId, clientId);
    if (id === undefined || !isKey(grantId)) return;
    const row = {
      model: REMEMBERED_GRANT_MODEL,
      id,
      payload: JSON.stringify({ accountId, clientId, grantId }),
      grant_id: null,
      user_code: null,
      uid: accountId,
      expires_at: this.#clock().getTime() + this.#ttlMs,
      consumed_at: null,
    };
    await this.#db
      .insertInto('oidc_payloads')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['model', 'id']).doUpdateSet({ payload: row.payload, uid: row.uid, expires_at: row.expires_at }),
      )
      .execute();
  }

  /** The grant id remembered for `accountId` and `clientId`, or undefined. */
  async find(accountId: string, clientId: string): Promise<string | undefined> {
    const id = pointerId(accountId, clientId);
    if (id === undefined) return undefined;
    const row = await this.#db
      .selectFrom('oidc_payloads')
      .select('payload')
      .where('model', '=', REMEMBERED_GRANT_MODEL)
      .where('id', '=', id)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', this.#clock().getTime())]))
      .executeTakeFirst();
    return row === undefined ? undefined : parsePointer(row.payload)?.grantId;
  }

  /** The grants remembered for `accountId` (at most MAX_LISTED_GRANTS), by client id. */
  async list(accountId: string): Promise<RememberedGrant[]> {
    if (!isKey(accountId)) return [];
    const rows = await this.#db
      .selectFrom('oidc_payloads')
      .select('payload')
      .where('model', '=', REMEMBERED_GRANT_MODEL)
      .where('uid', '=', accountId)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', this.#clock().getTime())]))
      .orderBy('id')
      .limit(MAX_LISTED_GRANTS)
      .execute();
    return rows.flatMap((r) => parsePointer(r.payload) ?? []).filter((p) => p.accountId === accountId);
  }

  /** Forgets the pointer of `accountId` and `clientId`. */
  async forget(accountId: string, clientId: string): Promise<void> {
    const id = pointerId(accountId, clientId);
    if (id === undefined) return;
    await this.#db
      .deleteFrom('oidc_payloads')
      .where('model', '=', REMEMBERED_GRANT_MODEL)
      .where('id', '=', id)
      .execute();
  }
}

/**
 * "Allow" on the consent page of `interaction`: adds what its consent prompt asked for to the
 * account's grant for the client (a new one when there is none) — the OpenID scopes and claims,
 * and per resource server the scopes it offers the user (the policy's decision,
 * getResourceServerInfo, with the requested OpenID scopes among them: userinfo wants `openid` on
 * the access token) — saves and remembers it. Returns the grant id; undefined when the
 * interaction has no signed-in account.
 */
export async function allowConsent(
  provider: Provider,
  remembered: RememberedGrants,
  interaction: Interaction,
): Promise<string | undefined> {
  const accountId = interaction.session?.accountId;
  const clientId = interaction.params.client_id;
  if (accountId === undefined || typeof clientId !== 'string') return undefined;
  const found = interaction.grantId === undefined ? undefined : await provider.Grant.find(interaction.grantId);
  const grant =
    found !== undefined && found.accountId === accountId && found.clientId === clientId
      ? found
      : new provider.Grant({ accountId, clientId });
  const asked = interaction.prompt.details;
  if (asked.missingOIDCScope !== undefined) grant.addOIDCScope(asked.missingOIDCScope.join(' '));
  if (asked.missingOIDCClaims !== undefined) grant.addOIDCClaims([...asked.missingOIDCClaims]);
  for (const [resource, scopes] of Object.entries(asked.missingResourceScopes ?? {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }
  const grantId = await grant.save();
  await remembered.remember(accountId, clientId, grantId);
  return grantId;
}

/** A remembered grant as the grants page lists it. */
export interface GrantSummary {
  readonly clientId: string;
  readonly client: Client | undefined;
  /** What it allows: OpenID scopes, then each resource's scopes, without repeats. */
  readonly scopes: readonly string[];
  /** When it was made (epoch seconds). */
  readonly iat: number | undefined;
}

/** The live grants remembered for `accountId`. Passes database errors through. */
export async function listGrants(
  provider: Provider,
  remembered: RememberedGrants,
  accountId: string,
): Promise<GrantSummary[]> {
  const out: GrantSummary[] = [];
  for (const pointer of await remembered.list(accountId)) {
    const grant = await provider.Grant.find(pointer.grantId);
    if (grant === undefined || grant.accountId !== accountId || grant.clientId !== pointer.clientId) continue;
    const scopes = new Set(grant.getOIDCScope().split(' '));
    for (const resource of Object.keys(grant.resources ?? {})) {
      for (const s of grant.getResourceScope(resource).split(' ')) scopes.add(s);
    }
    scopes.delete('');
    out.push({
      clientId: pointer.clientId,
      client: await provider.Client.find(pointer.clientId),
      scopes: [...scopes],
      iat: grant.iat,
    });
  }
  return out;
}

/**
 * "Revoke" on the grants page: revokes what the session's account allowed `clientId` — the
 * remembered grant, and the one the session holds for the client if it is another — with their
 * token families, and forgets it. Grants of other accounts are never touched.
 */
export async function revokeClientGrants(
  provider: Provider,
  Adapter: OidcAdapterClass,
  remembered: RememberedGrants,
  session: Session,
  clientId: string,
): Promise<void> {
  const accountId = session.accountId;
  if (accountId === undefined || clientId === '') return;
  const ids = new Set<string>();
  const pointer = await remembered.find(accountId, clientId);
  if (pointer !== undefined) ids.add(pointer);
  const inSession = session.grantIdFor(clientId);
  if (inSession !== undefined) ids.add(inSession);
  for (const grantId of ids) {
    const grant = await provider.Grant.find(grantId, { ignoreExpiration: true });
    if (grant !== undefined && grant.accountId === accountId && grant.clientId === clientId) {
      await revokeGrant(Adapter, grantId);
    }
  }
  await remembered.forget(accountId, clientId);
}

/**
 * Revokes a grant and its token family — codes, refresh tokens and the records of its JWT access
 * tokens (GRANT_BOUND_MODELS) — then the grant itself.
 */
export async function revokeGrant(Adapter: OidcAdapterClass, grantId: string): Promise<void> {
  // The database adapter deletes every grant-bound model's rows, whichever model it is asked for.
  await new Adapter('AccessToken').revokeByGrantId(grantId);
  await new Adapter('Grant').destroy(grantId);
}

/**
 * oidc-provider's `loadExistingGrant` (see the module comment): the grant of the interaction's
 * consent, else the session's, else the remembered one — each only when it still exists for this
 * account and client; for a first-party client, a grant of everything allowed even when none
 * exists. Saves the grant when it changed.
 */
export function createLoadExistingGrant(
  remembered: RememberedGrants,
): (ctx: KoaContextWithOIDC) => Promise<Grant | undefined> {
  return async (ctx) => {
    const { oidc } = ctx;
    const client = oidc.client;
    const accountId = oidc.session?.accountId;
    if (client === undefined || accountId === undefined) return undefined;
    const clientId = client.clientId;
    let grant =
      (await findOwnGrant(
        oidc,
        oidc.result?.consent?.grantId ?? oidc.session?.grantIdFor(clientId),
        accountId,
        clientId,
      )) ?? (await findOwnGrant(oidc, await remembered.find(accountId, clientId), accountId, clientId));
    const created = grant === undefined && isFirstPartyClient(client);
    if (created) grant = new oidc.provider.Grant({ accountId, clientId });
    if (grant === undefined) return undefined;
    const before = scopesOf(grant);
    if (isFirstPartyClient(client)) grantEverythingAllowed(grant, oidc);
    recordPolicyRejections(grant, oidc);
    if (created || scopesOf(grant) !== before) {
      const grantId = await grant.save();
      if (created) await remembered.remember(accountId, clientId, grantId);
    }
    return grant;
  };
}

async function findOwnGrant(
  oidc: OIDCContext,
  grantId: string | undefined,
  accountId: string,
  clientId: string,
): Promise<Grant | undefined> {
  if (grantId === undefined) return undefined;
  const grant = await oidc.provider.Grant.find(grantId);
  return grant !== undefined && grant.accountId === accountId && grant.clientId === clientId ? grant : undefined;
}

/** First-party clients: everything requested that the resource servers offer the user. */
function grantEverythingAllowed(grant: Grant, oidc: OIDCContext): void {
  const oidcScopes = [...oidc.requestParamOIDCScopes];
  if (oidcScopes.length > 0) grant.addOIDCScope(oidcScopes.join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length > 0) grant.addOIDCClaims(claims);
  for (const [indicator, server] of Object.entries(oidc.resourceServers)) {
    const allowed = [...oidc.requestParamScopes].filter((s) => s !== '' && server.scopes.has(s));
    if (allowed.length > 0) grant.addResourceScope(indicator, allowed.join(' '));
  }
}

/**
 * The requested permission scopes each resource server does not offer the user now (its scopes
 * are the policy's decision for the user, getResourceServerInfo) become the grant's rejected
 * scopes for it, replacing earlier ones.
 */
function recordPolicyRejections(grant: Grant, oidc: OIDCContext): void {
  const requested = [...oidc.requestParamScopes].filter((s) => s !== '' && !oidc.requestParamOIDCScopes.has(s));
  const rejected = { ...grant.rejected?.resources };
  for (const [indicator, server] of Object.entries(oidc.resourceServers)) {
    const denied = requested.filter((s) => !server.scopes.has(s));
    if (denied.length > 0) rejected[indicator] = denied.join(' ');
    else delete rejected[indicator];
  }
  if (Object.keys(rejected).length > 0 || grant.rejected?.resources !== undefined) {
    grant.rejected = { ...grant.rejected, resources: rejected };
  }
}

function scopesOf(grant: Grant): string {
  return JSON.stringify([grant.openid, grant.resources, grant.rejected]);
}

function pointerId(accountId: string, clientId: string): string | undefined {
  if (!isKey(accountId) || !isKey(clientId) || accountId.includes(' ')) return undefined;
  const id = `${accountId} ${clientId}`;
  return id.length <= MAX_OIDC_KEY_LENGTH ? id : undefined;
}

function isKey(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_OIDC_KEY_LENGTH && !value.includes('\0');
}

function parsePointer(payload: string): RememberedGrant | undefined {
  try {
    const p = JSON.parse(payload) as Partial<RememberedGrant>;
    return typeof p.accountId === 'string' && typeof p.clientId === 'string' && typeof p.grantId === 'string'
      ? { accountId: p.accountId, clientId: p.clientId, grantId: p.grantId }
      : undefined;
  } catch {
    return undefined;
  }
}

/** A client's display name: its `client_name`, else its id. */
export function clientLabel(client: Client | undefined, clientId: string): string {
  const name = client?.clientName;
  return typeof name === 'string' && name !== '' ? name : clientId;
}
