/**
 * The decision benchmark: AuthZEN evaluations per second and latency over HTTP on loopback, with
 * a plain `node:http` server measured in the same run as this machine's ceiling.
 *
 *   npm run -s bench:pdp                          # ~1 min: 3 s warm-up + 10 s per scenario
 *   npm run -s bench:pdp -- --duration 3          # a quick run
 *   npm run -s bench:pdp -- --rounds 3 --json     # medians over 3 rounds, only JSON on stdout
 *
 * Options: --duration S, --warmup S, --connections N, --pipelining N, --rounds N, --scenarios
 * http-ceiling,evaluation,evaluations,explain,by-email (and by-name), --cpu-prof (profile the
 * Gatehouse child), --json. See bench/README.md for the method.
 *
 * Both servers run in child processes of their own, so that autocannon's load generator (here)
 * and the server do not share an event loop. Every request the benchmark sends is checked for
 * the right answer before and after the timed runs; a wrong answer, a non-2xx status or a
 * connection error makes the exit code 1. Missing a target does not: benchmarks print figures.
 */

import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { batches, DOMAIN, DOMAIN_SHAPE, evaluationBody, evaluations, PEP_PRINCIPAL } from './domain.js';
import type { ChildMessage, GatehouseReady, ParentMessage, Usage } from './protocol.js';
import { int, median, ms, pct, percentile, positive, table } from '../shared/bench-tools.js';

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
const HELLO = fileURLToPath(new URL('./hello-server.ts', import.meta.url));
const START_TIMEOUT_MS = 120_000;
const BATCH_SIZE = 100;

const SCENARIOS = ['http-ceiling', 'evaluation', 'evaluations', 'explain', 'by-email', 'by-name'] as const;
type ScenarioKey = (typeof SCENARIOS)[number];
/** `by-name` (no store lookups at all) runs only when asked for. */
const DEFAULT_SCENARIOS: ScenarioKey[] = ['http-ceiling', 'evaluation', 'evaluations', 'explain', 'by-email'];

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: process.env.BENCH_PDP_DURATION ?? '10' },
    warmup: { type: 'string', default: process.env.BENCH_PDP_WARMUP ?? '3' },
    connections: { type: 'string', default: '50' },
    pipelining: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '1' },
    scenarios: { type: 'string', default: DEFAULT_SCENARIOS.join(',') },
    'cpu-prof': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});

const options = {
  durationS: positive('duration', values.duration, false),
  warmupS: positive('warmup', values.warmup, false, true),
  connections: positive('connections', values.connections, true),
  pipelining: positive('pipelining', values.pipelining, true),
  rounds: positive('rounds', values.rounds, true),
};
const chosen = values.scenarios.split(',').map((s) => s.trim()) as ScenarioKey[];
for (const s of chosen) {
  if (!SCENARIOS.includes(s)) throw new Error(`--scenarios: unknown scenario "${s}" (${SCENARIOS.join(', ')})`);
}
const json = values.json;

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

// ---- the requests ------------------------------------------------------------------------------

/** The rotating evaluation requests: subjects by name, every 8th by email, every 40th unknown. */
const EVALUATIONS = evaluations(240, 8, 40);
/** The same kinds of request with every subject named by email (a store lookup each). */
const BY_EMAIL = evaluations(240, 1, 0);
/** The same kinds of request with every subject a known user named by name (resolved in the catalog). */
const BY_NAME = evaluations(240, 0, 0);
const BATCHES = batches(20, BATCH_SIZE);

const EVALUATION_PATH = `/pdp/${DOMAIN}/access/v1/evaluation`;
const EVALUATIONS_PATH = `/pdp/${DOMAIN}/access/v1/evaluations`;

/** A request the benchmark sends, and how to check its answer. */
interface Probe {
  path: string;
  body: string;
  /** Undefined when the answer is right, else what is wrong with it. */
  check: (status: number, answer: unknown) => string | undefined;
}

const decisionOf = (answer: unknown): unknown => (answer as { decision?: unknown } | null)?.decision;

function singleProbe(body: object, expect: boolean, explain: boolean): Probe {
  return {
    path: EVALUATION_PATH,
    body: JSON.stringify(body),
    check(status, answer) {
      if (status !== 200) return `status ${status}: ${JSON.stringify(answer).slice(0, 300)}`;
      if (decisionOf(answer) !== expect) return `decision ${JSON.stringify(decisionOf(answer))}, expected ${expect}`;
      const context = (answer as { context?: Record<string, unknown> }).context;
      if (explain && (typeof context?.reason_admin !== 'object' || typeof context.reason_user !== 'string')) {
        return 'no reason_admin / reason_user in an explained decision';
      }
      return undefined;
    },
  };
}

function batchProbe(body: object, expect: boolean[]): Probe {
  return {
    path: EVALUATIONS_PATH,
    body: JSON.stringify(body),
    check(status, answer) {
      if (status !== 200) return `status ${status}: ${JSON.stringify(answer).slice(0, 300)}`;
      const items = (answer as { evaluations?: unknown[] }).evaluations;
      if (!Array.isArray(items) || items.length !== expect.length) {
        return `${Array.isArray(items) ? items.length : 'no'} evaluations, expected ${expect.length}`;
      }
      const wrong = expect.flatMap((e, i) => (decisionOf(items[i]) === e ? [] : [i]));
      if (wrong.length > 0) {
        return `${wrong.length} wrong decisions, first item ${wrong[0]}: ${JSON.stringify(items[wrong[0]!])}, expected ${expect[wrong[0]!]}`;
      }
      return undefined;
    },
  };
}

interface Scenario {
  key: ScenarioKey;
  label: string;
  server: 'hello' | 'gatehouse';
  /** Decisions per request. */
  decisions: number;
  probes: Probe[];
}

const SCENARIO: Record<ScenarioKey, Scenario> = {
  'http-ceiling': {
    key: 'http-ceiling',
    label: 'node:http ceiling',
    server: 'hello',
    decisions: 1,
    // The evaluation scenario's requests, answered with a fixed body.
    probes: EVALUATIONS.map((e) => ({
      path: EVALUATION_PATH,
      body: JSON.stringify(evaluationBody(e)),
      check: (status: number) => (status === 200 ? undefined : `status ${status}`),
    })),
  },
  evaluation: {
    key: 'evaluation',
    label: 'evaluation',
    server: 'gatehouse',
    decisions: 1,
    probes: EVALUATIONS.map((e) => singleProbe(evaluationBody(e), e.expect, false)),
  },
  evaluations: {
    key: 'evaluations',
    label: `evaluations ×${BATCH_SIZE}`,
    server: 'gatehouse',
    decisions: BATCH_SIZE,
    probes: BATCHES.map((b) => batchProbe(b.body, b.expect)),
  },
  explain: {
    key: 'explain',
    label: 'evaluation, explain',
    server: 'gatehouse',
    decisions: 1,
    probes: EVALUATIONS.map((e) => singleProbe(evaluationBody(e, { explain: true }), e.expect, true)),
  },
  'by-email': {
    key: 'by-email',
    label: 'evaluation, all by email',
    server: 'gatehouse',
    decisions: 1,
    probes: BY_EMAIL.map((e) => singleProbe(evaluationBody(e), e.expect, false)),
  },
  'by-name': {
    key: 'by-name',
    label: 'evaluation, all by name',
    server: 'gatehouse',
    decisions: 1,
    probes: BY_NAME.map((e) => singleProbe(evaluationBody(e), e.expect, false)),
  },
};

// ---- the children --------------------------------------------------------------------------------

/** A server child: its port, and its CPU time and memory on request. */
class ServerChild {
  readonly #process: ChildProcess;
  #waiting: ((u: Usage) => void)[] = [];
  #exited: Promise<void>;

  private constructor(
    readonly name: string,
    child: ChildProcess,
    readonly ready: ChildMessage & { port: number },
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

  static start(name: string, file: string, execArgv: string[]): Promise<ServerChild> {
    const child = fork(file, [], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
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
          child.kill('SIGKILL');
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

  /** Asks the child to close and exit; kills it if it has not after 10 s. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.#process.send({ type: 'stop' } satisfies ParentMessage);
    const timer = setTimeout(() => this.#process.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

// ---- checking and measuring --------------------------------------------------------------------

/** Sends every probe once and returns what was wrong (at most `max` lines). */
async function verify(s: Scenario, port: number, token: string, max = 10): Promise<string[]> {
  const wrong: string[] = [];
  for (const [i, p] of s.probes.entries()) {
    let problem: string | undefined;
    try {
      const response = await fetch(`http://127.0.0.1:${port}${p.path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: p.body,
      });
      const text = await response.text();
      let answer: unknown = text;
      try {
        answer = JSON.parse(text);
      } catch {
        // Not JSON: the check reports the status and the text.
      }
      problem = p.check(response.status, answer);
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    if (problem !== undefined && wrong.length < max)
      wrong.push(`${s.key} request #${i} ${p.body.slice(0, 200)}: ${problem}`);
  }
  return wrong;
}

/** The figures of one timed run of one scenario. */
interface Figures {
  requestsPerSecond: number;
  decisionsPerSecond: number;
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
  serverRssMb: number;
}

/** One autocannon run of `s` for `seconds`; latencies are kept at full resolution (autocannon's own histogram has 1 ms steps). */
async function run(s: Scenario, child: ServerChild, token: string, seconds: number): Promise<Figures> {
  const u0 = await child.usage();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const instance = autocannon({
    url: `http://127.0.0.1:${child.ready.port}`,
    connections: options.connections,
    pipelining: options.pipelining,
    duration: seconds,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    requests: s.probes.map((p) => ({ method: 'POST', path: p.path, body: p.body })),
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
  const sorted = latencies.subarray(0, n).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const completed = Object.values(r.statusCodeStats).reduce((a, c) => a + c.count, 0);
  const requestsPerSecond = completed / r.duration;
  return {
    requestsPerSecond,
    decisionsPerSecond: requestsPerSecond * s.decisions,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: n > 0 ? sum / n : Number.NaN,
    maxMs: n > 0 ? sorted[n - 1]! : Number.NaN,
    requests: completed,
    durationS: r.duration,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([code, c]) => [code, c.count])),
    serverCpuPct: ((u1.userUs - u0.userUs + u1.systemUs - u0.systemUs) / 1e6 / wallS) * 100,
    clientCpuPct: ((c1.user + c1.system) / 1e6 / wallS) * 100,
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
    requestsPerSecond: pick((x) => x.requestsPerSecond),
    decisionsPerSecond: pick((x) => x.decisionsPerSecond),
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
    serverRssMb: Math.max(...runs.map((x) => x.serverRssMb)),
  };
}

// ---- output --------------------------------------------------------------------------------------

interface Target {
  what: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

function targets(results: Partial<Record<ScenarioKey, Figures>>): Target[] {
  const out: Target[] = [];
  const ceiling = results['http-ceiling'];
  const single = results.evaluation;
  if (single) {
    const share = ceiling ? (single.requestsPerSecond / ceiling.requestsPerSecond) * 100 : Number.NaN;
    out.push({
      what: 'AuthZEN evaluation over HTTP, share of the node:http ceiling',
      target: '≥ 60%',
      measured: ceiling ? pct(share) : 'no ceiling measured',
      met: ceiling ? share >= 60 : undefined,
    });
    out.push({
      what: `AuthZEN evaluation p99 at ${options.connections} connections`,
      target: '≤ 5 ms',
      measured: `${ms(single.p99Ms)} ms`,
      met: options.connections === 50 ? single.p99Ms <= 5 : undefined,
    });
  }
  const batch = results.evaluations;
  if (batch) {
    out.push({
      what: `AuthZEN evaluations, batches of ${BATCH_SIZE}`,
      target: '≥ 500,000 decisions/s',
      measured: `${int(batch.decisionsPerSecond)} decisions/s`,
      met: batch.decisionsPerSecond >= 500_000,
    });
  }
  return out;
}

// ---- main ----------------------------------------------------------------------------------------

const machine = {
  node: process.version,
  cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
  cores: os.availableParallelism(),
  loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
  platform: `${os.platform()} ${os.release()}`,
};
const mix = {
  evaluation: {
    requests: EVALUATIONS.length,
    allow: EVALUATIONS.filter((e) => e.expect).length,
    byEmail: EVALUATIONS.filter((e) => e.byEmail).length,
    unknown: EVALUATIONS.filter((e) => e.subject.id.startsWith('nobody-')).length,
  },
  evaluations: {
    requests: BATCHES.length,
    items: BATCHES.length * BATCH_SIZE,
    allow: BATCHES.reduce((a, b) => a + b.expect.filter((x) => x).length, 0),
    bodyBytes: Math.round(SCENARIO.evaluations.probes.reduce((a, p) => a + p.body.length, 0) / BATCHES.length),
  },
  evaluationBodyBytes: Math.round(
    SCENARIO.evaluation.probes.reduce((a, p) => a + p.body.length, 0) / EVALUATIONS.length,
  ),
};

const children: ServerChild[] = [];
const failures: string[] = [];
let profileDir: string | undefined;

async function main(): Promise<void> {
  const started = Date.now();
  if (!json) {
    process.stdout.write(
      `Decision benchmark (AuthZEN over HTTP on loopback) — Node ${machine.node}, ${machine.cpu}, ` +
        `${machine.cores} cores, load average ${machine.loadAverage.join(' ')}\n` +
        `autocannon: ${options.connections} connections, pipelining ${options.pipelining}, ` +
        `${options.warmupS} s warm-up + ${options.durationS} s per scenario, ${options.rounds} round(s)\n`,
    );
  }
  const needGatehouse = chosen.some((k) => SCENARIO[k].server === 'gatehouse');
  const needHello = chosen.some((k) => SCENARIO[k].server === 'hello');
  const execArgv = ['--import', 'tsx'];
  const serverArgv = [...execArgv];
  if (values['cpu-prof']) {
    profileDir = mkdtempSync(join(os.tmpdir(), 'gatehouse-bench-pdp-prof-'));
    serverArgv.push('--cpu-prof', '--cpu-prof-dir', profileDir);
  }
  log('starting the servers…');
  const [gatehouse, hello] = await Promise.all([
    needGatehouse ? ServerChild.start('gatehouse server', SERVER, serverArgv) : undefined,
    needHello ? ServerChild.start('node:http server', HELLO, execArgv) : undefined,
  ]);
  if (gatehouse) children.push(gatehouse);
  if (hello) children.push(hello);
  const ready = gatehouse?.ready as GatehouseReady | undefined;
  const token = ready?.token ?? 'not-a-token';
  if (ready) {
    log(`gatehouse server on port ${ready.port}, set up in ${(ready.setupMs / 1000).toFixed(1)} s`);
    if (!json) {
      process.stdout.write(
        `domain ${DOMAIN} (revision ${ready.revision}): ${DOMAIN_SHAPE.users} users, ${DOMAIN_SHAPE.groups} groups, ` +
          `${DOMAIN_SHAPE.roles} roles, ${DOMAIN_SHAPE.policies} policies (${ready.assertions} assertions with the built-in admin), ` +
          `${DOMAIN_SHAPE.resources} registered resources; PEP ${PEP_PRINCIPAL} asks about everyone\n` +
          `evaluation: ${mix.evaluation.requests} rotating requests (~${mix.evaluationBodyBytes} B), ${mix.evaluation.allow} allowed, ` +
          `${mix.evaluation.byEmail} subjects by email, ${mix.evaluation.unknown} unknown; ` +
          `evaluations: ${mix.evaluations.requests} batches × ${BATCH_SIZE} (~${int(mix.evaluations.bodyBytes)} B), ` +
          `${mix.evaluations.allow} of ${mix.evaluations.items} allowed\n`,
      );
    }
  }
  const childOf = (s: Scenario): ServerChild => (s.server === 'gatehouse' ? gatehouse! : hello!);

  log('checking every request the benchmark sends…');
  for (const key of chosen) {
    const s = SCENARIO[key];
    const wrong = await verify(s, childOf(s).ready.port, token);
    for (const w of wrong) failures.push(`wrong answer before the runs: ${w}`);
  }
  if (failures.length > 0) return;

  const runs = new Map<ScenarioKey, Figures[]>(chosen.map((k) => [k, []]));
  for (let round = 1; round <= options.rounds; round++) {
    for (const key of chosen) {
      const s = SCENARIO[key];
      const child = childOf(s);
      const tag = options.rounds > 1 ? ` (round ${round}/${options.rounds})` : '';
      if (options.warmupS > 0) {
        log(`${s.label}${tag}: warm-up ${options.warmupS} s…`);
        await run(s, child, token, options.warmupS);
      }
      log(`${s.label}${tag}: ${options.durationS} s…`);
      const f = await run(s, child, token, options.durationS);
      runs.get(key)!.push(f);
      log(
        `  ${int(f.requestsPerSecond)} req/s, p50 ${ms(f.p50Ms)} ms, p99 ${ms(f.p99Ms)} ms, ` +
          `server CPU ${pct(f.serverCpuPct)}, autocannon CPU ${pct(f.clientCpuPct)}` +
          (f.non2xx + f.errors + f.timeouts > 0
            ? `, ${f.non2xx} non-2xx ${JSON.stringify(f.statusCodes)}, ${f.errors} errors, ${f.timeouts} timeouts`
            : ''),
      );
      if (!child.alive) {
        failures.push(`${child.name} exited during ${s.label}`);
        return;
      }
    }
  }

  log('checking the answers again…');
  for (const key of chosen) {
    const s = SCENARIO[key];
    for (const w of await verify(s, childOf(s).ready.port, token)) failures.push(`wrong answer after the runs: ${w}`);
  }

  const results: Partial<Record<ScenarioKey, Figures>> = {};
  for (const [key, rs] of runs) results[key] = combine(rs);
  for (const [key, f] of Object.entries(results) as [ScenarioKey, Figures][]) {
    if (f.non2xx > 0)
      failures.push(`${SCENARIO[key].label}: ${f.non2xx} non-2xx answers ${JSON.stringify(f.statusCodes)}`);
    if (f.errors > 0 || f.timeouts > 0)
      failures.push(`${SCENARIO[key].label}: ${f.errors} errors, ${f.timeouts} timeouts`);
  }
  const ceiling = results['http-ceiling'];
  const goals = targets(results);

  if (json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          machine,
          options,
          domain: { name: DOMAIN, ...DOMAIN_SHAPE, assertions: ready?.assertions, revision: ready?.revision },
          mix,
          scenarios: Object.fromEntries(
            [...runs].map(([key, rs]) => [
              key,
              {
                ...results[key],
                ceilingShare: ceiling ? results[key]!.requestsPerSecond / ceiling.requestsPerSecond : undefined,
                rounds: rs,
              },
            ]),
          ),
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
        'req/s',
        'decisions/s',
        'p50 ms',
        'p99 ms',
        'of ceiling',
        'non-2xx',
        'errors',
        'server CPU',
        'client CPU',
      ],
    ];
    for (const [key, f] of Object.entries(results) as [ScenarioKey, Figures][]) {
      rows.push([
        SCENARIO[key].label,
        int(f.requestsPerSecond),
        int(f.decisionsPerSecond),
        ms(f.p50Ms),
        ms(f.p99Ms),
        ceiling ? pct((f.requestsPerSecond / ceiling.requestsPerSecond) * 100) : '—',
        int(f.non2xx),
        int(f.errors + f.timeouts),
        pct(f.serverCpuPct),
        pct(f.clientCpuPct),
      ]);
    }
    const rss = results.evaluation?.serverRssMb ?? results.evaluations?.serverRssMb;
    const lines = [
      '',
      table(rows),
      '',
      `latency: per response, from autocannon's send to the full response (2xx only); CPU: % of one core` +
        (rss !== undefined ? `; Gatehouse server RSS ${rss.toFixed(0)} MB` : ''),
    ];
    if (options.rounds > 1) lines.push(`figures are medians over ${options.rounds} rounds`);
    if (goals.length > 0) {
      lines.push('', 'targets (shared/design/targets.md):');
      lines.push(
        table(
          goals.map((g) => [
            `  ${g.what}`,
            g.target,
            g.measured,
            g.met === undefined ? '(not judged)' : g.met ? 'met' : 'NOT MET',
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
  await Promise.all(children.map((c) => c.stop()));
}
if (profileDir !== undefined) log(`CPU profile of the Gatehouse server: ${profileDir}`);
if (failures.length > 0) {
  exitCode = 1;
  log(`\nBENCHMARK FAILED (${failures.length} problem(s)):`);
  for (const f of failures.slice(0, 30)) log(`  ${f}`);
}
process.exitCode = exitCode;
