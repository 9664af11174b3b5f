import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configDirectory, CredentialsStore, type CredentialsFile } from '../../src/cli/credentials-store.js';
import { CLI_CLIENT, CLI_CLIENT_ID } from '../../src/runtime/ensure-reserved-domains.js';
import { configEnv, DEPLOYER_SECRET, runCli, startLoginNode, type LoginNode } from './login-fixture.js';

let node: LoginNode;
let base: string;
const SERVER_VARIABLES = ['GATEHOUSE_SERVER', 'GATEHOUSE_TOKEN', 'GATEHOUSE_CLIENT_SECRET'] as const;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  // commander reads these from process.env (Option.env): none may leak in from the shell.
  for (const name of SERVER_VARIABLES) {
    saved[name] = process.env[name];
    delete process.env[name];
  }
  node = await startLoginNode();
  base = node.base;
});
afterAll(async () => {
  await node.close();
  for (const name of SERVER_VARIABLES) if (saved[name] !== undefined) process.env[name] = saved[name];
});
afterEach(() => {
  for (const name of SERVER_VARIABLES) delete process.env[name];
});

let n = 0;
/** A fresh, not yet existing configuration directory for one test. */
function freshEnv(): { GATEHOUSE_CONFIG_DIR: string } {
  n += 1;
  return configEnv(node.dir, `config-${n}`);
}

function readCredentials(env: { GATEHOUSE_CONFIG_DIR: string }): CredentialsFile {
  return JSON.parse(readFileSync(join(env.GATEHOUSE_CONFIG_DIR, 'credentials.json'), 'utf8')) as CredentialsFile;
}

function libraryFile(role: string): string {
  const file = join(node.dir, `library-${role}.yaml`);
  writeFileSync(
    file,
    'domains:\n  - name: library\n    admins: [library.deployer, user.alice]\n' +
      `    roles:\n      - { name: ${role}, members: [user.bob] }\n    services:\n      - { name: deployer }\n`,
  );
  return file;
}

const login = ['login', '--client-id', 'library.deployer'];

// issue 4: "`gatehouse login --client-id … --client-secret …` (client credentials) store a token
// for later commands; management and decision calls accept these bearer tokens."
describe('gatehouse login --client-id --client-secret', () => {
  it('stores a management API token (0600 in a 0700 directory), which apply and export then use', async () => {
    const env = freshEnv();
    const r = await runCli([...login, '--client-secret', DEPLOYER_SECRET, '--server', `${base}/`], { env });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toEqual([
      expect.stringMatching(
        new RegExp(
          `^Logged in to ${base} as library\\.deployer: a token for the management API, valid until \\d{4}-.*Z; stored in .*credentials\\.json\\.$`,
        ),
      ),
    ]);
    const path = join(env.GATEHOUSE_CONFIG_DIR, 'credentials.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(env.GATEHOUSE_CONFIG_DIR).mode & 0o777).toBe(0o700);
    // Written through a temporary file renamed into place: nothing else is left in the directory.
    expect(readdirSync(env.GATEHOUSE_CONFIG_DIR)).toEqual(['credentials.json']);
    const file = readCredentials(env);
    expect(file).toEqual({
      version: 1,
      lastServer: base,
      servers: {
        [base]: {
          server: base,
          issuer: `${base}/oidc`,
          audience: `${base}/v1`,
          api: 'management',
          grantType: 'client_credentials',
          clientId: 'library.deployer',
          accessToken: expect.any(String),
          expiresAt: expect.any(String),
          savedAt: expect.any(String),
        },
      },
    });
    const entry = file.servers[base]!;
    expect(decodeJwt(entry.accessToken)).toMatchObject({
      sub: 'library.deployer',
      aud: `${base}/v1`,
      iss: `${base}/oidc`,
    });
    const ttl = Date.parse(entry.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
    // The secret is never stored.
    expect(readFileSync(path, 'utf8')).not.toContain(DEPLOYER_SECRET);

    // apply --server without --token: the stored token, with the service's rights.
    const applied = await runCli(['apply', '-f', libraryFile('readers'), '--server', base], { env });
    expect(applied.stderr).toEqual([]);
    expect(applied.exitCode).toBe(0);
    expect(applied.stdout.join('\n')).toContain('+ role library:readers');
    expect(applied.stdout[applied.stdout.length - 1]).toBe('Applied: 1 created, 0 changed, 0 deleted.');
    expect(node.gh.catalog.catalog.domains.get('library')?.roles.has('readers')).toBe(true);
    const exported = await runCli(['export', 'library', '--server', base], { env });
    expect(exported.exitCode).toBe(0);
    expect(exported.stdout[0]).toContain('- name: readers');

    // whoami: the default server is the last one logged in to.
    const who = await runCli(['whoami'], { env });
    expect(who.exitCode).toBe(0);
    expect(who.stdout[0]!.split('\n')).toEqual([
      `server:   ${base}`,
      'subject:  library.deployer',
      'client:   library.deployer',
      `audience: ${base}/v1 (the management API)`,
      `expires:  ${entry.expiresAt}`,
      'refresh:  none: log in again when it expires',
    ]);

    // logout forgets it (the file goes with its last server); commands then say to log in.
    const out = await runCli(['logout'], { env });
    expect(out).toEqual({ stdout: [`Logged out of ${base}.`], stderr: [], exitCode: 0 });
    expect(existsSync(path)).toBe(false);
    const again = await runCli(['apply', '-f', libraryFile('readers'), '--server', base], { env });
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toEqual([
      `--server needs --token (or GATEHOUSE_TOKEN), or a login: run gatehouse login --server ${base}`,
    ]);
    expect(await runCli(['logout', '--server', base], { env })).toMatchObject({
      stdout: [`Not logged in to ${base}; nothing to do.`],
      exitCode: 0,
    });
    expect(await runCli(['whoami', '--server', base], { env })).toMatchObject({
      stderr: [`not logged in to ${base}: run gatehouse login --server ${base}`],
      exitCode: 1,
    });
  });

  it('refuses a wrong secret clearly, with exit code 1, and stores nothing', async () => {
    const env = freshEnv();
    const r = await runCli([...login, '--client-secret', 'not-the-secret-0123456', '--server', base], { env });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toEqual([]);
    expect(r.stderr[r.stderr.length - 1]).toMatch(
      new RegExp(
        `^${base} refused the client id or secret of library\\.deployer: invalid_client \\(client authentication failed\\); nothing was stored$`,
      ),
    );
    expect(existsSync(join(env.GATEHOUSE_CONFIG_DIR, 'credentials.json'))).toBe(false);
    // An unknown client is the same answer.
    const unknown = await runCli(['login', '--client-id', 'library.ghost', '--client-secret', 'x', '--server', base], {
      env,
    });
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr.at(-1)).toMatch(/refused the client id or secret of library\.ghost/);
  });

  it('keeps an earlier login when a new one fails, and other servers’ entries when one changes', async () => {
    const env = freshEnv();
    const other = 'https://other.example.com';
    expect((await runCli([...login, '--client-secret', DEPLOYER_SECRET, '--server', base], { env })).exitCode).toBe(0);
    const first = readCredentials(env);
    // Another server's entry, as an earlier login would have left it.
    const store = new CredentialsStore(env.GATEHOUSE_CONFIG_DIR);
    await store.update((file) => {
      file.servers[other] = { ...file.servers[base]!, server: other, issuer: `${other}/oidc` };
    });
    const inode = statSync(store.path).ino;
    const failed = await runCli([...login, '--client-secret', 'wrong-secret-0123456789', '--server', base], { env });
    expect(failed.exitCode).toBe(1);
    expect(readCredentials(env).servers[base]).toEqual(first.servers[base]);
    expect((await runCli([...login, '--client-secret', DEPLOYER_SECRET, '--server', base], { env })).exitCode).toBe(0);
    // A new file was renamed over the old one (atomic replacement), still 0600.
    expect(statSync(store.path).ino).not.toBe(inode);
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    const after = readCredentials(env);
    expect(after.servers[base]!.accessToken).not.toBe(first.servers[base]!.accessToken);
    expect(after.servers[other]?.server).toBe(other);
    expect((await runCli(['logout', '--server', base], { env })).exitCode).toBe(0);
    expect(Object.keys(readCredentials(env).servers)).toEqual([other]);
    expect(readCredentials(env).lastServer).toBeUndefined();
  });

  it('reads the secret from standard input with --client-secret -', async () => {
    const env = freshEnv();
    const r = await runCli([...login, '--client-secret', '-', '--server', base], {
      env,
      readStdin: async () => `${DEPLOYER_SECRET}\n`,
    });
    expect(r.exitCode).toBe(0);
    expect(readCredentials(env).servers[base]?.clientId).toBe('library.deployer');
    const empty = await runCli([...login, '--client-secret', '-', '--server', base], {
      env: freshEnv(),
      readStdin: async () => '',
    });
    expect(empty).toMatchObject({ exitCode: 1, stderr: ['--client-secret -: standard input was empty'] });
  });

  it('takes the secret from GATEHOUSE_CLIENT_SECRET and the server from GATEHOUSE_SERVER', async () => {
    const env = freshEnv();
    process.env.GATEHOUSE_CLIENT_SECRET = DEPLOYER_SECRET;
    process.env.GATEHOUSE_SERVER = base;
    const r = await runCli(login, { env });
    expect(r.exitCode).toBe(0);
    expect(readCredentials(env).servers[base]?.clientId).toBe('library.deployer');
    // A secret in the environment does not turn a browser login into an error.
    delete process.env.GATEHOUSE_SERVER;
    const noClient = await runCli(['login', '--client-secret', 'x', '--server', base], { env });
    expect(noClient).toMatchObject({ exitCode: 1, stderr: ['--client-secret needs --client-id'] });
  });

  it('says what is missing: the secret, the server', async () => {
    const env = freshEnv();
    expect(await runCli([...login, '--server', base], { env })).toMatchObject({
      exitCode: 1,
      stderr: [
        '--client-id needs --client-secret SECRET, GATEHOUSE_CLIENT_SECRET, or --client-secret - to read it from standard input',
      ],
    });
    expect(await runCli([...login, '--client-secret', DEPLOYER_SECRET], { env })).toMatchObject({
      exitCode: 1,
      stderr: ['name the server: gatehouse login --server URL (or set GATEHOUSE_SERVER)'],
    });
    expect(await runCli([...login, '--client-secret', DEPLOYER_SECRET, '--server', 'ftp://x'], { env })).toMatchObject({
      exitCode: 1,
      stderr: ['--server "ftp://x" must be an http or https URL'],
    });
    // A URL that is not this server's public URL: the issuer differs (RFC 8414 §3.3).
    const other = base.replace('127.0.0.1', 'localhost');
    expect(await runCli([...login, '--client-secret', DEPLOYER_SECRET, '--server', other], { env })).toMatchObject({
      exitCode: 1,
      stderr: [`the server at ${other} calls itself ${base} (its GATEHOUSE_PUBLIC_URL): use --server ${base}`],
    });
    expect(existsSync(join(env.GATEHOUSE_CONFIG_DIR, 'credentials.json'))).toBe(false);
  });

  it('gets a decision API token with --audience pdp, which the PDP accepts and apply does not', async () => {
    const env = freshEnv();
    const r = await runCli([...login, '--client-secret', DEPLOYER_SECRET, '--server', base, '--audience', 'pdp'], {
      env,
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout[0]).toContain('a token for the decision API');
    const entry = readCredentials(env).servers[base]!;
    expect(entry).toMatchObject({ api: 'pdp', audience: `${base}/pdp` });
    expect(decodeJwt(entry.accessToken).aud).toBe(`${base}/pdp`);
    const res = await fetch(`${base}/pdp/library/access/v1/evaluation`, {
      method: 'POST',
      headers: { authorization: `Bearer ${entry.accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        subject: { type: 'service', id: 'library.deployer' },
        action: { name: 'read' },
        resource: { type: 'book', id: '1' },
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ decision: expect.any(Boolean) });
    const applied = await runCli(['apply', '-f', libraryFile('pdp'), '--server', base], { env });
    expect(applied.exitCode).toBe(1);
    expect(applied.stderr.at(-1)).toBe(
      `the token stored for ${base} is for the decision API; this command needs one for the management API: ` +
        `run gatehouse login --server ${base} --client-id library.deployer (without --audience pdp)`,
    );
    const who = await runCli(['whoami'], { env });
    expect(who.stdout[0]).toContain(`audience: ${base}/pdp (the decision API)`);
  });

  it('says to log in again once a stored client credentials token has expired (there is no refresh token)', async () => {
    const env = freshEnv();
    expect((await runCli([...login, '--client-secret', DEPLOYER_SECRET, '--server', base], { env })).exitCode).toBe(0);
    const entry = readCredentials(env).servers[base]!;
    const later = new Date(Date.parse(entry.expiresAt) + 1000);
    const r = await runCli(['export', 'library', '--server', base], { env, clock: () => later });
    expect(r).toMatchObject({
      exitCode: 1,
      stderr: [
        `the token stored for ${base} expired at ${entry.expiresAt}: run gatehouse login --server ${base} --client-id library.deployer`,
      ],
    });
    // --token (or GATEHOUSE_TOKEN) comes first: the stored token is not even looked at.
    const withToken = await runCli(['export', 'library', '--server', base, '--token', entry.accessToken], {
      env,
      clock: () => later,
    });
    expect(withToken.exitCode).toBe(0);
    const who = await runCli(['whoami'], { env, clock: () => later });
    expect(who.stdout[0]).toContain(`expires:  ${entry.expiresAt} (expired)`);
  });

  it('adds a hint to log in again when the server refuses a stored token', async () => {
    const env = freshEnv();
    const store = new CredentialsStore(env.GATEHOUSE_CONFIG_DIR);
    await store.update((file) => {
      file.servers[base] = {
        server: base,
        issuer: `${base}/oidc`,
        audience: `${base}/v1`,
        api: 'management',
        grantType: 'client_credentials',
        clientId: 'library.deployer',
        accessToken: 'eyJhbGciOiJFZERTQSJ9.e30.c2ln',
        expiresAt: new Date(Date.now() + 600_000).toISOString(),
        savedAt: new Date().toISOString(),
      };
    });
    const r = await runCli(['export', 'library', '--server', base], { env });
    expect(r.exitCode).toBe(1);
    expect(r.stderr[0]).toMatch(new RegExp(`^library: 401 .*; run gatehouse login --server ${base}$`));
  });
});

describe('the credentials file', () => {
  it('lives in GATEHOUSE_CONFIG_DIR, else $XDG_CONFIG_HOME/gatehouse, else ~/.config/gatehouse', () => {
    expect(configDirectory({ GATEHOUSE_CONFIG_DIR: '/tmp/gh-config', XDG_CONFIG_HOME: '/x' })).toBe('/tmp/gh-config');
    expect(configDirectory({ XDG_CONFIG_HOME: '/x' })).toBe(join('/x', 'gatehouse'));
    // A relative XDG_CONFIG_HOME is invalid (XDG Base Directory): ignored.
    expect(configDirectory({ XDG_CONFIG_HOME: 'relative' })).toBe(join(homedir(), '.config', 'gatehouse'));
    expect(configDirectory({})).toBe(join(homedir(), '.config', 'gatehouse'));
  });

  it('narrows a directory that others may read, and refuses a file that is not one of ours', async () => {
    const env = freshEnv();
    const store = new CredentialsStore(env.GATEHOUSE_CONFIG_DIR);
    await store.update(() => undefined);
    // Nothing stored: no file.
    expect(existsSync(store.path)).toBe(false);
    expect(statSync(env.GATEHOUSE_CONFIG_DIR).mode & 0o777).toBe(0o700);
    writeFileSync(store.path, '{"servers": []');
    expect(() => store.read()).toThrow(
      /credentials\.json is not valid JSON .*; delete it and run gatehouse login again/,
    );
    writeFileSync(store.path, '{"version": 2, "servers": {}}');
    expect(() => store.read()).toThrow(/is not a Gatehouse credentials file \(version 1\)/);
  });

  it('waits for a lock another command holds, and takes over one left behind', async () => {
    const env = freshEnv();
    const store = new CredentialsStore(env.GATEHOUSE_CONFIG_DIR);
    await store.update(() => undefined);
    const lock = `${store.path}.lock`;
    writeFileSync(lock, '1\n');
    let done = false;
    const update = store
      .update((file) => {
        file.lastServer = 'x';
      })
      .then(() => {
        done = true;
      });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(done).toBe(false);
    const { unlinkSync, utimesSync } = await import('node:fs');
    unlinkSync(lock);
    await update;
    expect(existsSync(lock)).toBe(false);
    // A lock older than 30 seconds was left by a command that was killed.
    writeFileSync(lock, '1\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    await store.update(() => undefined);
    expect(existsSync(lock)).toBe(false);
  });
});

describe('the built-in client of the CLI', () => {
  it('exists in domain sys from the first start: public, first party, loopback redirects', async () => {
    const client = await node.gh.management.getClient({ principal: 'operator' }, 'sys', CLI_CLIENT_ID);
    expect(client).toMatchObject({
      clientId: 'sys.cli',
      domain: 'sys',
      type: 'public',
      hasSecret: false,
      firstParty: true,
      redirectUris: ['http://127.0.0.1/callback', 'http://[::1]/callback'],
      grantTypes: ['authorization_code', 'refresh_token'],
    });
    expect(CLI_CLIENT.clientId).toBe(CLI_CLIENT_ID);
    // oidc-provider sees a native app (its loopback redirect port may vary).
    const metadata = await node.gh.oidc.clients.find(CLI_CLIENT_ID, false);
    expect(metadata).toMatchObject({ application_type: 'native', token_endpoint_auth_method: 'none' });
  });
});
