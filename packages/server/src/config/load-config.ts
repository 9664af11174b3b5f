/**
 * The server's settings, read once at start-up from GATEHOUSE_* environment variables
 * (docs/configuration.md). Every variable is checked; every problem is reported at once, naming
 * the variable, its value (secrets redacted) and what is expected.
 */

import { Buffer } from 'node:buffer';

/** Pino log levels, plus `silent`. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Which planes a node serves (architecture.md "Scale-out"). */
export type ServerRole = 'all' | 'control' | 'token' | 'decision';

/**
 * Where the database is: an SQLite file (or `:memory:`), or a PostgreSQL connection URL and,
 * optionally, the schema to use in that database (GATEHOUSE_DATABASE_SCHEMA).
 */
export type DatabaseConfig =
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'postgres'; readonly url: string; readonly schema?: string };

/** The settings of one server process. */
export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  /** Absolute http(s) URL without a trailing slash, query or fragment. */
  readonly publicUrl: string;
  readonly database: DatabaseConfig;
  /** 32 bytes that encrypt key material at rest; undefined when not set. */
  readonly masterKey: Uint8Array | undefined;
  readonly logLevel: LogLevel;
  readonly bodyLimitBytes: number;
  readonly role: ServerRole;
  readonly trustProxy: boolean;
  readonly bundleTtlSeconds: number;
  readonly accessTokenTtlSeconds: number;
}

/** One bad variable and what is wrong with it. */
export interface ConfigIssue {
  readonly variable: string;
  readonly message: string;
}

/**
 * Thrown by loadConfig. `variable` is the first bad variable, `issues` lists every one; the message
 * has one line per issue.
 */
export class ConfigError extends Error {
  readonly variable: string;
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly [ConfigIssue, ...ConfigIssue[]], options?: { cause?: unknown }) {
    super(issues.map((i) => i.message).join('\n'), options);
    this.name = 'ConfigError';
    this.variable = issues[0].variable;
    this.issues = issues;
  }
}

/** Every variable loadConfig reads, in the order docs/configuration.md lists them. */
export const CONFIG_VARIABLES = [
  'GATEHOUSE_PORT',
  'GATEHOUSE_HOST',
  'GATEHOUSE_PUBLIC_URL',
  'GATEHOUSE_DATABASE_URL',
  'GATEHOUSE_DATABASE_SCHEMA',
  'GATEHOUSE_MASTER_KEY',
  'GATEHOUSE_LOG_LEVEL',
  'GATEHOUSE_BODY_LIMIT_BYTES',
  'GATEHOUSE_ROLE',
  'GATEHOUSE_TRUST_PROXY',
  'GATEHOUSE_BUNDLE_TTL_SECONDS',
  'GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS',
] as const;

/** GATEHOUSE_* variables that other parts read (`gatehouse init`, the test suites); loadConfig lets them be. */
export const OTHER_GATEHOUSE_VARIABLES = [
  'GATEHOUSE_ADMIN_PASSWORD',
  'GATEHOUSE_CLIENT_SECRET',
  'GATEHOUSE_CONFIG_DIR',
  'GATEHOUSE_SERVER',
  'GATEHOUSE_TEST_DATABASE_URL',
  'GATEHOUSE_TOKEN',
] as const;

/** Bounds of the numeric settings, inclusive. */
export const CONFIG_LIMITS = {
  port: { min: 1, max: 65_535 },
  bodyLimitBytes: { min: 1024, max: 64 * 1024 * 1024 },
  bundleTtlSeconds: { min: 60, max: 31_536_000 },
  accessTokenTtlSeconds: { min: 60, max: 86_400 },
} as const;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const ROLES: readonly ServerRole[] = ['all', 'control', 'token', 'decision'];
const SECRET_VARIABLES = new Set(['GATEHOUSE_MASTER_KEY']);
const KNOWN = new Set<string>([...CONFIG_VARIABLES, ...OTHER_GATEHOUSE_VARIABLES]);

/** A variable's value was not acceptable; `expected` says what would be. */
class BadValue extends Error {
  constructor(
    readonly expected: string,
    options?: { cause?: unknown },
  ) {
    super(expected, options);
  }
}

/**
 * Reads the settings from `env` (normally `process.env`). Unset or empty variables take their
 * defaults. Throws ConfigError listing every bad or unknown GATEHOUSE_* variable.
 */
export function loadConfig(env: Record<string, string | undefined>): ServerConfig {
  const issues: ConfigIssue[] = [];
  let cause: unknown;

  for (const name of Object.keys(env).sort()) {
    if (name.startsWith('GATEHOUSE_') && !KNOWN.has(name)) {
      const guess = closestKnownName(name);
      issues.push({
        variable: name,
        message: `${name} is not a Gatehouse setting${guess ? ` (did you mean ${guess}?)` : ''}; see docs/configuration.md`,
      });
    }
  }

  function read<T>(name: (typeof CONFIG_VARIABLES)[number], fallback: T, parse: (value: string) => T): T {
    const value = env[name];
    if (value === undefined || value === '') return fallback;
    try {
      return parse(value);
    } catch (err) {
      if (!(err instanceof BadValue)) throw err;
      issues.push({ variable: name, message: `${name}=${shown(name, value)} is not valid: expected ${err.expected}` });
      cause ??= err.cause;
      return fallback;
    }
  }

  const port = read('GATEHOUSE_PORT', 8740, (v) => parseInteger(v, CONFIG_LIMITS.port));
  const host = read('GATEHOUSE_HOST', '127.0.0.1', parseHost);
  const publicUrl = read('GATEHOUSE_PUBLIC_URL', `http://127.0.0.1:${port}`, parsePublicUrl);
  const url = read<DatabaseConfig>(
    'GATEHOUSE_DATABASE_URL',
    { kind: 'sqlite', path: './data/gatehouse.db' },
    parseDatabaseUrl,
  );
  const schema = read<string | undefined>('GATEHOUSE_DATABASE_SCHEMA', undefined, parseSchemaName);
  const urlIsBad = issues.some((i) => i.variable === 'GATEHOUSE_DATABASE_URL');
  if (schema !== undefined && url.kind !== 'postgres' && !urlIsBad) {
    issues.push({
      variable: 'GATEHOUSE_DATABASE_SCHEMA',
      message: `GATEHOUSE_DATABASE_SCHEMA=${shown('GATEHOUSE_DATABASE_SCHEMA', schema)} is set, but only a PostgreSQL database has schemas: GATEHOUSE_DATABASE_URL names SQLite`,
    });
  }
  const database: DatabaseConfig = url.kind === 'postgres' && schema !== undefined ? { ...url, schema } : url;
  const masterKey = read<Uint8Array | undefined>('GATEHOUSE_MASTER_KEY', undefined, parseMasterKey);
  const logLevel = read('GATEHOUSE_LOG_LEVEL', 'info', (v) => parseChoice(v, LOG_LEVELS));
  const bodyLimitBytes = read('GATEHOUSE_BODY_LIMIT_BYTES', 1_048_576, (v) =>
    parseInteger(v, CONFIG_LIMITS.bodyLimitBytes),
  );
  const role = read('GATEHOUSE_ROLE', 'all', (v) => parseChoice(v, ROLES));
  const trustProxy = read('GATEHOUSE_TRUST_PROXY', false, parseBoolean);
  const bundleTtlSeconds = read('GATEHOUSE_BUNDLE_TTL_SECONDS', 604_800, (v) =>
    parseInteger(v, CONFIG_LIMITS.bundleTtlSeconds),
  );
  const accessTokenTtlSeconds = read('GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS', 3600, (v) =>
    parseInteger(v, CONFIG_LIMITS.accessTokenTtlSeconds),
  );

  const [first, ...rest] = issues;
  if (first) throw new ConfigError([first, ...rest], { cause });
  return Object.freeze({
    port,
    host,
    publicUrl,
    database: Object.freeze(database),
    masterKey,
    logLevel,
    bodyLimitBytes,
    role,
    trustProxy,
    bundleTtlSeconds,
    accessTokenTtlSeconds,
  });
}

function parseInteger(value: string, range: { min: number; max: number }): number {
  const expected = `an integer from ${range.min} to ${range.max}`;
  if (!/^[0-9]{1,16}$/.test(value)) throw new BadValue(expected);
  const n = Number(value);
  if (n < range.min || n > range.max) throw new BadValue(expected);
  return n;
}

function parseChoice<T extends string>(value: string, choices: readonly T[]): T {
  const found = choices.find((c) => c === value);
  if (found === undefined) throw new BadValue(`one of ${choices.join(', ')}`);
  return found;
}

function parseBoolean(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new BadValue('true or false');
}

function parseHost(value: string): string {
  // A name or an IP address to bind: no scheme, port, path or white space.
  if (!/^[A-Za-z0-9.:_%-]{1,253}$/.test(value)) {
    throw new BadValue('a host name or IP address to listen on, such as 127.0.0.1, 0.0.0.0 or ::');
  }
  return value;
}

function parsePublicUrl(value: string): string {
  const expected =
    'an absolute http or https URL without query, fragment or credentials, such as https://auth.example.com';
  let url: URL;
  try {
    url = new URL(value);
  } catch (err) {
    throw new BadValue(expected, { cause: err });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BadValue(expected);
  if (value.includes('?') || value.includes('#') || url.username !== '' || url.password !== '') {
    throw new BadValue(expected);
  }
  return url.href.replace(/\/+$/, '');
}

function parseDatabaseUrl(value: string): DatabaseConfig {
  const expected =
    'sqlite:PATH (such as sqlite:./data/gatehouse.db), sqlite::memory:, or a postgres:// or postgresql:// URL';
  if (value.startsWith('sqlite:')) {
    const path = value.slice('sqlite:'.length);
    // `sqlite://x` reads like a URL but would name the absolute path `//x`: refuse the ambiguity.
    if (path === '' || path.startsWith('//')) throw new BadValue(expected);
    return { kind: 'sqlite', path };
  }
  if (value.startsWith('postgres://') || value.startsWith('postgresql://')) {
    let url: URL;
    try {
      url = new URL(value);
    } catch (err) {
      throw new BadValue(expected, { cause: err });
    }
    // A host, or a Unix socket directory given as ?host=/var/run/postgresql (libpq's form).
    if (url.hostname === '' && !url.searchParams.has('host')) throw new BadValue(expected);
    return { kind: 'postgres', url: value };
  }
  throw new BadValue(expected);
}

function parseSchemaName(value: string): string {
  // An unquoted PostgreSQL identifier, lower case (what it folds to), at most 63 bytes: it goes
  // into the connection's search_path and into every change notice as it is.
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
    throw new BadValue(
      'a PostgreSQL schema name: a lower-case letter or _, then up to 62 lower-case letters, digits or _',
    );
  }
  return value;
}

function parseMasterKey(value: string): Uint8Array {
  const expected =
    '32 bytes written as 64 hex characters or in base64/base64url (44 characters, or 43 without padding); generate one with `openssl rand -hex 32`';
  const hex = /^[0-9a-fA-F]+$/.test(value);
  if (hex && value.length !== 64 && value.length !== 43 && value.length !== 44) {
    throw new BadValue(`${expected}; got ${value.length} hex characters`);
  }
  let bytes: Buffer;
  if (hex && value.length === 64) bytes = Buffer.from(value, 'hex');
  else if (/^[A-Za-z0-9+/]+={0,2}$/.test(value)) bytes = Buffer.from(value, 'base64');
  else if (/^[A-Za-z0-9_-]+={0,2}$/.test(value)) bytes = Buffer.from(value, 'base64url');
  else throw new BadValue(expected);
  if (bytes.length !== 32) throw new BadValue(`${expected}; got ${bytes.length} bytes`);
  return new Uint8Array(bytes);
}

/** The value as an error message may show it: quoted, secrets redacted, credentials in URLs masked. */
function shown(name: string, value: string): string {
  if (SECRET_VARIABLES.has(name)) return `<redacted, ${value.length} characters>`;
  if (name === 'GATEHOUSE_DATABASE_URL')
    return JSON.stringify(value.replace(/^([a-z]+:\/\/[^/@:]*:)[^@]*@/i, '$1***@'));
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}

/** The known variable a misspelt one most likely meant (edit distance ≤ 3), if any. */
function closestKnownName(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const known of CONFIG_VARIABLES) {
    const d = editDistance(name, known);
    if (d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
