/**
 * The engine benchmark: Gatehouse against casbin and Cedar on the same random policy sets.
 *
 *   npm run -s bench:engine                              # table, sizes 100, 10,000 and 100,000
 *   npm run -s bench:engine -- --sizes 100,10000 --json  # only a JSON array on stdout
 *
 * Options: --sizes, --engines gatehouse,casbin,cedar, --queries N, --seed N, --budget-ms N,
 * --min-timed N, --check N, --check-budget-ms N, --json. See bench/README.md for the method.
 *
 * Every engine runs in a child process of its own (Cedar's with --no-turbo-inline-js-wasm-calls),
 * which generates the dataset from the seed and sends back figures and answers; this process checks
 * that every engine gave the same answer to every query they both answered, and prints.
 */

import { fork } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fingerprint, generate, queryResource, type Dataset } from './dataset.js';
import {
  ENGINES,
  type ChildConfig,
  type ChildMessage,
  type ChildResult,
  type EngineFigures,
  type EngineName,
} from './protocol.js';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
/** A child that takes longer than this is stopped and reported as failed. */
const CHILD_TIMEOUT_MS = 15 * 60_000;

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,10000,100000' },
    engines: { type: 'string', default: ENGINES.join(',') },
    queries: { type: 'string', default: '3000' },
    seed: { type: 'string', default: '1' },
    'budget-ms': { type: 'string', default: '3000' },
    'min-timed': { type: 'string', default: '20' },
    'max-timed': { type: 'string', default: '2000000' },
    check: { type: 'string', default: '200' },
    'check-budget-ms': { type: 'string', default: '120000' },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});

function positiveInt(name: string, text: string): number {
  const n = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name}: expected a positive integer, got "${text}"`);
  return n;
}

const sizes = values.sizes.split(',').map((s) => positiveInt('sizes', s.trim()));
const engines = values.engines.split(',').map((e) => e.trim()) as EngineName[];
for (const e of engines)
  if (!ENGINES.includes(e)) throw new Error(`--engines: unknown engine "${e}" (${ENGINES.join(', ')})`);
const options = {
  queries: positiveInt('queries', values.queries),
  seed: positiveInt('seed', values.seed),
  budgetMs: positiveInt('budget-ms', values['budget-ms']),
  minTimed: positiveInt('min-timed', values['min-timed']),
  maxTimed: positiveInt('max-timed', values['max-timed']),
  checkMin: positiveInt('check', values.check),
  checkBudgetMs: positiveInt('check-budget-ms', values['check-budget-ms']),
};
const json = values.json;

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Runs one engine at one size in a child process. */
function runChild(engine: EngineName, size: number): Promise<ChildResult> {
  const config: ChildConfig = { engine, size, ...options };
  const execArgv = ['--expose-gc', '--import', 'tsx'];
  // Cedar's wasm calls abort V8 in hot loops on Node 20.20 unless inlining them is off (targets.md).
  if (engine === 'cedar') execArgv.push('--no-turbo-inline-js-wasm-calls');
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [JSON.stringify(config)], { execArgv, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    // Children never write to stdout on purpose; whatever they do goes to stderr, keeping --json clean.
    child.stdout?.pipe(process.stderr);
    let settled: ChildMessage | undefined;
    const timer = setTimeout(() => {
      log(`  ${engine} at ${size}: no answer after ${CHILD_TIMEOUT_MS / 60_000} min, stopping it`);
      child.kill('SIGKILL');
    }, CHILD_TIMEOUT_MS);
    child.on('message', (m: ChildMessage) => {
      settled = m;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (settled?.type === 'result') resolve(settled.result);
      else if (settled?.type === 'error') reject(new Error(settled.message));
      else reject(new Error(`child exited with ${signal ?? `code ${code}`} before answering`));
    });
  });
}

/** A query on which two engines disagree. */
interface Mismatch {
  query: number;
  principal: string;
  action: string;
  resource: string;
  kind: string;
  answers: Record<string, string>;
}

interface SizeReport {
  size: number;
  agree: boolean;
  tenants: number;
  rolesPerTenant: number;
  users: number;
  queries: number;
  /** Gatehouse's answers over all queries (when Gatehouse ran). */
  mix?: { allow: number; deny: number; noMatch: number };
  /** How many queries each engine answered (and so had checked). */
  checked: Record<string, number>;
  engines: Record<string, EngineFigures & { speedupP50?: number }>;
  mismatches: Mismatch[];
  errors: Record<string, string>;
}

const isAllow = (c: string): boolean => c === 'A';

function compare(ds: Dataset, answers: Map<string, string>): Mismatch[] {
  const names = [...answers.keys()];
  const out: Mismatch[] = [];
  const longest = Math.max(0, ...[...answers.values()].map((a) => a.length));
  for (let i = 0; i < longest; i++) {
    const here = names.filter((n) => i < answers.get(n)!.length);
    const codes = here.map((n) => answers.get(n)![i]!);
    const errored = codes.includes('E');
    if (!errored && codes.every((c) => isAllow(c) === isAllow(codes[0]!))) continue;
    const q = ds.queries[i]!;
    out.push({
      query: i,
      principal: ds.users[q.user]!.name,
      action: q.action,
      resource: queryResource(q),
      kind: q.kind,
      answers: Object.fromEntries(here.map((n, k) => [n, codes[k]!])),
    });
  }
  return out;
}

async function runSize(size: number): Promise<SizeReport> {
  const ds = generate(size, options.seed, options.queries);
  const print = fingerprint(ds);
  log(
    `size ${size}: ${ds.tenants} tenant(s), ${ds.rolesPerTenant} roles each, ${ds.users.length} users, ` +
      `${ds.assertions.length} assertions (${ds.assertions.filter((a) => a.effect === 'deny').length} deny), ` +
      `${ds.queries.length} queries, dataset ${print}`,
  );
  const report: SizeReport = {
    size,
    agree: true,
    tenants: ds.tenants,
    rolesPerTenant: ds.rolesPerTenant,
    users: ds.users.length,
    queries: ds.queries.length,
    checked: {},
    engines: {},
    mismatches: [],
    errors: {},
  };
  const answers = new Map<string, string>();
  for (const engine of engines) {
    log(`  ${engine}…`);
    const started = Date.now();
    try {
      const result = await runChild(engine, size);
      if (result.fingerprint !== print) throw new Error(`dataset ${result.fingerprint} differs from ${print}`);
      for (const run of result.runs) {
        report.engines[run.name] = run.figures;
        report.checked[run.name] = run.answers.length;
        answers.set(run.name, run.answers);
      }
      log(`  ${engine} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      report.errors[engine] = message;
      report.agree = false;
      log(`  ${engine} FAILED: ${message}`);
    }
  }
  const gatehouse = report.engines.gatehouse;
  if (gatehouse) {
    for (const [name, f] of Object.entries(report.engines)) {
      if (!name.startsWith('gatehouse')) f.speedupP50 = f.p50Ns / gatehouse.p50Ns;
    }
    const a = answers.get('gatehouse')!;
    report.mix = { allow: 0, deny: 0, noMatch: 0 };
    for (const c of a) {
      if (c === 'A') report.mix.allow++;
      else if (c === 'D') report.mix.deny++;
      else if (c === 'N') report.mix.noMatch++;
    }
  }
  report.mismatches = compare(ds, answers);
  if (report.mismatches.length > 0 || answers.size === 0) report.agree = false;
  for (const m of report.mismatches.slice(0, 10)) {
    log(`  MISMATCH #${m.query} (${m.kind}) ${m.principal} ${m.action} ${m.resource}: ${JSON.stringify(m.answers)}`);
  }
  return report;
}

// ---- output ----------------------------------------------------------------------------------

function duration(ns: number): string {
  if (!Number.isFinite(ns)) return '—';
  if (ns < 1_000) return `${ns.toFixed(0)} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toFixed(ns < 10_000 ? 2 : 1)} µs`;
  if (ns < 1_000_000_000) return `${(ns / 1_000_000).toFixed(ns < 10_000_000 ? 2 : 1)} ms`;
  return `${(ns / 1_000_000_000).toFixed(2)} s`;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ratio = (r: number): string => (r >= 100 ? `${int(r)}×` : `${r.toFixed(r >= 10 ? 1 : 2)}×`);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '))
    .join('\n');
}

function printReport(r: SizeReport): void {
  const lines: string[] = [];
  const mix = r.mix ? ` (${int(r.mix.allow)} allow, ${int(r.mix.deny)} deny, ${int(r.mix.noMatch)} no match)` : '';
  lines.push(
    `${int(r.size)} assertions · ${r.tenants} tenant domain(s) × ${r.rolesPerTenant} roles · ${int(r.users)} users × 5 roles · ` +
      `${int(r.queries)} queries${mix}`,
  );
  const checked = Object.entries(r.checked)
    .map(([n, c]) => `${n} ${int(c)}`)
    .join(', ');
  lines.push(
    r.agree
      ? `agree: yes — same answer from every engine on every query it answered (${checked})`
      : `agree: NO — ${r.mismatches.length} mismatching queries; ${Object.keys(r.errors).length} failed engines (${checked})`,
  );
  const rows: string[][] = [
    ['engine', 'p50', 'p99', 'timed', 'batch', 'compile ms', 'heap MB', 'rss MB', 'gatehouse speed-up (p50)'],
  ];
  const plain = r.engines.gatehouse;
  for (const [name, f] of Object.entries(r.engines)) {
    let note = '';
    if (f.speedupP50 !== undefined) note = ratio(f.speedupP50);
    else if (name === 'gatehouse-explain' && plain) note = `(explain costs ${ratio(f.p50Ns / plain.p50Ns)} plain)`;
    rows.push([
      name,
      duration(f.p50Ns),
      duration(f.p99Ns),
      int(f.timedDecisions),
      int(f.batch),
      f.compileMs.toFixed(f.compileMs < 10 ? 2 : 0),
      f.heapMb.toFixed(1),
      f.rssMb.toFixed(0),
      note,
    ]);
  }
  for (const [name, message] of Object.entries(r.errors))
    rows.push([name, 'failed', '', '', '', '', '', '', message.split('\n')[0]!]);
  lines.push(table(rows));
  for (const m of r.mismatches.slice(0, 10)) {
    lines.push(
      `  mismatch #${m.query} (${m.kind}): ${m.principal} ${m.action} ${m.resource} → ${JSON.stringify(m.answers)}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
}

const started = Date.now();
if (!json) {
  process.stdout.write(
    `Engine benchmark — Node ${process.version}, ${os.cpus().length} CPUs, seed ${options.seed}, ` +
      `${options.queries} queries per size, timed budget ${options.budgetMs} ms per engine\n\n`,
  );
}
const reports: SizeReport[] = [];
for (const size of sizes) {
  const r = await runSize(size);
  reports.push(r);
  if (!json) printReport(r);
}
if (json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
else process.stdout.write(`total ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exitCode = reports.every((r) => r.agree) ? 0 : 1;
