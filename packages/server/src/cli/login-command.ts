/**
 * `gatehouse login`, `logout` and `whoami`, and how server-mode commands find their token
 * (docs/cli.md "Logging in").
 *
 * - `login` in the browser: the authorization code flow with PKCE S256 and a loopback redirect
 *   (RFC 8252), as the built-in public client `sys.cli` (ensure-reserved-domains.ts), for the
 *   management API `{server}/v1` (RFC 8707 `resource`), with `offline_access` for a refresh token.
 * - `login --client-id ID --client-secret SECRET`: the client credentials grant with
 *   client_secret_basic, for a service or a confidential client.
 * - The token is stored per server (credentials-store.ts); `tokenForServer` hands it to apply and
 *   export, renewed with the refresh token when it has expired.
 */

import { spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { decodeJwt } from 'jose';
import { CLI_CLIENT_ID } from '../runtime/ensure-reserved-domains.js';
import {
  CredentialsStore,
  normalizeServerUrl,
  type CredentialsFile,
  type ServerApi,
  type StoredCredentials,
} from './credentials-store.js';
import {
  DEFAULT_REDIRECT_TIMEOUT_MS,
  formatDuration,
  listenForRedirect,
  RedirectError,
  RedirectTimeoutError,
  type LoopbackRedirect,
} from './loopback-redirect.js';
import {
  audienceOf,
  authorizationUrl,
  createPkce,
  discover,
  OAuthError,
  randomState,
  revokeToken,
  tokenRequest,
  type ServerMetadata,
  type TokenResponse,
} from './oauth-client.js';
import { CommandError, type CommandOutput } from './run-operator-command.js';

/** The scopes of the browser login: OpenID, and offline_access for a refresh token. */
export const CLI_LOGIN_SCOPE = 'openid offline_access';

/** A stored access token is renewed this long before it expires (one command may make several calls). */
export const EXPIRY_MARGIN_SECONDS = 60;

/** What the commands take from their surroundings (tests replace them). */
export interface LoginEnvironment {
  /** The environment (GATEHOUSE_CONFIG_DIR, XDG_CONFIG_HOME, …; default process.env). */
  env?: Record<string, string | undefined>;
  /**
   * Opens the sign-in URL in a browser (default openBrowser: xdg-open, open or rundll32, never
   * failing). The end-to-end test of the code flow drives a real browser from here.
   */
  openBrowser?: (url: string) => void | Promise<void>;
  /** Reads standard input to its end (`--client-secret -`). */
  readStdin?: () => Promise<string>;
  /** How long the browser login waits for the redirect (default 5 minutes). */
  timeoutMs?: number;
  clock?: () => Date;
}

/** Options of `gatehouse login`. */
export interface LoginOptions {
  server?: string | undefined;
  /** Log in as this service or confidential client (client credentials) instead of in the browser. */
  clientId?: string | undefined;
  /** Its secret; `-` reads it from standard input. */
  clientSecret?: string | undefined;
  /** Where `clientSecret` came from: the command line or GATEHOUSE_CLIENT_SECRET. */
  clientSecretSource?: 'cli' | 'env' | undefined;
  /** The API the token is for (default management). */
  audience?: ServerApi | undefined;
  /** false: print the sign-in URL without opening a browser. */
  browser?: boolean | undefined;
}

/**
 * Whether there is a desktop browser to open: always on macOS and Windows; elsewhere only with a
 * display (without one, xdg-open would start a text browser in the background, invisibly).
 */
export function canOpenBrowser(env: Record<string, string | undefined> = process.env): boolean {
  if (process.platform === 'darwin' || process.platform === 'win32') return true;
  return Boolean(env.DISPLAY) || Boolean(env.WAYLAND_DISPLAY);
}

/** Opens `url` in the desktop's browser (see canOpenBrowser). Never throws. */
export function openBrowser(url: string): void {
  let command: string;
  let args: string[];
  if (process.platform === 'darwin') [command, args] = ['open', [url]];
  // Not `cmd /c start`: cmd would split the URL at its `&`s.
  else if (process.platform === 'win32') [command, args] = ['rundll32', ['url.dll,FileProtocolHandler', url]];
  else [command, args] = ['xdg-open', [url]];
  try {
    const child = spawn(command, args, { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // No browser: the URL is printed anyway.
  }
}

/** Reads the process's standard input to its end. */
async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The server of login, logout and whoami: the option (or GATEHOUSE_SERVER), else the last login. */
function chooseServer(given: string | undefined, store: CredentialsStore, command: string): string {
  if (given !== undefined && given !== '') return normalizeServerUrl(given);
  const last = store.read().lastServer;
  if (last !== undefined) return last;
  throw new CommandError(`name the server: gatehouse ${command} --server URL (or set GATEHOUSE_SERVER)`);
}

function isLoopbackHost(server: string): boolean {
  const host = new URL(server).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function apiName(api: ServerApi): string {
  return api === 'pdp' ? 'the decision API' : 'the management API';
}

/** The claims of a JWT, read without verifying it (for display only); {} when it is none. */
export function peekClaims(token: string): Record<string, unknown> {
  try {
    return decodeJwt(token) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function expiryOf(tokens: TokenResponse, now: Date): Date {
  if (tokens.expires_in !== undefined && Number.isFinite(tokens.expires_in)) {
    return new Date(now.getTime() + tokens.expires_in * 1000);
  }
  const exp = peekClaims(tokens.access_token).exp;
  // Neither: take it as short-lived rather than as valid forever.
  return typeof exp === 'number' ? new Date(exp * 1000) : new Date(now.getTime() + 60_000);
}

function entryFrom(
  base: Pick<StoredCredentials, 'server' | 'api' | 'grantType' | 'clientId'>,
  tokens: TokenResponse,
  now: Date,
  keepRefreshToken?: string,
): StoredCredentials {
  const refreshToken = tokens.refresh_token ?? keepRefreshToken;
  return {
    server: base.server,
    issuer: `${base.server}/oidc`,
    audience: audienceOf(base.server, base.api),
    api: base.api,
    grantType: base.grantType,
    clientId: base.clientId,
    accessToken: tokens.access_token,
    expiresAt: expiryOf(tokens, now).toISOString(),
    ...(refreshToken !== undefined ? { refreshToken } : {}),
    ...(tokens.scope !== undefined ? { scope: tokens.scope } : {}),
    savedAt: now.toISOString(),
  };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Checks the authorization response the browser brought back (RFC 6749 §4.1.2, §4.1.2.1;
 * RFC 9207 §2.4) and returns its code. In this order: `state` must be ours (else the answer
 * belongs to another request and nothing is exchanged); `iss`, when present — or required
 * because the server says it sends it — must be the issuer; then an `error` is reported; then
 * there must be a code. Throws RedirectError.
 */
export function checkAuthorizationResponse(
  query: URLSearchParams,
  expected: { state: string; issuer: string; issRequired: boolean },
): string {
  const state = query.get('state');
  if (state === null || !safeEqual(state, expected.state)) {
    throw new RedirectError(
      'The answer does not belong to this sign-in (its state is not the one sent), so it was not used.',
    );
  }
  const iss = query.get('iss');
  if (iss !== null ? iss !== expected.issuer : expected.issRequired) {
    throw new RedirectError(
      iss === null
        ? `The answer does not say which server it comes from (no iss; ${expected.issuer} always sends it), so it was not used.`
        : `The answer comes from ${iss}, not from ${expected.issuer}, so it was not used.`,
    );
  }
  const error = query.get('error');
  if (error !== null) {
    const description = query.get('error_description');
    const detail = `${error}${description ? `: ${description}` : ''}`;
    throw new RedirectError(
      error === 'access_denied' ? `The sign-in was denied (${detail}).` : `The server refused the sign-in (${detail}).`,
    );
  }
  const code = query.get('code');
  if (code === null || code === '') throw new RedirectError('The answer has neither a code nor an error.');
  return code;
}

/** What a browser login needs to know. */
export interface BrowserLoginParams {
  server: string;
  metadata: ServerMetadata;
  api: ServerApi;
  output: CommandOutput;
  /** Opens the URL; false: only print it. */
  openBrowser: ((url: string) => void | Promise<void>) | false;
  timeoutMs?: number | undefined;
}

/**
 * The authorization code flow with PKCE through a loopback redirect: listens, prints (and
 * opens) the authorization URL, waits for the browser, checks the answer, exchanges the code.
 * Returns the token response. CommandError for every way it can fail.
 */
export async function browserLogin(params: BrowserLoginParams): Promise<TokenResponse> {
  const { metadata, output } = params;
  if (metadata.code_challenge_methods_supported?.includes('S256') === false) {
    throw new CommandError(`${params.server} does not support PKCE with S256`);
  }
  let receiver: LoopbackRedirect;
  try {
    receiver = await listenForRedirect(params.timeoutMs !== undefined ? { timeoutMs: params.timeoutMs } : {});
  } catch (err) {
    throw new CommandError(`cannot listen on 127.0.0.1 for the browser's answer: ${(err as Error).message}`);
  }
  const pkce = createPkce();
  const state = randomState();
  const resource = audienceOf(params.server, params.api);
  const url = authorizationUrl(metadata, {
    clientId: CLI_CLIENT_ID,
    redirectUri: receiver.redirectUri,
    scope: CLI_LOGIN_SCOPE,
    resource,
    state,
    codeChallenge: pkce.challenge,
  }).toString();
  let exchangeError: unknown;
  const done = receiver.wait(async (query) => {
    const code = checkAuthorizationResponse(query, {
      state,
      issuer: metadata.issuer,
      issRequired: metadata.authorization_response_iss_parameter_supported === true,
    });
    output.err('Signed in; exchanging the code for a token…');
    try {
      return await tokenRequest(metadata.token_endpoint, {
        grant_type: 'authorization_code',
        code,
        redirect_uri: receiver.redirectUri,
        client_id: CLI_CLIENT_ID,
        code_verifier: pkce.verifier,
        resource,
      });
    } catch (err) {
      exchangeError = err;
      throw new RedirectError(
        `The server did not give a token for the sign-in${err instanceof OAuthError ? ` (${err.message})` : ''}.`,
      );
    }
  });
  output.err(
    `${params.openBrowser === false ? 'Open this URL in a browser' : 'Opening the browser; if it does not open, visit this URL'} to sign in to ${params.server}:\n\n  ${url}\n\nWaiting for the browser (at most ${formatDuration(params.timeoutMs ?? DEFAULT_REDIRECT_TIMEOUT_MS)})…`,
  );
  // The answer may come while the browser is being opened (or driven, in tests): its failure is
  // handled below, not an unhandled rejection meanwhile.
  done.catch(() => undefined);
  if (params.openBrowser !== false) {
    try {
      await params.openBrowser(url);
    } catch {
      // The URL is printed: the user can open it.
    }
  }
  try {
    return await done;
  } catch (err) {
    if (err instanceof RedirectTimeoutError) throw new CommandError(`${err.message}; run gatehouse login again`);
    if (exchangeError instanceof CommandError) throw exchangeError;
    if (exchangeError instanceof OAuthError) {
      throw new CommandError(`the server refused the code: ${exchangeError.message}; run gatehouse login again`);
    }
    if (err instanceof RedirectError) throw new CommandError(err.message.replace(/\.$/, ''));
    throw err;
  } finally {
    receiver.close();
  }
}

async function readSecret(options: LoginOptions, environment: LoginEnvironment): Promise<string> {
  const given = options.clientSecret;
  if (given === undefined || given === '') {
    throw new CommandError(
      '--client-id needs --client-secret SECRET, GATEHOUSE_CLIENT_SECRET, or --client-secret - to read it from standard input',
    );
  }
  if (given !== '-' || options.clientSecretSource === 'env') return given;
  const text = await (environment.readStdin ?? readProcessStdin)();
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new CommandError('--client-secret -: standard input was empty');
  return secret;
}

/**
 * `gatehouse login`: with `clientId`, the client credentials grant; otherwise the browser
 * login. Stores the token for the server and makes it the default server; nothing is stored
 * when the login fails.
 */
export async function runLogin(
  options: LoginOptions,
  output: CommandOutput,
  environment: LoginEnvironment = {},
): Promise<void> {
  const env = environment.env ?? process.env;
  const clock = environment.clock ?? (() => new Date());
  const store = CredentialsStore.fromEnv(env);
  const api: ServerApi = options.audience ?? 'management';
  if (options.clientId === undefined && options.clientSecretSource === 'cli' && options.clientSecret !== undefined) {
    throw new CommandError('--client-secret needs --client-id');
  }
  const server = chooseServer(options.server, store, 'login');
  // Read the secret before anything goes over the network.
  const secret = options.clientId !== undefined ? await readSecret(options, environment) : undefined;
  if (!isLoopbackHost(server) && new URL(server).protocol === 'http:') {
    output.err(
      `Warning: ${server} is not https: ${secret !== undefined ? 'the secret and ' : ''}tokens travel in clear text.`,
    );
  }
  const metadata = await discover(server);
  let tokens: TokenResponse;
  let entryBase: Pick<StoredCredentials, 'server' | 'api' | 'grantType' | 'clientId'>;
  if (options.clientId !== undefined) {
    const clientId = options.clientId;
    output.err(`Getting a token for ${clientId} from ${server}…`);
    try {
      tokens = await tokenRequest(
        metadata.token_endpoint,
        { grant_type: 'client_credentials', resource: audienceOf(server, api) },
        { clientId, clientSecret: secret! },
      );
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      throw new CommandError(
        err.error === 'invalid_client'
          ? `${server} refused the client id or secret of ${clientId}: ${err.message}; nothing was stored`
          : `${server} refused the login of ${clientId}: ${err.message}; nothing was stored`,
      );
    }
    entryBase = { server, api, grantType: 'client_credentials', clientId };
  } else {
    tokens = await browserLogin({
      server,
      metadata,
      api,
      output,
      // Without a browser to open (and none injected), as with --no-browser: the URL is printed.
      openBrowser:
        options.browser === false
          ? false
          : (environment.openBrowser ?? (canOpenBrowser(process.env) ? openBrowser : false)),
      timeoutMs: environment.timeoutMs,
    });
    entryBase = { server, api, grantType: 'authorization_code', clientId: CLI_CLIENT_ID };
  }
  const entry = entryFrom(entryBase, tokens, clock());
  await store.update((file) => {
    file.servers[server] = entry;
    file.lastServer = server;
  });
  const subject = peekClaims(entry.accessToken).sub;
  output.out(
    `Logged in to ${server}${typeof subject === 'string' ? ` as ${subject}` : ''}: a token for ${apiName(api)}, ` +
      `valid until ${entry.expiresAt}${entry.refreshToken !== undefined ? ' (renewed automatically)' : ''}; stored in ${store.path}.`,
  );
}

/** `gatehouse logout`: forgets the server's token, revoking the refresh token first (best effort). */
export async function runLogout(
  options: { server?: string | undefined },
  output: CommandOutput,
  environment: LoginEnvironment = {},
): Promise<void> {
  const store = CredentialsStore.fromEnv(environment.env ?? process.env);
  const server = chooseServer(options.server, store, 'logout');
  const entry = store.get(server);
  if (entry === undefined) {
    output.out(`Not logged in to ${server}; nothing to do.`);
    return;
  }
  if (entry.refreshToken !== undefined) {
    // Revoking the refresh token ends the login's grant on the server, with its access tokens.
    let revoked = false;
    try {
      const metadata = await discover(server);
      if (metadata.revocation_endpoint !== undefined) {
        revoked = await revokeToken(metadata.revocation_endpoint, entry.refreshToken, 'refresh_token', entry.clientId);
      }
    } catch {
      // Best effort: the server may be gone.
    }
    if (!revoked) output.err(`Could not revoke the refresh token at ${server}; forgetting it anyway.`);
  }
  await store.update((file) => {
    delete file.servers[server];
  });
  output.out(`Logged out of ${server}.`);
}

/** `gatehouse whoami`: who the stored token is for, read from the token without verifying it. */
export async function runWhoami(
  options: { server?: string | undefined },
  output: CommandOutput,
  environment: LoginEnvironment = {},
): Promise<void> {
  const store = CredentialsStore.fromEnv(environment.env ?? process.env);
  const server = chooseServer(options.server, store, 'whoami');
  const entry = store.get(server);
  if (entry === undefined) throw new CommandError(`not logged in to ${server}: run gatehouse login --server ${server}`);
  const now = (environment.clock ?? (() => new Date()))();
  const claims = peekClaims(entry.accessToken);
  const aud = Array.isArray(claims.aud) ? claims.aud.join(' ') : String(claims.aud ?? entry.audience);
  const expired = Date.parse(entry.expiresAt) <= now.getTime();
  const lines = [
    `server:   ${server}`,
    `subject:  ${String(claims.sub ?? '(unknown)')}`,
    `client:   ${String(claims.client_id ?? entry.clientId)}`,
    `audience: ${aud} (${apiName(entry.api)})`,
    `expires:  ${entry.expiresAt}${expired ? ' (expired)' : ''}`,
    `refresh:  ${
      entry.refreshToken !== undefined
        ? 'a refresh token is stored: commands renew the access token when it expires'
        : `none: log in again when it expires`
    }`,
  ];
  if (typeof claims.scope === 'string' && claims.scope !== '') lines.splice(4, 0, `scope:    ${claims.scope}`);
  output.out(lines.join('\n'));
}

function expiredSoon(entry: StoredCredentials, now: Date): boolean {
  return Date.parse(entry.expiresAt) - EXPIRY_MARGIN_SECONDS * 1000 <= now.getTime();
}

function loginHint(entry: StoredCredentials): string {
  return entry.grantType === 'client_credentials'
    ? `gatehouse login --server ${entry.server} --client-id ${entry.clientId}`
    : `gatehouse login --server ${entry.server}`;
}

/** A token for a server-mode command, and where it came from. */
export interface ServerToken {
  token: string;
  /** true when it came from the credentials file (a 401 then means: log in again). */
  stored: boolean;
}

/**
 * The management API token of a server-mode command (`apply`/`export --server`): `given`
 * (--token or GATEHOUSE_TOKEN) when there is one; else the one stored by `gatehouse login` for
 * that server — renewed first with its refresh token when it has expired or is about to (the new
 * refresh token replaces the old one). CommandError when there is none, or it cannot be renewed.
 */
export async function tokenForServer(
  serverUrl: string,
  given: string | undefined,
  output: CommandOutput,
  environment: LoginEnvironment = {},
): Promise<ServerToken> {
  if (given !== undefined && given !== '') return { token: given, stored: false };
  const server = normalizeServerUrl(serverUrl);
  const store = CredentialsStore.fromEnv(environment.env ?? process.env);
  const clock = environment.clock ?? (() => new Date());
  const entry = store.get(server);
  if (entry === undefined) {
    throw new CommandError(
      `--server needs --token (or GATEHOUSE_TOKEN), or a login: run gatehouse login --server ${server}`,
    );
  }
  if (entry.api !== 'management') {
    throw new CommandError(
      `the token stored for ${server} is for ${apiName(entry.api)}; this command needs one for the management API: ` +
        `run ${loginHint(entry)} (without --audience pdp)`,
    );
  }
  if (!expiredSoon(entry, clock())) return { token: entry.accessToken, stored: true };
  if (entry.refreshToken === undefined) {
    throw new CommandError(`the token stored for ${server} expired at ${entry.expiresAt}: run ${loginHint(entry)}`);
  }
  output.err(`Renewing the token stored for ${server}…`);
  let ended: string | undefined;
  const token = await store.update(async (file: CredentialsFile) => {
    // Read again under the lock: another command may have renewed it meanwhile.
    const current = file.servers[server];
    if (current === undefined) return undefined;
    if (!expiredSoon(current, clock())) return current.accessToken;
    if (current.refreshToken === undefined) return undefined;
    const metadata = await discover(server);
    let tokens: TokenResponse;
    try {
      tokens = await tokenRequest(metadata.token_endpoint, {
        grant_type: 'refresh_token',
        refresh_token: current.refreshToken,
        client_id: current.clientId,
        resource: current.audience,
      });
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      if (err.status >= 500) throw new CommandError(`cannot renew the token stored for ${server}: ${err.message}`);
      // The login has ended (expired, revoked, or the refresh token was presented twice):
      // what is stored is of no use any more.
      delete file.servers[server];
      ended = err.message;
      return undefined;
    }
    const renewed = entryFrom(current, tokens, clock(), current.refreshToken);
    file.servers[server] = renewed;
    return renewed.accessToken;
  });
  if (ended !== undefined) {
    throw new CommandError(`the login to ${server} has ended (${ended}): run ${loginHint(entry)}`);
  }
  if (token === undefined) throw new CommandError(`not logged in to ${server}: run ${loginHint(entry)}`);
  return { token, stored: true };
}
