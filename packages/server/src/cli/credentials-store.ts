/**
 * Where `gatehouse login` keeps its tokens (docs/cli.md "Credentials"): one JSON file,
 * `credentials.json`, in the CLI's configuration directory — GATEHOUSE_CONFIG_DIR, else
 * `$XDG_CONFIG_HOME/gatehouse`, else `%APPDATA%\gatehouse` on Windows, else
 * `~/.config/gatehouse` — holding one entry per server URL.
 *
 * The directory is made 0700 and the file 0600 (owner only). Every change is written to a new
 * file that is then renamed over the old one, so a reader sees the old content or the new, never
 * a part; changes are made under a lock file (`credentials.json.lock`), so that two commands
 * renewing the same token do not both present the same refresh token (the server rotates refresh
 * tokens, and takes a rotated one presented again as a theft: it revokes the whole login).
 */

import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError } from './run-operator-command.js';

/** Which of the server's own APIs a token is for. */
export type ServerApi = 'management' | 'pdp';

/** What is stored for one server. */
export interface StoredCredentials {
  /** The server URL, normalised (normalizeServerUrl): also the entry's key. */
  server: string;
  /** The token issuer, `{server}/oidc`. */
  issuer: string;
  /** The token's audience: `{server}/v1` (management) or `{server}/pdp` (decision API). */
  audience: string;
  api: ServerApi;
  /** How the token was obtained: in the browser (code flow) or as a service or client. */
  grantType: 'authorization_code' | 'client_credentials';
  /** The OAuth client: `sys.cli` in the code flow, the service or client otherwise. */
  clientId: string;
  accessToken: string;
  /** When the access token expires (ISO 8601). */
  expiresAt: string;
  /** The code flow's refresh token (rotated on every use), when the server issued one. */
  refreshToken?: string;
  /** The granted scopes, when the server named any. */
  scope?: string;
  /** When the entry was written (ISO 8601). */
  savedAt: string;
}

/** The credentials file. */
export interface CredentialsFile {
  version: 1;
  /** The server of the last login: the default of login, logout and whoami. */
  lastServer?: string;
  servers: Record<string, StoredCredentials>;
}

/** The file's name in the configuration directory. */
export const CREDENTIALS_FILE = 'credentials.json';

/** How long a lock file may be held before it is taken as left behind by a killed command. */
const STALE_LOCK_MS = 30_000;
/** How long to wait for the lock. */
const LOCK_WAIT_MS = 15_000;

/** The CLI's configuration directory for `env` (see the module comment). */
export function configDirectory(env: Record<string, string | undefined>): string {
  const own = env.GATEHOUSE_CONFIG_DIR;
  if (own !== undefined && own !== '') return own;
  // XDG Base Directory: a relative XDG_CONFIG_HOME is invalid and is ignored.
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, 'gatehouse');
  const appData = env.APPDATA;
  if (process.platform === 'win32' && appData !== undefined && appData !== '') return join(appData, 'gatehouse');
  return join(homedir(), '.config', 'gatehouse');
}

/**
 * A server URL as the CLI keys it: http or https, no credentials, query or fragment, no
 * trailing slash (`HTTP://Auth.Example.com/` → `http://auth.example.com`). CommandError when it
 * is not such a URL.
 */
export function normalizeServerUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CommandError(`--server "${raw}" is not an absolute URL such as https://auth.example.com`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CommandError(`--server "${raw}" must be an http or https URL`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new CommandError(`--server "${raw}" must have no credentials, query or fragment`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function emptyFile(): CredentialsFile {
  return { version: 1, servers: {} };
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The credentials file of one configuration directory. */
export class CredentialsStore {
  /** The file's path. */
  readonly path: string;

  constructor(readonly directory: string) {
    this.path = join(directory, CREDENTIALS_FILE);
  }

  /** The store of the configuration directory of `env`. */
  static fromEnv(env: Record<string, string | undefined>): CredentialsStore {
    return new CredentialsStore(configDirectory(env));
  }

  /** The file's content; empty when there is no file. CommandError when it cannot be read. */
  read(): CredentialsFile {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return emptyFile();
      throw new CommandError(`cannot read ${this.path}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new CommandError(
        `${this.path} is not valid JSON (${(err as Error).message}); delete it and run gatehouse login again`,
      );
    }
    const file = parsed as Partial<CredentialsFile> | null;
    if (typeof file !== 'object' || file === null || file.version !== 1 || typeof file.servers !== 'object') {
      throw new CommandError(
        `${this.path} is not a Gatehouse credentials file (version 1); delete it and log in again`,
      );
    }
    return { version: 1, servers: { ...file.servers }, ...(file.lastServer ? { lastServer: file.lastServer } : {}) };
  }

  /** What is stored for `server` (normalised), if anything. */
  get(server: string): StoredCredentials | undefined {
    const entry = this.read().servers[server];
    return entry?.server === server ? entry : undefined;
  }

  /**
   * Changes the file under the lock: `change` gets the file as it is now (read after taking the
   * lock) to change in place; what it returns is returned. The file is then written atomically —
   * or deleted when it holds no server any more. When `change` throws, nothing is written.
   */
  async update<T>(change: (file: CredentialsFile) => T | Promise<T>): Promise<T> {
    this.#ensureDirectory();
    const release = await this.#lock();
    try {
      const file = this.read();
      const result = await change(file);
      if (file.lastServer !== undefined && file.servers[file.lastServer] === undefined) delete file.lastServer;
      if (Object.keys(file.servers).length === 0) this.#remove();
      else this.#write(file);
      return result;
    } finally {
      release();
    }
  }

  /** Makes the directory, owner only; a directory that exists with wider access is narrowed. */
  #ensureDirectory(): void {
    try {
      mkdirSync(this.directory, { recursive: true, mode: 0o700 });
      if (process.platform !== 'win32' && (statSync(this.directory).mode & 0o077) !== 0) {
        chmodSync(this.directory, 0o700);
      }
    } catch (err) {
      throw new CommandError(`cannot create ${this.directory}: ${(err as Error).message}`);
    }
  }

  /** Writes `file` to a new file (0600), flushed, then renamed over the old one. */
  #write(file: CredentialsFile): void {
    const temp = join(this.directory, `.${CREDENTIALS_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const fd = openSync(temp, 'wx', 0o600);
      try {
        writeSync(fd, `${JSON.stringify(file, null, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.path);
    } catch (err) {
      try {
        unlinkSync(temp);
      } catch {
        // It was not created, or was renamed.
      }
      throw new CommandError(`cannot write ${this.path}: ${(err as Error).message}`);
    }
    // The rename is durable once the directory is flushed (not possible everywhere).
    try {
      const dir = openSync(this.directory, 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    } catch {
      // Best effort.
    }
  }

  #remove(): void {
    try {
      unlinkSync(this.path);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw new CommandError(`cannot delete ${this.path}: ${(err as Error).message}`);
    }
  }

  /** Takes the lock file (waiting for another command to finish); returns its release. */
  async #lock(): Promise<() => void> {
    const lockPath = `${this.path}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const fd = openSync(lockPath, 'wx', 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return () => {
          try {
            unlinkSync(lockPath);
          } catch {
            // Taken away as stale by another command: nothing to release.
          }
        };
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw new CommandError(`cannot create ${lockPath}: ${(err as Error).message}`);
      }
      try {
        if (Date.now() - statSync(lockPath).mtimeMs > STALE_LOCK_MS) {
          unlinkSync(lockPath);
          continue;
        }
      } catch {
        continue; // Released meanwhile.
      }
      if (Date.now() > deadline) {
        throw new CommandError(
          `${lockPath} is held by another gatehouse command; try again (or delete it if none runs)`,
        );
      }
      await sleep(50);
    }
  }
}
