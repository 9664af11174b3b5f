/**
 * The login and consent pages of the authorization code flow, and the user's grants page
 * (docs/oidc.md "Login and consent"), as Fastify routes beside the provider's catch-all:
 *
 * - `GET  /oidc/interaction/{uid}` — the page of the interaction oidc-provider redirected to
 *   (interactions.url): the login page or the consent page, as its prompt says;
 * - `POST /oidc/interaction/{uid}/login` — checks the password (argon2id, UserStore); a failure,
 *   for an unknown user or a wrong password alike, shows LOGIN_FAILED_MESSAGE after the time of
 *   a real check; failures are throttled per account name and per client address (login-throttle.ts);
 * - `POST /oidc/interaction/{uid}/consent` — "Allow" grants what the consent prompt asked for
 *   (the OpenID scopes, and the resource scopes policy allows — `openid`… included, so that
 *   userinfo accepts the access token) and remembers it; "Deny" ends the request with
 *   `access_denied` (RFC 6749 §4.1.2.1);
 * - `GET  /oidc/account/grants` and `POST /oidc/account/grants/revoke` — the remembered grants
 *   of the user signed in to this browser's session, and their revocation (the grant and its
 *   tokens).
 *
 * They are Fastify routes rather than middleware inside oidc-provider's Koa app: the form bodies
 * are parsed by Fastify (the provider's scope has no body parsers), and logs, request ids and
 * metrics name them. oidc-provider is reached through its interaction API (interactionDetails,
 * interactionResult), which reads its signed cookies from the raw request. Every answer ends
 * with a redirect Fastify sends (303, RFC 9110 §15.4.4) or a page.
 *
 * Every form carries a CSRF token (form-tokens.ts) checked before anything else; pages carry
 * securityHeaders.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Interaction, Provider } from 'oidc-provider';
import { Type } from 'typebox';
import type { CatalogHolder } from '../catalog/catalog-holder.js';
import type { GatehouseApp } from '../http/build-app.js';
import type { OidcProviderHolder } from './create-oidc-provider.js';
import { FormTokens } from './form-tokens.js';
import {
  consentPage,
  formTargetOf,
  grantsPage,
  LOGIN_FAILED_MESSAGE,
  loginPage,
  messagePage,
  securityHeaders,
  type GrantLine,
  type ScopeLine,
} from './interaction-pages.js';
import type { LoginThrottleOptions } from './login-throttle.js';
import { allowConsent, clientLabel, listGrants, revokeClientGrants } from './remembered-grants.js';
import { SignInGate } from './sign-in-gate.js';
import { decideScopes } from './token-claims.js';

/** Largest form body accepted by these routes. */
export const FORM_BODY_LIMIT_BYTES = 16 * 1024;

/** Options of registerInteractionRoutes. */
export interface InteractionRoutesOptions {
  holder: OidcProviderHolder;
  users: {
    getUser(name: string): Promise<{ displayName: string | null }>;
    verifyPassword(name: string, password: string): Promise<boolean>;
  };
  catalog: CatalogHolder;
  clock: () => Date;
  /** The mount of the token plane (`/oidc`): the pages' paths start with it. */
  prefix: string;
  /** Throttles of failed sign-ins (sign-in-gate.ts). */
  loginThrottle?: { account?: Partial<LoginThrottleOptions>; address?: Partial<LoginThrottleOptions> };
}

const UidParams = Type.Object({ uid: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) });
const LoginBody = Type.Object({
  csrf: Type.Optional(Type.String()),
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
});
const ConsentBody = Type.Object({ csrf: Type.Optional(Type.String()), decision: Type.Optional(Type.String()) });
const RevokeBody = Type.Object({ csrf: Type.Optional(Type.String()), client_id: Type.Optional(Type.String()) });

/** The OpenID scopes, in the order the consent page lists them. */
const OIDC_SCOPE_ORDER = ['openid', 'profile', 'email', 'offline_access'];

const EXPIRED_TEXT =
  'This sign-in request has expired or is not known here. Go back to the application and start again.';
const FORGED_TEXT = 'This form has expired or did not come from Gatehouse. Go back to the application and start again.';

/** Adds the pages to `app` (an encapsulated plugin with its own form body parser). */
export async function registerInteractionRoutes(app: GatehouseApp, options: InteractionRoutesOptions): Promise<void> {
  const { holder, users, catalog, clock, prefix } = options;
  const tokens = new FormTokens(holder.cookieKeys[0]!);
  const gate = new SignInGate({ users, clock, ...options.loginThrottle });
  const grantsPath = `${prefix}/account/grants`;

  await app.register(async (scope: GatehouseApp) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT_BYTES },
      (_request, body, done) => done(null, parseForm(body as string)),
    );
    scope.addHook('onSend', async (_request, reply, payload) => {
      for (const [name, value] of Object.entries(securityHeaders())) {
        if (!reply.hasHeader(name)) reply.header(name, value);
      }
      return payload;
    });

    const current = async (): Promise<Provider> => (await holder.current()).provider;

    /** The interaction of the request's cookie when it is the one of the URL, else undefined. */
    const interactionOf = async (
      provider: Provider,
      request: FastifyRequest,
      reply: FastifyReply,
      uid: string,
    ): Promise<Interaction | undefined> => {
      let details: Interaction;
      try {
        details = await provider.interactionDetails(request.raw, reply.raw);
      } catch (err) {
        // No interaction cookie, no such interaction (expired), or its session is gone.
        if (err instanceof Error && err.name === 'SessionNotFound') return undefined;
        throw err;
      }
      return details.uid === uid ? details : undefined;
    };

    const sendPage = (reply: FastifyReply, status: number, html: string, formTargets: readonly string[] = []) =>
      reply.code(status).headers(securityHeaders(formTargets)).type('text/html; charset=utf-8').send(html);

    const expired = (reply: FastifyReply) => sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED_TEXT, true));
    const forged = (reply: FastifyReply) => sendPage(reply, 403, messagePage('Form refused', FORGED_TEXT, true));

    /** The interaction's client name, and where its forms may lead (CSP form-action). */
    const clientOf = async (provider: Provider, details: Interaction) => {
      const clientId = String(details.params.client_id ?? '');
      const client = await provider.Client.find(clientId);
      const uris = [details.params.redirect_uri, ...(client?.redirectUris ?? [])];
      const targets = uris.flatMap((u) => (typeof u === 'string' ? (formTargetOf(u) ?? []) : []));
      return { clientId, label: clientLabel(client, clientId), targets };
    };

    const renderLogin = async (
      provider: Provider,
      reply: FastifyReply,
      details: Interaction,
      status: number,
      extra: { username?: string; error?: string } = {},
    ) => {
      const { label, targets } = await clientOf(provider, details);
      return sendPage(
        reply,
        status,
        loginPage({
          client: label,
          action: `${prefix}/interaction/${details.uid}/login`,
          csrf: tokens.issue('interaction', details.uid),
          ...extra,
        }),
        targets,
      );
    };

    const renderConsent = async (provider: Provider, reply: FastifyReply, details: Interaction) => {
      const { label, targets } = await clientOf(provider, details);
      const accountId = details.session?.accountId ?? '';
      const requested = String(details.params.scope ?? '')
        .split(' ')
        .filter((s) => s !== '');
      const oidcScopes = OIDC_SCOPE_ORDER.filter((s) => requested.includes(s));
      const permissionScopes = requested.filter((s) => !OIDC_SCOPE_ORDER.includes(s));
      const permissions: ScopeLine[] = [];
      for (const resource of resourcesOf(details)) {
        const api = await holder.findTokenApi(resource);
        // The same decision the token endpoint makes for the user (token-claims.ts).
        const decision =
          api === undefined
            ? { granted: [], rejected: permissionScopes }
            : decideScopes(catalog.catalog, accountId, api, permissionScopes, clock().getTime());
        const granted = new Set(decision.granted);
        const known = new Set(api?.scopes);
        for (const s of permissionScopes) {
          permissions.push({ scope: s, api: resource, granted: granted.has(s), known: known.has(s) });
        }
      }
      return sendPage(
        reply,
        200,
        consentPage({
          client: label,
          account: await accountLabel(accountId),
          action: `${prefix}/interaction/${details.uid}/consent`,
          csrf: tokens.issue('interaction', details.uid),
          oidcScopes,
          permissions,
          grantsUrl: grantsPath,
        }),
        targets,
      );
    };

    const accountLabel = async (accountId: string): Promise<string> => {
      const name = accountId.startsWith('user.') ? accountId.slice('user.'.length) : accountId;
      try {
        return (await users.getUser(name)).displayName ?? name;
      } catch {
        return name;
      }
    };

    /** Sends the browser on to oidc-provider with the interaction's result. */
    const finish = async (
      provider: Provider,
      request: FastifyRequest,
      reply: FastifyReply,
      result: Parameters<Provider['interactionResult']>[2],
    ) => {
      const returnTo = await provider.interactionResult(request.raw, reply.raw, result, {
        mergeWithLastSubmission: !('error' in result),
      });
      return reply.code(303).headers(securityHeaders()).header('location', returnTo).send();
    };

    scope.get(`${prefix}/interaction/:uid`, { schema: { hide: true, params: UidParams } }, async (request, reply) => {
      const provider = await current();
      const details = await interactionOf(provider, request, reply, request.params.uid);
      if (details === undefined) return expired(reply);
      if (details.prompt.name === 'login') {
        // OIDC Core §3.1.2.1: login_hint may prefill the username.
        const hint = details.params.login_hint;
        return renderLogin(
          provider,
          reply,
          details,
          200,
          typeof hint === 'string' ? { username: hint.slice(0, 256) } : {},
        );
      }
      if (details.prompt.name === 'consent') return renderConsent(provider, reply, details);
      return expired(reply);
    });

    scope.post(
      `${prefix}/interaction/:uid/login`,
      { schema: { hide: true, params: UidParams, body: LoginBody } },
      async (request, reply) => {
        const { uid } = request.params;
        if (!tokens.verify('interaction', uid, request.body.csrf)) return forged(reply);
        const provider = await current();
        const details = await interactionOf(provider, request, reply, uid);
        if (details === undefined || details.prompt.name !== 'login') return expired(reply);
        const username = request.body.username ?? '';
        const result = await gate.attempt(username, request.body.password ?? '', request.ip);
        if (result.outcome === 'throttled') {
          const seconds = result.retryAfterSeconds;
          request.log.info({ retryAfterSeconds: seconds }, 'oidc: sign-in throttled');
          reply.header('retry-after', String(seconds));
          return renderLogin(provider, reply, details, 429, {
            username,
            error: `Too many failed sign-in attempts. Wait ${seconds} second${seconds === 1 ? '' : 's'}, then try again.`,
          });
        }
        if (result.outcome === 'failed') {
          request.log.info('oidc: sign-in failed');
          return renderLogin(provider, reply, details, 400, { username, error: LOGIN_FAILED_MESSAGE });
        }
        const { accountId } = result;
        request.log.info({ accountId }, 'oidc: signed in');
        return finish(provider, request, reply, { login: { accountId } });
      },
    );

    scope.post(
      `${prefix}/interaction/:uid/consent`,
      { schema: { hide: true, params: UidParams, body: ConsentBody } },
      async (request, reply) => {
        const { uid } = request.params;
        if (!tokens.verify('interaction', uid, request.body.csrf)) return forged(reply);
        const provider = await current();
        const details = await interactionOf(provider, request, reply, uid);
        const accountId = details?.session?.accountId;
        if (details === undefined || details.prompt.name !== 'consent' || accountId === undefined)
          return expired(reply);
        const { decision } = request.body;
        if (decision === 'deny') {
          // RFC 6749 §4.1.2.1: the resource owner denied the request.
          return finish(provider, request, reply, {
            error: 'access_denied',
            error_description: 'the user denied the request',
          });
        }
        if (decision !== 'allow') return sendPage(reply, 400, messagePage('Choose', 'Choose Allow or Deny.', true));
        const grantId = await allowConsent(provider, holder.rememberedGrants, details);
        if (grantId === undefined) return expired(reply);
        request.log.info({ accountId, clientId: details.params.client_id }, 'oidc: consent given');
        return finish(provider, request, reply, { consent: { grantId } });
      },
    );

    scope.get(grantsPath, { schema: { hide: true } }, async (request, reply) => {
      const provider = await current();
      const session = await provider.Session.get(provider.createContext(request.raw, reply.raw));
      const accountId = session.accountId;
      if (accountId === undefined) {
        return sendPage(
          reply,
          200,
          messagePage(
            'Not signed in',
            'You are not signed in to Gatehouse in this browser. Sign in through an application first.',
          ),
        );
      }
      const grants: GrantLine[] = (await listGrants(provider, holder.rememberedGrants, accountId)).map((g) => ({
        clientId: g.clientId,
        client: clientLabel(g.client, g.clientId),
        scopes: g.scopes,
        since: g.iat === undefined ? undefined : new Date(g.iat * 1000),
      }));
      return sendPage(
        reply,
        200,
        grantsPage({
          account: await accountLabel(accountId),
          grants,
          action: `${grantsPath}/revoke`,
          csrf: tokens.issue('grants', session.uid),
        }),
      );
    });

    scope.post(`${grantsPath}/revoke`, { schema: { hide: true, body: RevokeBody } }, async (request, reply) => {
      const provider = await current();
      const session = await provider.Session.get(provider.createContext(request.raw, reply.raw));
      const accountId = session.accountId;
      if (accountId === undefined || !tokens.verify('grants', session.uid, request.body.csrf)) return forged(reply);
      const clientId = request.body.client_id ?? '';
      await revokeClientGrants(provider, holder.Adapter, holder.rememberedGrants, session, clientId);
      request.log.info({ accountId, clientId }, 'oidc: grant revoked by the user');
      return reply.code(303).header('location', grantsPath).send();
    });
  });
}

/** The resource indicators of an interaction's request (after oidc-provider applied the default). */
function resourcesOf(details: Interaction): string[] {
  const resource = details.params.resource;
  if (typeof resource === 'string') return [resource];
  return Array.isArray(resource) ? resource.filter((r): r is string => typeof r === 'string') : [];
}

/** An urlencoded form as an object without prototype; of a repeated field, the first value counts. */
function parseForm(body: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, value] of new URLSearchParams(body)) {
    if (!(key in out)) out[key] = value;
  }
  return out;
}
