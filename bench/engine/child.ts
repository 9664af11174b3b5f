/**
 * One engine at one size, in a process of its own (started by run.ts): generates the dataset from
 * the seed, builds and loads it, measures heap and load time, times the queries, and sends the
 * figures and answers back over IPC.
 */

import { CasbinAdapter } from './adapters/casbin.js';
import { GatehouseAdapter } from './adapters/gatehouse.js';
import type { EngineAdapter } from './adapters/types.js';
import { fingerprint, generate } from './dataset.js';
import { fullGc, MIB, timeDecisions } from './measure.js';
import type { ChildConfig, ChildMessage, ChildResult, EngineFigures, EngineRun } from './protocol.js';

const ms = (from: bigint): number => Number(process.hrtime.bigint() - from) / 1e6;

async function adapterFor(engine: ChildConfig['engine']): Promise<EngineAdapter> {
  if (engine === 'gatehouse') return new GatehouseAdapter(false);
  if (engine === 'casbin') return new CasbinAdapter();
  // Loaded only here: instantiating the wasm module costs memory the other engines should not carry.
  const { CedarAdapter } = await import('./adapters/cedar.js');
  return new CedarAdapter();
}

async function main(config: ChildConfig): Promise<ChildResult> {
  const ds = generate(config.size, config.seed, config.queries);
  const adapter = await adapterFor(config.engine);

  fullGc();
  const before = process.memoryUsage();
  const b0 = process.hrtime.bigint();
  adapter.build(ds);
  const buildMs = ms(b0);
  const l0 = process.hrtime.bigint();
  await adapter.load();
  const compileMs = ms(l0);
  fullGc();
  const after = process.memoryUsage();
  const memory = {
    heapMb: (after.heapUsed - before.heapUsed) / MIB,
    externalMb: (after.external - before.external) / MIB,
    arrayBuffersMb: (after.arrayBuffers - before.arrayBuffers) / MIB,
    rssMb: (after.rss - before.rss) / MIB,
  };

  const measure = (name: string, a: EngineAdapter): EngineRun => {
    const fn = a.prepare(ds, ds.queries);
    const t = timeDecisions(fn, ds.queries.length, config);
    const figures: EngineFigures = {
      p50Ns: t.p50Ns,
      p99Ns: t.p99Ns,
      meanNs: t.meanNs,
      timedDecisions: t.timedDecisions,
      batch: t.batch,
      compileMs,
      buildMs,
      ...memory,
    };
    process.stderr.write(
      `  ${name}: answered ${t.answers.length} queries, ${t.timedDecisions} timed (sink ${t.sink & 1})\n`,
    );
    return { name, figures, answers: t.answers };
  };

  const runs = [measure(config.engine, adapter)];
  if (adapter instanceof GatehouseAdapter && adapter.loaded) {
    const explaining = new GatehouseAdapter(true);
    explaining.useCatalog(adapter.loaded);
    runs.push(measure('gatehouse-explain', explaining));
  }
  return { engine: config.engine, size: config.size, fingerprint: fingerprint(ds), runs };
}

const send = (message: ChildMessage): Promise<void> =>
  new Promise((resolve) => {
    if (process.send) process.send(message, () => resolve());
    else {
      process.stdout.write(`${JSON.stringify(message)}\n`);
      resolve();
    }
  });

const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
try {
  await send({ type: 'result', result: await main(config) });
} catch (err) {
  await send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}
// Cedar's wasm memory is never released; the process exits rather than lingering.
process.exit(0);
