/**
 * The little OAuth 2.0 client `gatehouse login` needs, with fetch and node:crypto: discovery
 * (RFC 8414 / OIDC Discovery), PKCE S256 (RFC 7636), the authorization request (RFC 6749 §4.1.1
 * with RFC 8707's `resource`), token requests (code, refresh token, client credentials with
 * client_secret_basic) and revocation (RFC 7009).
 *
 * Not openid-client: that is a development dependency of the tests, and the CLI needs none of
 * what it adds — it uses the access token only as a bearer token for the server it logged in to,
 * and never the ID token, so there is no ID token to validate; the checks that matter to a
 * native app (state, `iss` per RFC 9207, PKCE) are a few lines each (loopback-redirect.ts,
 * login-command.ts).
 */

import { createHash, randomBytes } from 'node:crypto';
import { CommandError } from './run-operator-command.js';

/** The authorization server metadata the CLI uses. */
export interface ServerMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  revocation_endpoint?: string;
  /** RFC 9207: the server puts `iss` in its authorization responses. */
  authorization_response_iss_parameter_supported?: boolean;
  code_challenge_methods_supported?: string[];
}

/** A successful token response (RFC 6749 §5.1). */
export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in?: number;
  refresh_token?: string;
  scope?: string;
  scope_rejected?: string;
}

/** An OAuth error response (RFC 6749 §5.2), or a token endpoint answering something else. */
export class OAuthError extends Error {
  constructor(
    readonly error: string,
    readonly description: string | undefined,
    readonly status: number,
  ) {
    super(description === undefined ? error : `${error} (${description})`);
    this.name = 'OAuthError';
  }
}

/** The token issuer of a server: `{server}/oidc` (docs/oidc.md). */
export function issuerOf(server: string): string {
  return `${server}/oidc`;
}

/** The audience of the server's management API (`/v1`) or decision API (`/pdp`). */
export function audienceOf(server: string, api: 'management' | 'pdp'): string {
  return `${server}/${api === 'pdp' ? 'pdp' : 'v1'}`;
}

/** fetch, with a network failure (or no answer within 30 s) turned into a CommandError naming the URL. */
export async function request(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new CommandError(`cannot reach ${url}: ${why}`);
  }
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/**
 * Reads `{server}/oidc/.well-known/openid-configuration`. The issuer must be `{server}/oidc`
 * (RFC 8414 §3.3: the URL discovery was read from), and the endpoints must be on its origin.
 */
export async function discover(server: string): Promise<ServerMetadata> {
  const issuer = issuerOf(server);
  const url = `${issuer}/.well-known/openid-configuration`;
  const res = await request(url, { headers: { accept: 'application/json' } });
  if (!res.ok) {
    throw new CommandError(
      `${url} answered ${res.status}: is ${server} a Gatehouse server (GATEHOUSE_PUBLIC_URL), with its token plane?`,
    );
  }
  let metadata: Partial<ServerMetadata>;
  try {
    metadata = (await res.json()) as Partial<ServerMetadata>;
  } catch {
    throw new CommandError(`${url} did not answer JSON: is ${server} a Gatehouse server?`);
  }
  if (metadata.issuer !== issuer) {
    const other = typeof metadata.issuer === 'string' ? metadata.issuer.replace(/\/oidc$/, '') : undefined;
    throw new CommandError(
      other !== undefined && other !== metadata.issuer
        ? `the server at ${server} calls itself ${other} (its GATEHOUSE_PUBLIC_URL): use --server ${other}`
        : `${url} names the issuer ${String(metadata.issuer)}, not ${issuer}`,
    );
  }
  for (const key of ['authorization_endpoint', 'token_endpoint'] as const) {
    if (typeof metadata[key] !== 'string') throw new CommandError(`${url} has no ${key}`);
  }
  for (const key of ['authorization_endpoint', 'token_endpoint', 'revocation_endpoint'] as const) {
    const endpoint = metadata[key];
    if (endpoint !== undefined && !sameOrigin(endpoint, issuer)) {
      throw new CommandError(
        `${url} lists ${key} ${String(endpoint)}, not on ${new URL(issuer).origin}: behind a TLS-terminating ` +
          `proxy, the server needs GATEHOUSE_TRUST_PROXY=true (docs/oidc.md "Endpoints")`,
      );
    }
  }
  return metadata as ServerMetadata;
}

/** A PKCE pair (RFC 7636 §4.1, §4.2): 32 random bytes as the verifier, its SHA-256 as challenge. */
export function createPkce(): { verifier: string; challenge: string; method: 'S256' } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: pkceChallenge(verifier), method: 'S256' };
}

/** The S256 challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))). */
export function pkceChallenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** A fresh `state` value: 32 random bytes, base64url. */
export function randomState(): string {
  return randomBytes(32).toString('base64url');
}

/** What an authorization request says. */
export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  scope: string;
  resource: string;
  state: string;
  codeChallenge: string;
}

/** The URL of an authorization request (response_type code, PKCE S256). */
export function authorizationUrl(metadata: ServerMetadata, req: AuthorizationRequest): URL {
  const url = new URL(metadata.authorization_endpoint);
  const params: Record<string, string> = {
    response_type: 'code',
    client_id: req.clientId,
    redirect_uri: req.redirectUri,
    scope: req.scope,
    resource: req.resource,
    state: req.state,
    code_challenge: req.codeChallenge,
    code_challenge_method: 'S256',
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url;
}

/** RFC 6749 §2.3.1: id and secret form-urlencoded, then joined by a colon and base64-encoded. */
export function basicAuthorization(clientId: string, clientSecret: string): string {
  const encode = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
}

/**
 * POSTs a token request. With `secret`, the client authenticates with client_secret_basic;
 * without, it is a public client and `client_id` must be in `form`. Throws OAuthError for an
 * error response, CommandError when the server cannot be reached or answers nonsense.
 */
export async function tokenRequest(
  endpoint: string,
  form: Record<string, string>,
  secret?: { clientId: string; clientSecret: string },
): Promise<TokenResponse> {
  const headers: Record<string, string> = {
    accept: 'application/json',
    'content-type': 'application/x-www-form-urlencoded',
  };
  if (secret !== undefined) headers.authorization = basicAuthorization(secret.clientId, secret.clientSecret);
  const res = await request(endpoint, { method: 'POST', headers, body: new URLSearchParams(form).toString() });
  let body: Record<string, unknown>;
  try {
    body = (await res.json()) as Record<string, unknown>;
  } catch {
    throw new OAuthError('invalid_response', `${endpoint} answered ${res.status} without JSON`, res.status);
  }
  if (!res.ok || typeof body !== 'object' || body === null) {
    const error = typeof body?.error === 'string' ? body.error : `http_${res.status}`;
    const description = typeof body?.error_description === 'string' ? body.error_description : undefined;
    throw new OAuthError(error, description, res.status);
  }
  if (typeof body.access_token !== 'string' || body.access_token === '') {
    throw new OAuthError('invalid_response', 'the token response has no access_token', res.status);
  }
  if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') {
    throw new OAuthError('invalid_response', `unexpected token_type ${String(body.token_type)}`, res.status);
  }
  return {
    access_token: body.access_token,
    token_type: body.token_type,
    ...(typeof body.expires_in === 'number' ? { expires_in: body.expires_in } : {}),
    ...(typeof body.refresh_token === 'string' && body.refresh_token !== ''
      ? { refresh_token: body.refresh_token }
      : {}),
    ...(typeof body.scope === 'string' && body.scope !== '' ? { scope: body.scope } : {}),
    ...(typeof body.scope_rejected === 'string' ? { scope_rejected: body.scope_rejected } : {}),
  };
}

/**
 * Revokes a token (RFC 7009) as the public client `clientId`. Best effort: true when the server
 * said 200, false on any failure.
 */
export async function revokeToken(
  endpoint: string,
  token: string,
  hint: 'refresh_token' | 'access_token',
  clientId: string,
): Promise<boolean> {
  try {
    const res = await request(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, token_type_hint: hint, client_id: clientId }).toString(),
    });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}
