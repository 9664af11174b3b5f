/**
 * The token benchmark: client-credentials token requests per second and their latency at the
 * token endpoint over HTTP on loopback, Gatehouse against a bare oidc-provider (in-memory
 * adapter, the same Ed25519 key type) measured in the same run as the reference.
 *
 *   npm run -s bench:token                               # ~1 min: 10 and 50 connections, 3 s warm-up + 10 s each
 *   npm run -s bench:token -- --rounds 3 --duration 5    # medians over 3 interleaved rounds
 *   npm run -s bench:token -- --database postgres        # also Gatehouse on PostgreSQL (GATEHOUSE_TEST_DATABASE_URL)
 *   npm run -s bench:token -- --cpu-prof                 # profile the server children (paths printed)
 *
 * Options: --duration S, --warmup S, --connections 10,50, --pipelining N, --rounds N, --scenarios
 * bare,gatehouse (and gatehouse-pg), --database sqlite|postgres, --cpu-prof, --json. See
 * bench/README.md for the method.
 *
 * Every server runs in a child process of its own, so that autocannon's load generator (here) and
 * the server do not share an event loop. A few token responses of every server are checked in
 * full (status, token type, an at+jwt EdDSA access token whose signature verifies with the
 * server's JWKS, its claims, the granted and rejected scopes) before and after the timed runs; a
 * wrong answer, a non-2xx status, a connection error or a server that dies makes the exit code 1.
 * Missing a target does not: benchmarks print figures.
 */

import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import { createPublicKey, verify as verifySignature, type JsonWebKey } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  basicAuthorization,
  CLIENT_ID,
  DOMAIN,
  EXPECTED_GROUPS,
  EXPECTED_PERMISSIONS,
  EXPECTED_ROLES,
  GRANTED_SCOPE,
  REJECTED_SCOPE,
  REQUESTED_SCOPE,
  RESOURCE,
  TOKEN_REQUEST_BODY,
  TOKEN_TTL_SECONDS,
} from './domain.js';
import type { ChildMessage, ParentMessage, ServerReady, Usage } from './protocol.js';
import { int, median, ms, pct, percentile, positive, table } from '../shared/bench-tools.js';

const GATEHOUSE_SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
const BARE_SERVER = fileURLToPath(new URL('./bare-server.ts', import.meta.url));
const START_TIMEOUT_MS = 120_000;
/** Token responses checked in full per server, before and after the timed runs. */
const CHECKED_RESPONSES = 3;

const SCENARIOS = ['bare', 'gatehouse', 'gatehouse-pg'] as const;
type ScenarioKey = (typeof SCENARIOS)[number];
const DEFAULT_SCENARIOS: ScenarioKey[] = ['bare', 'gatehouse'];

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: process.env.BENCH_TOKEN_DURATION ?? '10' },
    warmup: { type: 'string', default: process.env.BENCH_TOKEN_WARMUP ?? '3' },
    connections: { type: 'string', default: '10,50' },
    pipelining: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '1' },
    scenarios: { type: 'string' },
    database: { type: 'string', default: 'sqlite' },
    'cpu-prof': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});

if (values.database !== 'sqlite' && values.database !== 'postgres') {
  throw new Error(`--database: sqlite or postgres, got "${values.database}"`);
}
const options = {
  durationS: positive('duration', values.duration, false),
  warmupS: positive('warmup', values.warmup, false, true),
  connections: [...new Set(values.connections.split(',').map((c) => positive('connections', c.trim(), true)))],
  pipelining: positive('pipelining', values.pipelining, true),
  rounds: positive('rounds', values.rounds, true),
  database: values.database,
};
const chosen: ScenarioKey[] = (values.scenarios?.split(',').map((s) => s.trim()) ?? [...DEFAULT_SCENARIOS]).map((s) => {
  if (!(SCENARIOS as readonly string[]).includes(s)) {
    throw new Error(`--scenarios: unknown scenario "${s}" (${SCENARIOS.join(', ')})`);
  }
  return s as ScenarioKey;
});
// --database postgres: Gatehouse on PostgreSQL too (the third scenario).
if (options.database === 'postgres' && !chosen.includes('gatehouse-pg')) chosen.push('gatehouse-pg');
const json = values.json;

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

// ---- the scenarios -------------------------------------------------------------------------------

interface Scenario {
  key: ScenarioKey;
  label: string;
  file: string;
  args: string[];
  /** Gatehouse answers with scope_rejected and its own claims; the bare provider with neither. */
  gatehouse: boolean;
}

const SCENARIO: Record<ScenarioKey, Scenario> = {
  bare: { key: 'bare', label: 'bare oidc-provider', file: BARE_SERVER, args: [], gatehouse: false },
  gatehouse: {
    key: 'gatehouse',
    label: 'Gatehouse, SQLite',
    file: GATEHOUSE_SERVER,
    args: ['--database', 'sqlite'],
    gatehouse: true,
  },
  'gatehouse-pg': {
    key: 'gatehouse-pg',
    label: 'Gatehouse, PostgreSQL',
    file: GATEHOUSE_SERVER,
    args: ['--database', 'postgres'],
    gatehouse: true,
  },
};

// ---- the children --------------------------------------------------------------------------------

/** A server child: its port and credentials, and its CPU time and memory on request. */
class ServerChild {
  readonly #process: ChildProcess;
  #waiting: ((u: Usage) => void)[] = [];
  #exited: Promise<void>;

  private constructor(
    readonly name: string,
    child: ChildProcess,
    readonly ready: ServerReady,
  ) {
    this.#process = child;
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'usage') this.#waiting.shift()?.(m);
    });
    this.#exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  static start(name: string, file: string, args: string[], execArgv: string[]): Promise<ServerChild> {
    const child = fork(file, args, { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    // Children's output (pino warnings, stack traces) goes to stderr, keeping --json clean.
    child.stdout?.pipe(process.stderr);
    child.stderr?.pipe(process.stderr);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${name}: not ready after ${START_TIMEOUT_MS / 1000} s`));
      }, START_TIMEOUT_MS);
      const onExit = (code: number | null, signal: string | null): void => {
        clearTimeout(timer);
        reject(new Error(`${name} exited with ${signal ?? `code ${code}`} before it was ready`));
      };
      child.once('exit', onExit);
      child.once('error', reject);
      child.once('message', (m: ChildMessage) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        if (m.type === 'ready') resolve(new ServerChild(name, child, m));
        else {
          // The child exits by itself after cleaning up (a PostgreSQL schema to drop).
          const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => clearTimeout(killer));
          reject(new Error(`${name} failed to start:\n${m.type === 'error' ? m.message : JSON.stringify(m)}`));
        }
      });
    });
  }

  get alive(): boolean {
    return this.#process.exitCode === null && this.#process.signalCode === null;
  }

  usage(): Promise<Usage> {
    if (!this.alive) return Promise.reject(new Error(`${this.name} is not running`));
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#process.send({ type: 'usage' } satisfies ParentMessage);
    });
  }

  /** Asks the child to close and exit; kills it if it has not after 15 s. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.#process.send({ type: 'stop' } satisfies ParentMessage);
    const timer = setTimeout(() => this.#process.kill('SIGKILL'), 15_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

// ---- checking ------------------------------------------------------------------------------------

const headersOf = (ready: ServerReady): Record<string, string> => ({
  'content-type': 'application/x-www-form-urlencoded',
  authorization: basicAuthorization(ready.clientId, ready.clientSecret),
});

function decodePart(part: string | undefined): Record<string, unknown> | undefined {
  if (part === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const sorted = (v: unknown): unknown => (Array.isArray(v) ? [...(v as string[])].sort() : v);

/** What is wrong with one token response of `s` (empty when nothing is); `jwks` is the server's. */
function checkTokenResponse(
  s: Scenario,
  ready: ServerReady,
  jwks: JsonWebKey[],
  status: number,
  text: string,
  issuedAfter: number,
): string[] {
  if (status !== 200) return [`status ${status}: ${text.slice(0, 300)}`];
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return [`not JSON: ${text.slice(0, 300)}`];
  }
  const wrong: string[] = [];
  const expect = (what: string, actual: unknown, expected: unknown): void => {
    if (!same(actual, expected)) wrong.push(`${what} ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  };
  expect('token_type', body.token_type, 'Bearer');
  expect('scope', body.scope, GRANTED_SCOPE);
  expect('scope_rejected', body.scope_rejected, s.gatehouse ? REJECTED_SCOPE : undefined);
  expect('expires_in', body.expires_in, TOKEN_TTL_SECONDS);
  const token = body.access_token;
  if (typeof token !== 'string') return [...wrong, 'no access_token'];
  const parts = token.split('.');
  const header = decodePart(parts[0]);
  const payload = decodePart(parts[1]);
  if (parts.length !== 3 || header === undefined || payload === undefined) return [...wrong, 'access_token is no JWS'];
  expect('typ', header.typ, 'at+jwt');
  expect('alg', header.alg, 'EdDSA');
  const jwk = jwks.find((k) => k.kid === header.kid);
  if (jwk === undefined) wrong.push(`kid ${JSON.stringify(header.kid)} is not in the JWKS`);
  else if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519')
    wrong.push(`the signing key is ${jwk.kty}/${jwk.crv}, not Ed25519`);
  else {
    const ok = verifySignature(
      null,
      Buffer.from(`${parts[0]}.${parts[1]}`),
      createPublicKey({ key: jwk, format: 'jwk' }),
      Buffer.from(parts[2]!, 'base64url'),
    );
    if (!ok) wrong.push('the signature does not verify with the JWKS');
  }
  expect('iss', payload.iss, ready.issuer);
  expect('aud', payload.aud, RESOURCE);
  expect('sub', payload.sub, CLIENT_ID);
  expect('client_id', payload.client_id, CLIENT_ID);
  expect('scope claim', payload.scope, GRANTED_SCOPE);
  if (typeof payload.iat !== 'number' || payload.iat < issuedAfter - 1) wrong.push(`iat ${String(payload.iat)}`);
  else expect('exp - iat', (payload.exp as number) - payload.iat, TOKEN_TTL_SECONDS);
  if (typeof payload.jti !== 'string' || payload.jti.length < 20) wrong.push(`jti ${JSON.stringify(payload.jti)}`);
  if (s.gatehouse) {
    expect('domain', payload.domain, DOMAIN);
    expect('roles', sorted(payload.roles), [...EXPECTED_ROLES].sort());
    expect('groups', sorted(payload.groups), [...EXPECTED_GROUPS].sort());
    expect('permissions', payload.permissions, EXPECTED_PERMISSIONS);
  }
  return wrong;
}

/** Asks `child` for CHECKED_RESPONSES tokens, one after another, and checks each in full. */
async function verify(s: Scenario, child: ServerChild): Promise<string[]> {
  const { ready } = child;
  const base = `http://127.0.0.1:${ready.port}`;
  const wrong: string[] = [];
  try {
    const jwksPath = ready.tokenPath.replace(/\/token$/, '/jwks');
    const jwksResponse = await fetch(`${base}${jwksPath}`);
    const jwks = ((await jwksResponse.json()) as { keys?: JsonWebKey[] }).keys ?? [];
    const jtis = new Set<unknown>();
    for (let i = 0; i < CHECKED_RESPONSES; i++) {
      const issuedAfter = Math.floor(Date.now() / 1000);
      const response = await fetch(`${base}${ready.tokenPath}`, {
        method: 'POST',
        headers: headersOf(ready),
        body: TOKEN_REQUEST_BODY,
      });
      const text = await response.text();
      for (const w of checkTokenResponse(s, ready, jwks, response.status, text, issuedAfter)) {
        wrong.push(`${s.label}, response #${i + 1}: ${w}`);
      }
      if (response.status === 200) {
        const token = (JSON.parse(text) as { access_token?: string }).access_token;
        jtis.add(decodePart(token?.split('.')[1])?.jti);
      }
    }
    if (wrong.length === 0 && jtis.size !== CHECKED_RESPONSES) wrong.push(`${s.label}: the same jti twice`);
  } catch (err) {
    wrong.push(`${s.label}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return wrong.slice(0, 10);
}

// ---- measuring -----------------------------------------------------------------------------------

/** The figures of one timed run of one scenario at one number of connections. */
interface Figures {
  tokensPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  requests: number;
  durationS: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** CPU time of the server child and of this process (autocannon), in % of one core. */
  serverCpuPct: number;
  clientCpuPct: number;
  /** The server's CPU time per token (µs, all its threads): what a token costs, however many cores it got. */
  serverCpuUsPerToken: number;
  serverRssMb: number;
}

/** One autocannon run against `child` for `seconds`; latencies kept at full resolution (autocannon's histogram has 1 ms steps). */
async function run(child: ServerChild, connections: number, seconds: number): Promise<Figures> {
  const { ready } = child;
  const u0 = await child.usage();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const instance = autocannon({
    url: `http://127.0.0.1:${ready.port}${ready.tokenPath}`,
    connections,
    pipelining: options.pipelining,
    duration: seconds,
    method: 'POST',
    headers: headersOf(ready),
    body: TOKEN_REQUEST_BODY,
  });
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status < 200 || status > 299) return;
    if (n === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[n++] = ms;
  });
  const r = await instance;
  const wallS = (performance.now() - t0) / 1000;
  const c1 = process.cpuUsage(c0);
  const u1 = await child.usage();
  const ordered = latencies.subarray(0, n).sort();
  let sum = 0;
  for (const v of ordered) sum += v;
  const completed = Object.values(r.statusCodeStats).reduce((a, c) => a + c.count, 0);
  const serverCpuUs = u1.userUs - u0.userUs + u1.systemUs - u0.systemUs;
  return {
    tokensPerSecond: completed / r.duration,
    p50Ms: percentile(ordered, 50),
    p99Ms: percentile(ordered, 99),
    meanMs: n > 0 ? sum / n : Number.NaN,
    maxMs: n > 0 ? ordered[n - 1]! : Number.NaN,
    requests: completed,
    durationS: r.duration,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([code, c]) => [code, c.count])),
    serverCpuPct: (serverCpuUs / 1e6 / wallS) * 100,
    clientCpuPct: ((c1.user + c1.system) / 1e6 / wallS) * 100,
    serverCpuUsPerToken: completed > 0 ? serverCpuUs / completed : Number.NaN,
    serverRssMb: u1.rssMb,
  };
}

/** The median of every numeric figure over the rounds; counts are summed. */
function combine(runs: Figures[]): Figures {
  const pick = (f: (x: Figures) => number): number => median(runs.map(f));
  const sum = (f: (x: Figures) => number): number => runs.reduce((a, x) => a + f(x), 0);
  const statusCodes: Record<string, number> = {};
  for (const r of runs)
    for (const [code, c] of Object.entries(r.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + c;
  return {
    tokensPerSecond: pick((x) => x.tokensPerSecond),
    p50Ms: pick((x) => x.p50Ms),
    p99Ms: pick((x) => x.p99Ms),
    meanMs: pick((x) => x.meanMs),
    maxMs: Math.max(...runs.map((x) => x.maxMs)),
    requests: sum((x) => x.requests),
    durationS: sum((x) => x.durationS),
    non2xx: sum((x) => x.non2xx),
    errors: sum((x) => x.errors),
    timeouts: sum((x) => x.timeouts),
    statusCodes,
    serverCpuPct: pick((x) => x.serverCpuPct),
    clientCpuPct: pick((x) => x.clientCpuPct),
    serverCpuUsPerToken: pick((x) => x.serverCpuUsPerToken),
    serverRssMb: Math.max(...runs.map((x) => x.serverRssMb)),
  };
}

/**
 * Gatehouse's share of the bare provider at the same number of connections: the median over the
 * rounds of each round's ratio (both measured in that round), so that a round slowed by the
 * machine's other work counts as a ratio, not as two unrelated figures.
 */
function shareOfBare(runs: Figures[], bare: Figures[] | undefined): number {
  if (bare === undefined || bare.length !== runs.length) return Number.NaN;
  return median(runs.map((r, i) => r.tokensPerSecond / bare[i]!.tokensPerSecond));
}

/**
 * The same in CPU time: the bare provider's CPU per token over Gatehouse's (median of the rounds'
 * ratios). It does not depend on how many cores each server got, which tokens/s does: the bare
 * provider signs on libuv's thread pool (WebCrypto) and can use a second core, Gatehouse signs on
 * its main thread.
 */
function cpuShareOfBare(runs: Figures[], bare: Figures[] | undefined): number {
  if (bare === undefined || bare.length !== runs.length) return Number.NaN;
  return median(runs.map((r, i) => bare[i]!.serverCpuUsPerToken / r.serverCpuUsPerToken));
}

// ---- output --------------------------------------------------------------------------------------

interface Target {
  what: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

/** targets.md: "token endpoint, client credentials, JWT: ≥ 70% of a bare oidc-provider … (≈ ≥ 2,000 tokens/s here)". */
function targets(results: Result[]): Target[] {
  const out: Target[] = [];
  for (const r of results) {
    if (!SCENARIO[r.scenario].gatehouse) continue;
    const at = `${SCENARIO[r.scenario].label}, ${r.connections} connections`;
    out.push({
      what: `token endpoint (${at}): share of the bare oidc-provider`,
      target: '≥ 70%',
      measured: Number.isFinite(r.shareOfBare) ? pct(r.shareOfBare * 100) : 'no bare provider measured',
      met: Number.isFinite(r.shareOfBare) ? r.shareOfBare >= 0.7 : undefined,
    });
    out.push({
      what: `token endpoint (${at}): tokens/s`,
      target: '≥ 2,000',
      measured: int(r.figures.tokensPerSecond),
      met: r.figures.tokensPerSecond >= 2000,
    });
  }
  return out;
}

interface Result {
  scenario: ScenarioKey;
  connections: number;
  figures: Figures;
  shareOfBare: number;
  cpuShareOfBare: number;
  rounds: Figures[];
}

// ---- main ----------------------------------------------------------------------------------------

const machine = {
  node: process.version,
  cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
  cores: os.availableParallelism(),
  loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
  loadAverageAfter: undefined as number[] | undefined,
  platform: `${os.platform()} ${os.release()}`,
};

const children = new Map<ScenarioKey, ServerChild>();
const failures: string[] = [];
let profileDir: string | undefined;

async function main(): Promise<void> {
  const started = Date.now();
  if (!json) {
    process.stdout.write(
      `Token benchmark (client credentials, JWT access tokens, HTTP on loopback) — Node ${machine.node}, ` +
        `${machine.cpu}, ${machine.cores} cores, load average ${machine.loadAverage.join(' ')}\n` +
        `autocannon: ${options.connections.join(' and ')} connections, pipelining ${options.pipelining}, ` +
        `${options.warmupS} s warm-up + ${options.durationS} s per scenario, ${options.rounds} round(s)\n`,
    );
  }
  const execArgv = ['--import', 'tsx'];
  if (values['cpu-prof']) profileDir = mkdtempSync(join(os.tmpdir(), 'gatehouse-bench-token-prof-'));
  const argvOf = (s: Scenario): string[] =>
    profileDir === undefined
      ? execArgv
      : // A folder per child: each thread writes a profile (tsx's module loader runs in a worker).
        [...execArgv, '--cpu-prof', '--cpu-prof-dir', join(profileDir, s.key)];

  if (chosen.includes('gatehouse-pg') && !process.env.GATEHOUSE_TEST_DATABASE_URL) {
    failures.push('Gatehouse on PostgreSQL needs GATEHOUSE_TEST_DATABASE_URL (postgres://user@host:port/database)');
    return;
  }
  log('starting the servers…');
  const starts = await Promise.allSettled(
    chosen.map((k) => ServerChild.start(SCENARIO[k].label, SCENARIO[k].file, SCENARIO[k].args, argvOf(SCENARIO[k]))),
  );
  for (const [i, s] of starts.entries()) {
    if (s.status === 'fulfilled') children.set(chosen[i]!, s.value);
    else failures.push(s.reason instanceof Error ? s.reason.message : String(s.reason));
  }
  if (failures.length > 0) return;
  for (const [key, child] of children) {
    log(
      `${SCENARIO[key].label}: port ${child.ready.port}, ${child.ready.storage}, oidc-provider ` +
        `${child.ready.providerVersion}, ready in ${(child.ready.setupMs / 1000).toFixed(1)} s`,
    );
  }
  if (!json) {
    process.stdout.write(
      `request: POST token endpoint, grant_type=client_credentials, client_secret_basic (${CLIENT_ID}), ` +
        `scope "${REQUESTED_SCOPE}", resource ${RESOURCE}; Gatehouse grants "${GRANTED_SCOPE}" by policy and ` +
        `rejects "${REJECTED_SCOPE}", the bare provider's resource server lists "${GRANTED_SCOPE}"\n`,
    );
  }

  log('checking token responses…');
  for (const [key, child] of children) {
    for (const w of await verify(SCENARIO[key], child)) failures.push(`wrong answer before the runs: ${w}`);
  }
  if (failures.length > 0) return;

  const runs = new Map<string, Figures[]>();
  const runKey = (s: ScenarioKey, c: number): string => `${s}@${c}`;
  for (let round = 1; round <= options.rounds; round++) {
    // Every other round the other way round, so that neither server always runs after the other.
    const order = round % 2 === 1 ? chosen : [...chosen].reverse();
    for (const connections of options.connections) {
      for (const key of order) {
        const s = SCENARIO[key];
        const child = children.get(key)!;
        const tag = `${s.label}, ${connections} connections${options.rounds > 1 ? ` (round ${round}/${options.rounds})` : ''}`;
        if (options.warmupS > 0) {
          log(`${tag}: warm-up ${options.warmupS} s…`);
          await run(child, connections, options.warmupS);
        }
        log(`${tag}: ${options.durationS} s…`);
        const f = await run(child, connections, options.durationS);
        const k = runKey(key, connections);
        runs.set(k, [...(runs.get(k) ?? []), f]);
        log(
          `  ${int(f.tokensPerSecond)} tokens/s, p50 ${ms(f.p50Ms)} ms, p99 ${ms(f.p99Ms)} ms, ` +
            `server CPU ${pct(f.serverCpuPct)}, autocannon CPU ${pct(f.clientCpuPct)}` +
            (f.non2xx + f.errors + f.timeouts > 0
              ? `, ${f.non2xx} non-2xx ${JSON.stringify(f.statusCodes)}, ${f.errors} errors, ${f.timeouts} timeouts`
              : ''),
        );
        if (!child.alive) {
          failures.push(`${child.name} exited during its run`);
          return;
        }
      }
    }
  }

  log('checking token responses again…');
  for (const [key, child] of children) {
    for (const w of await verify(SCENARIO[key], child)) failures.push(`wrong answer after the runs: ${w}`);
  }
  machine.loadAverageAfter = os.loadavg().map((l) => Number(l.toFixed(2)));

  const results: Result[] = [];
  for (const connections of options.connections) {
    for (const key of chosen) {
      const rs = runs.get(runKey(key, connections))!;
      const bare = runs.get(runKey('bare', connections));
      results.push({
        scenario: key,
        connections,
        figures: combine(rs),
        shareOfBare: shareOfBare(rs, bare),
        cpuShareOfBare: cpuShareOfBare(rs, bare),
        rounds: rs,
      });
    }
  }
  for (const r of results) {
    const at = `${SCENARIO[r.scenario].label}, ${r.connections} connections`;
    if (r.figures.non2xx > 0)
      failures.push(`${at}: ${r.figures.non2xx} non-2xx answers ${JSON.stringify(r.figures.statusCodes)}`);
    if (r.figures.errors > 0 || r.figures.timeouts > 0) {
      failures.push(`${at}: ${r.figures.errors} errors, ${r.figures.timeouts} timeouts`);
    }
  }
  const goals = targets(results);

  if (json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          machine,
          options,
          request: {
            clientId: CLIENT_ID,
            scope: REQUESTED_SCOPE,
            resource: RESOURCE,
            granted: GRANTED_SCOPE,
            rejected: REJECTED_SCOPE,
          },
          servers: Object.fromEntries(
            [...children].map(([key, c]) => [
              key,
              { storage: c.ready.storage, providerVersion: c.ready.providerVersion, setupMs: c.ready.setupMs },
            ]),
          ),
          results: results.map((r) => ({
            scenario: r.scenario,
            connections: r.connections,
            ...r.figures,
            shareOfBare: Number.isFinite(r.shareOfBare) ? r.shareOfBare : undefined,
            cpuShareOfBare: Number.isFinite(r.cpuShareOfBare) ? r.cpuShareOfBare : undefined,
            rounds: r.rounds,
          })),
          targets: goals,
          failures,
          ok: failures.length === 0,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    const rows: string[][] = [
      [
        'scenario',
        'conns',
        'tokens/s',
        'p50 ms',
        'p99 ms',
        'of bare',
        'non-2xx',
        'errors',
        'server CPU',
        'CPU µs/token',
        'of bare (CPU)',
        'client CPU',
        'server RSS MB',
      ],
    ];
    for (const r of results) {
      const f = r.figures;
      rows.push([
        SCENARIO[r.scenario].label,
        String(r.connections),
        int(f.tokensPerSecond),
        ms(f.p50Ms),
        ms(f.p99Ms),
        r.scenario === 'bare' ? '100%' : pct(r.shareOfBare * 100),
        int(f.non2xx),
        int(f.errors + f.timeouts),
        pct(f.serverCpuPct),
        int(f.serverCpuUsPerToken),
        r.scenario === 'bare' ? '100%' : pct(r.cpuShareOfBare * 100),
        pct(f.clientCpuPct),
        int(f.serverRssMb),
      ]);
    }
    const lines = [
      '',
      table(rows),
      '',
      `latency: per response, from autocannon's send to the full response (2xx only); CPU: % of one core ` +
        `(all the process's threads); of bare: tokens/s over the bare oidc-provider's at the same connections; ` +
        `of bare (CPU): the bare provider's server CPU per token over this one's` +
        (options.rounds > 1 ? ' (both: the median of the per-round ratios)' : ''),
    ];
    if (options.rounds > 1) lines.push(`figures are medians over ${options.rounds} rounds`);
    lines.push(
      `machine: ${machine.cores} cores (${machine.cpu}), load average ${machine.loadAverage.join(' ')} before, ` +
        `${machine.loadAverageAfter.join(' ')} after (autocannon and the servers run on the same cores)`,
    );
    if (goals.length > 0) {
      lines.push('', 'targets (shared/design/targets.md):');
      lines.push(
        table(
          goals.map((g) => [
            `  ${g.what}`,
            g.target,
            g.measured,
            g.met === undefined ? '(not judged)' : g.met ? 'met' : 'NOT met',
          ]),
        ),
      );
    }
    lines.push('', `total ${((Date.now() - started) / 1000).toFixed(0)} s`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  failures.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
} finally {
  await Promise.all([...children.values()].map((c) => c.stop()));
}
if (profileDir !== undefined) {
  // node names profiles CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile: thread 0 is the main one.
  const profiles = chosen.flatMap((key) => {
    const dir = join(profileDir!, key);
    const main = existsSync(dir) ? readdirSync(dir).find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)) : undefined;
    return main === undefined ? [] : [`  ${SCENARIO[key].label}: ${join(dir, main)}`];
  });
  log(
    `CPU profiles of the servers' main threads (summarize: node --import tsx bench/token/profile.ts FILE):\n${profiles.join('\n')}`,
  );
}
if (failures.length > 0) {
  exitCode = 1;
  log(`\nBENCHMARK FAILED (${failures.length} problem(s)):`);
  for (const f of failures.slice(0, 30)) log(`  ${f}`);
}
process.exitCode = exitCode;
