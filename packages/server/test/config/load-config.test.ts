import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_VARIABLES,
  ConfigError,
  loadConfig,
  OTHER_GATEHOUSE_VARIABLES,
  type ServerConfig,
} from '../../src/config/load-config.js';

const KEY_HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const KEY_BYTES = Uint8Array.from({ length: 32 }, (_, i) => i);
const KEY_BASE64 = Buffer.from(KEY_BYTES).toString('base64'); // 44 characters, padded
const KEY_BASE64URL = Buffer.from(Uint8Array.from({ length: 32 }, (_, i) => 255 - i)).toString('base64url'); // 43

const DEFAULTS: ServerConfig = {
  port: 8740,
  host: '127.0.0.1',
  publicUrl: 'http://127.0.0.1:8740',
  database: { kind: 'sqlite', path: './data/gatehouse.db' },
  masterKey: undefined,
  logLevel: 'info',
  bodyLimitBytes: 1_048_576,
  role: 'all',
  trustProxy: false,
  bundleTtlSeconds: 604_800,
  accessTokenTtlSeconds: 3600,
};

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('loadConfig did not throw');
}

describe('loadConfig: accepted values', () => {
  it('uses the defaults when nothing is set', () => {
    expect(loadConfig({})).toEqual(DEFAULTS);
  });

  it('treats empty variables as unset and ignores variables that are not GATEHOUSE_*', () => {
    expect(loadConfig({ GATEHOUSE_PORT: '', GATEHOUSE_MASTER_KEY: '', PATH: '/bin', PORT: 'x' })).toEqual(DEFAULTS);
  });

  it.each([
    ['GATEHOUSE_ADMIN_PASSWORD', 'correct horse'],
    ['GATEHOUSE_TEST_DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/test'],
    // docs/cli.md: apply and export --server read these.
    ['GATEHOUSE_SERVER', 'http://127.0.0.1:8740'],
    ['GATEHOUSE_TOKEN', 'eyJhbGciOiJFZERTQSJ9.e30.c2ln'],
  ])('lets %s be (read by other parts)', (name, value) => {
    expect(loadConfig({ [name]: value })).toEqual(DEFAULTS);
  });

  it.each<[Record<string, string>, Partial<ServerConfig>]>([
    [{ GATEHOUSE_PORT: '1' }, { port: 1, publicUrl: 'http://127.0.0.1:1' }],
    [{ GATEHOUSE_PORT: '65535' }, { port: 65535, publicUrl: 'http://127.0.0.1:65535' }],
    [
      { GATEHOUSE_PORT: '8080', GATEHOUSE_PUBLIC_URL: 'https://auth.example.com' },
      { port: 8080, publicUrl: 'https://auth.example.com' },
    ],
    [{ GATEHOUSE_HOST: '0.0.0.0' }, { host: '0.0.0.0' }],
    [{ GATEHOUSE_HOST: '::' }, { host: '::' }],
    [{ GATEHOUSE_HOST: 'gatehouse.internal' }, { host: 'gatehouse.internal' }],
    [{ GATEHOUSE_PUBLIC_URL: 'https://auth.example.com/' }, { publicUrl: 'https://auth.example.com' }],
    [
      { GATEHOUSE_PUBLIC_URL: 'http://example.com:9000/gatehouse/' },
      { publicUrl: 'http://example.com:9000/gatehouse' },
    ],
    [{ GATEHOUSE_PUBLIC_URL: 'HTTPS://Auth.Example.COM' }, { publicUrl: 'https://auth.example.com' }],
    [{ GATEHOUSE_DATABASE_URL: 'sqlite:./gh.db' }, { database: { kind: 'sqlite', path: './gh.db' } }],
    [
      { GATEHOUSE_DATABASE_URL: 'sqlite:/var/lib/gatehouse/gh.db' },
      { database: { kind: 'sqlite', path: '/var/lib/gatehouse/gh.db' } },
    ],
    [{ GATEHOUSE_DATABASE_URL: 'sqlite::memory:' }, { database: { kind: 'sqlite', path: ':memory:' } }],
    [
      { GATEHOUSE_DATABASE_URL: 'postgres://gh:s3cret@db.internal:5432/gatehouse' },
      { database: { kind: 'postgres', url: 'postgres://gh:s3cret@db.internal:5432/gatehouse' } },
    ],
    [
      { GATEHOUSE_DATABASE_URL: 'postgresql://db/gatehouse?sslmode=require' },
      { database: { kind: 'postgres', url: 'postgresql://db/gatehouse?sslmode=require' } },
    ],
    [
      { GATEHOUSE_DATABASE_URL: 'postgres:///gatehouse?host=/var/run/postgresql' },
      { database: { kind: 'postgres', url: 'postgres:///gatehouse?host=/var/run/postgresql' } },
    ],
    [{ GATEHOUSE_MASTER_KEY: KEY_HEX }, { masterKey: KEY_BYTES }],
    [{ GATEHOUSE_MASTER_KEY: KEY_HEX.toUpperCase() }, { masterKey: KEY_BYTES }],
    [{ GATEHOUSE_MASTER_KEY: KEY_BASE64 }, { masterKey: KEY_BYTES }],
    [{ GATEHOUSE_MASTER_KEY: KEY_BASE64.replace(/=+$/, '') }, { masterKey: KEY_BYTES }],
    [{ GATEHOUSE_MASTER_KEY: KEY_BASE64URL }, { masterKey: Uint8Array.from({ length: 32 }, (_, i) => 255 - i) }],
    ...(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const).map(
      (l): [Record<string, string>, Partial<ServerConfig>] => [{ GATEHOUSE_LOG_LEVEL: l }, { logLevel: l }],
    ),
    [{ GATEHOUSE_BODY_LIMIT_BYTES: '1024' }, { bodyLimitBytes: 1024 }],
    [{ GATEHOUSE_BODY_LIMIT_BYTES: '67108864' }, { bodyLimitBytes: 67_108_864 }],
    ...(['all', 'control', 'token', 'decision'] as const).map((r): [Record<string, string>, Partial<ServerConfig>] => [
      { GATEHOUSE_ROLE: r },
      { role: r },
    ]),
    [{ GATEHOUSE_TRUST_PROXY: 'true' }, { trustProxy: true }],
    [{ GATEHOUSE_TRUST_PROXY: 'false' }, { trustProxy: false }],
    [{ GATEHOUSE_BUNDLE_TTL_SECONDS: '60' }, { bundleTtlSeconds: 60 }],
    [{ GATEHOUSE_BUNDLE_TTL_SECONDS: '31536000' }, { bundleTtlSeconds: 31_536_000 }],
    [{ GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS: '60' }, { accessTokenTtlSeconds: 60 }],
    [{ GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS: '86400' }, { accessTokenTtlSeconds: 86_400 }],
  ])('%o', (env, expected) => {
    expect(loadConfig(env)).toEqual({ ...DEFAULTS, ...expected });
  });

  it('returns the master key as a plain Uint8Array', () => {
    const key = loadConfig({ GATEHOUSE_MASTER_KEY: KEY_HEX }).masterKey;
    expect(key?.constructor).toBe(Uint8Array);
  });
});

describe('loadConfig: errors name the variable, the value and what is expected', () => {
  const integer = (min: number, max: number) => `expected an integer from ${min} to ${max}`;
  const publicUrl =
    'expected an absolute http or https URL without query, fragment or credentials, such as https://auth.example.com';
  const database =
    'expected sqlite:PATH (such as sqlite:./data/gatehouse.db), sqlite::memory:, or a postgres:// or postgresql:// URL';
  const masterKey =
    'expected 32 bytes written as 64 hex characters or in base64/base64url (44 characters, or 43 without padding); generate one with `openssl rand -hex 32`';
  const host = 'expected a host name or IP address to listen on, such as 127.0.0.1, 0.0.0.0 or ::';

  it.each<[string, string, string]>([
    ['GATEHOUSE_PORT', '0', `GATEHOUSE_PORT="0" is not valid: ${integer(1, 65535)}`],
    ['GATEHOUSE_PORT', '65536', `GATEHOUSE_PORT="65536" is not valid: ${integer(1, 65535)}`],
    ['GATEHOUSE_PORT', 'http', `GATEHOUSE_PORT="http" is not valid: ${integer(1, 65535)}`],
    ['GATEHOUSE_PORT', '80.5', `GATEHOUSE_PORT="80.5" is not valid: ${integer(1, 65535)}`],
    ['GATEHOUSE_PORT', '-1', `GATEHOUSE_PORT="-1" is not valid: ${integer(1, 65535)}`],
    ['GATEHOUSE_PORT', '1e3', `GATEHOUSE_PORT="1e3" is not valid: ${integer(1, 65535)}`],
    ['GATEHOUSE_PORT', ' 8740', `GATEHOUSE_PORT=" 8740" is not valid: ${integer(1, 65535)}`],
    ['GATEHOUSE_HOST', 'http://0.0.0.0', `GATEHOUSE_HOST="http://0.0.0.0" is not valid: ${host}`],
    ['GATEHOUSE_HOST', 'my host', `GATEHOUSE_HOST="my host" is not valid: ${host}`],
    ['GATEHOUSE_PUBLIC_URL', 'auth.example.com', `GATEHOUSE_PUBLIC_URL="auth.example.com" is not valid: ${publicUrl}`],
    [
      'GATEHOUSE_PUBLIC_URL',
      'ftp://example.com',
      `GATEHOUSE_PUBLIC_URL="ftp://example.com" is not valid: ${publicUrl}`,
    ],
    [
      'GATEHOUSE_PUBLIC_URL',
      'https://example.com/?a=1',
      `GATEHOUSE_PUBLIC_URL="https://example.com/?a=1" is not valid: ${publicUrl}`,
    ],
    [
      'GATEHOUSE_PUBLIC_URL',
      'https://example.com/?',
      `GATEHOUSE_PUBLIC_URL="https://example.com/?" is not valid: ${publicUrl}`,
    ],
    [
      'GATEHOUSE_PUBLIC_URL',
      'https://example.com/#top',
      `GATEHOUSE_PUBLIC_URL="https://example.com/#top" is not valid: ${publicUrl}`,
    ],
    [
      'GATEHOUSE_PUBLIC_URL',
      'https://me@example.com',
      `GATEHOUSE_PUBLIC_URL="https://me@example.com" is not valid: ${publicUrl}`,
    ],
    [
      'GATEHOUSE_DATABASE_URL',
      'mysql://db/gatehouse',
      `GATEHOUSE_DATABASE_URL="mysql://db/gatehouse" is not valid: ${database}`,
    ],
    [
      'GATEHOUSE_DATABASE_URL',
      './data/gatehouse.db',
      `GATEHOUSE_DATABASE_URL="./data/gatehouse.db" is not valid: ${database}`,
    ],
    ['GATEHOUSE_DATABASE_URL', 'sqlite:', `GATEHOUSE_DATABASE_URL="sqlite:" is not valid: ${database}`],
    [
      'GATEHOUSE_DATABASE_URL',
      'sqlite://gatehouse.db',
      `GATEHOUSE_DATABASE_URL="sqlite://gatehouse.db" is not valid: ${database}`,
    ],
    ['GATEHOUSE_DATABASE_URL', 'postgres://', `GATEHOUSE_DATABASE_URL="postgres://" is not valid: ${database}`],
    [
      'GATEHOUSE_DATABASE_URL',
      'postgres://gh:s3cret@db host/gatehouse',
      `GATEHOUSE_DATABASE_URL="postgres://gh:***@db host/gatehouse" is not valid: ${database}`,
    ],
    [
      'GATEHOUSE_MASTER_KEY',
      KEY_HEX.slice(0, 62),
      `GATEHOUSE_MASTER_KEY=<redacted, 62 characters> is not valid: ${masterKey}; got 62 hex characters`,
    ],
    [
      'GATEHOUSE_MASTER_KEY',
      Buffer.alloc(16, 7).toString('base64'),
      `GATEHOUSE_MASTER_KEY=<redacted, 24 characters> is not valid: ${masterKey}; got 16 bytes`,
    ],
    [
      'GATEHOUSE_MASTER_KEY',
      Buffer.alloc(48, 7).toString('base64url'),
      `GATEHOUSE_MASTER_KEY=<redacted, 64 characters> is not valid: ${masterKey}; got 48 bytes`,
    ],
    ['GATEHOUSE_MASTER_KEY', 'not a key!', `GATEHOUSE_MASTER_KEY=<redacted, 10 characters> is not valid: ${masterKey}`],
    [
      'GATEHOUSE_LOG_LEVEL',
      'verbose',
      'GATEHOUSE_LOG_LEVEL="verbose" is not valid: expected one of fatal, error, warn, info, debug, trace, silent',
    ],
    [
      'GATEHOUSE_LOG_LEVEL',
      'INFO',
      'GATEHOUSE_LOG_LEVEL="INFO" is not valid: expected one of fatal, error, warn, info, debug, trace, silent',
    ],
    [
      'GATEHOUSE_BODY_LIMIT_BYTES',
      '1023',
      `GATEHOUSE_BODY_LIMIT_BYTES="1023" is not valid: ${integer(1024, 67108864)}`,
    ],
    [
      'GATEHOUSE_BODY_LIMIT_BYTES',
      '67108865',
      `GATEHOUSE_BODY_LIMIT_BYTES="67108865" is not valid: ${integer(1024, 67108864)}`,
    ],
    ['GATEHOUSE_BODY_LIMIT_BYTES', '1mb', `GATEHOUSE_BODY_LIMIT_BYTES="1mb" is not valid: ${integer(1024, 67108864)}`],
    ['GATEHOUSE_ROLE', 'admin', 'GATEHOUSE_ROLE="admin" is not valid: expected one of all, control, token, decision'],
    ['GATEHOUSE_TRUST_PROXY', 'yes', 'GATEHOUSE_TRUST_PROXY="yes" is not valid: expected true or false'],
    ['GATEHOUSE_TRUST_PROXY', '1', 'GATEHOUSE_TRUST_PROXY="1" is not valid: expected true or false'],
    ['GATEHOUSE_TRUST_PROXY', 'TRUE', 'GATEHOUSE_TRUST_PROXY="TRUE" is not valid: expected true or false'],
    ['GATEHOUSE_BUNDLE_TTL_SECONDS', '59', `GATEHOUSE_BUNDLE_TTL_SECONDS="59" is not valid: ${integer(60, 31536000)}`],
    [
      'GATEHOUSE_BUNDLE_TTL_SECONDS',
      '31536001',
      `GATEHOUSE_BUNDLE_TTL_SECONDS="31536001" is not valid: ${integer(60, 31536000)}`,
    ],
    [
      'GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS',
      '0',
      `GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS="0" is not valid: ${integer(60, 86400)}`,
    ],
    [
      'GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS',
      '86401',
      `GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS="86401" is not valid: ${integer(60, 86400)}`,
    ],
    [
      'GATEHOUSE_PROT',
      '8740',
      'GATEHOUSE_PROT is not a Gatehouse setting (did you mean GATEHOUSE_PORT?); see docs/configuration.md',
    ],
    [
      'GATEHOUSE_MASTERKEY',
      KEY_HEX,
      'GATEHOUSE_MASTERKEY is not a Gatehouse setting (did you mean GATEHOUSE_MASTER_KEY?); see docs/configuration.md',
    ],
    ['GATEHOUSE_COLOUR', 'blue', 'GATEHOUSE_COLOUR is not a Gatehouse setting; see docs/configuration.md'],
  ])('%s=%j', (variable, value, message) => {
    const err = configError({ [variable]: value });
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.name).toBe('ConfigError');
    expect(err.variable).toBe(variable);
    expect(err.message).toBe(message);
    expect(err.issues).toEqual([{ variable, message }]);
  });

  it('never shows a master key, nor the value of an unknown variable (it may be a misspelt secret)', () => {
    for (const env of [{ GATEHOUSE_MASTER_KEY: 'abc123' }, { GATEHOUSE_MASTERKEY: 'abc123' }] as Record<
      string,
      string
    >[]) {
      expect(configError(env).message).not.toContain('abc123');
    }
  });

  it('reports every bad variable at once, one line each; `variable` is the first', () => {
    const err = configError({ GATEHOUSE_PORT: 'x', GATEHOUSE_ROLE: 'admin', GATEHOUSE_PROT: '1' });
    expect(err.variable).toBe('GATEHOUSE_PROT');
    expect(err.issues.map((i) => i.variable)).toEqual(['GATEHOUSE_PROT', 'GATEHOUSE_PORT', 'GATEHOUSE_ROLE']);
    expect(err.message.split('\n')).toEqual(err.issues.map((i) => i.message));
  });

  it('chains the parser error as the cause', () => {
    expect(configError({ GATEHOUSE_PUBLIC_URL: 'not a url' }).cause).toBeInstanceOf(TypeError);
  });
});

describe('docs/configuration.md', () => {
  it('documents every variable loadConfig reads or allows', () => {
    const doc = readFileSync(new URL('../../../../docs/configuration.md', import.meta.url), 'utf8');
    for (const name of [...CONFIG_VARIABLES, ...OTHER_GATEHOUSE_VARIABLES]) expect(doc).toContain(`\`${name}\``);
  });
});
