/**
 * Summarizes a V8 CPU profile written by `npm run -s bench:token -- --cpu-prof` (or any
 * `.cpuprofile`): where a server child spent its busy time, without opening a profiler UI.
 *
 *   node --import tsx bench/token/profile.ts /tmp/gatehouse-bench-token-prof-XXXX/gatehouse.cpuprofile
 *   node --import tsx bench/token/profile.ts FILE --from-s 5 --top 25
 *
 * Prints, as shares of the busy samples (the `(idle)` ones left out, and those before
 * `--from-s` seconds, i.e. start-up, when asked):
 * - self time by area: a package under node_modules, a folder of the project, node's internals,
 *   and V8's own entries — `(garbage collector)`, `(program)` (V8 itself: compiling, IC misses…);
 * - inclusive time by area and by project file: the samples whose stack passes through it
 *   (so nested areas overlap: a statement run by the database adapter counts for both);
 * - the functions with the most self time and the most inclusive time.
 */

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  options: {
    'from-s': { type: 'string', default: '0' },
    top: { type: 'string', default: '20' },
  },
  allowPositionals: true,
  strict: true,
});
const file = positionals[0];
if (file === undefined) {
  process.stderr.write('usage: node --import tsx bench/token/profile.ts FILE.cpuprofile [--from-s S] [--top N]\n');
  process.exit(2);
}
const fromUs = Number(values['from-s']) * 1e6;
const top = Number(values.top);

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);

/** Where a frame's code lives: `oidc-provider`, `packages/server/src/oidc`, `node:internal`, `(garbage collector)`… */
function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return url.startsWith('node:internal') ? 'node:internal' : url;
  const path = url.replace(/^file:\/\//, '');
  const project = path.match(/\/(packages\/[^/]+\/src\/[^/]+|bench\/[^/]+)\//);
  if (project) return project[1]!;
  return path;
}

/** A project file's path from the repository root, or undefined for other code. */
function projectFileOf(frame: CallFrame): string | undefined {
  if (frame.url.includes('/node_modules/')) return undefined;
  const m = frame.url.match(/\/((?:packages|bench)\/.+)$/);
  return m?.[1];
}

const short = (url: string): string =>
  url
    .replace(/^file:\/\//, '')
    .replace(/.*\/node_modules\//, '')
    .replace(/.*\/((?:packages|bench)\/)/, '$1');
const nameOf = (frame: CallFrame): string =>
  `${frame.functionName || '(anonymous)'}${frame.url ? ` ${short(frame.url)}:${frame.lineNumber + 1}` : ''}`;

// Self time per node, past --from-s, without (idle).
const selfUs = new Map<number, number>();
let at = 0;
let idleUs = 0;
let skippedUs = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  at += dt;
  const id = profile.samples[i]!;
  if (at < fromUs) {
    skippedUs += dt;
    continue;
  }
  if (byId.get(id)?.callFrame.functionName === '(idle)') {
    idleUs += dt;
    continue;
  }
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
}
const busyUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

const add = (m: Map<string, number>, k: string, v: number): void => {
  m.set(k, (m.get(k) ?? 0) + v);
};
const selfByArea = new Map<string, number>();
const selfByFunction = new Map<string, number>();
const inclByArea = new Map<string, number>();
const inclByFile = new Map<string, number>();
const inclByFunction = new Map<string, number>();
for (const [id, us] of selfUs) {
  const leaf = byId.get(id)!.callFrame;
  add(selfByArea, areaOf(leaf), us);
  add(selfByFunction, nameOf(leaf), us);
  const areas = new Set<string>();
  const files = new Set<string>();
  const functions = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parentOf.get(cur)) {
    const frame = byId.get(cur)!.callFrame;
    if (frame.functionName === '(root)') continue;
    areas.add(areaOf(frame));
    const f = projectFileOf(frame);
    if (f !== undefined) files.add(f);
    functions.add(nameOf(frame));
  }
  for (const a of areas) add(inclByArea, a, us);
  for (const f of files) add(inclByFile, f, us);
  for (const f of functions) add(inclByFunction, f, us);
}

const share = (us: number): string => `${((100 * us) / busyUs).toFixed(1).padStart(5)}%`;
const list = (title: string, m: Map<string, number>, n = top): string =>
  [
    title,
    ...[...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${share(us)}  ${k}`),
  ].join('\n');

process.stdout.write(
  [
    `${file}`,
    `busy ${(busyUs / 1e6).toFixed(1)} s of samples (idle ${(idleUs / 1e6).toFixed(1)} s and the first ` +
      `${(skippedUs / 1e6).toFixed(1)} s left out); shares of the busy time`,
    '',
    list('self time by area', selfByArea),
    '',
    list('inclusive time by area (nested areas overlap)', inclByArea),
    '',
    list('inclusive time by project file', inclByFile),
    '',
    list('self time by function', selfByFunction),
    '',
    list('inclusive time by function', inclByFunction, top * 2),
    '',
  ].join('\n'),
);
