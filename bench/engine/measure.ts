/** Timing and memory helpers of the child process. */

import type { Answer } from './adapters/types.js';

const now = process.hrtime.bigint;

/** A decision slower than this (ns) marks an engine as slow: each decision is timed on its own. */
const SLOW_NS = 1_000_000;
/** Decisions timed one by one before telling fast engines from slow ones: at least… */
const CALIBRATION = 10;
/** …then on until this many ms have passed… */
const CALIBRATION_MS = 200;
/** …but no more than this many. */
const CALIBRATION_MAX = 200;
/** Fast engines: each timed batch lasts about this long (ns). */
const BATCH_TARGET_NS = 10_000;
/** Fast engines: untimed warm-up before timing (ms). */
const WARMUP_MS = 500;

/** Runs a full garbage collection (node must run with --expose-gc). */
export function fullGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run node with --expose-gc');
  gc();
  gc();
}

export const MIB = 1024 * 1024;

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** The median cost of the timer itself: a pair of hrtime.bigint() calls (ns). */
export function timerOverheadNs(): number {
  const samples: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    const t0 = now();
    samples.push(Number(now() - t0));
  }
  samples.sort((a, b) => a - b);
  return percentile(samples, 0.5);
}

export interface TimingOptions {
  budgetMs: number;
  minTimed: number;
  maxTimed: number;
  checkMin: number;
  checkBudgetMs: number;
}

export interface Timing {
  answers: string;
  p50Ns: number;
  p99Ns: number;
  meanNs: number;
  timedDecisions: number;
  batch: number;
  /** Keeps the decisions' results alive so nothing is optimized away. */
  sink: number;
}

/**
 * Answers queries 0..n-1 in order and times decisions.
 *
 * Calibration times the first decisions one by one (see CALIBRATION). Fast engines (median under
 * 1 ms): one untimed pass answers every query, then ~0.5 s of warm-up, then batches of B
 * consecutive decisions (B chosen so a batch lasts ~10 µs) cycle over the queries until the budget
 * or maxTimed runs out; each batch gives one per-decision sample (batch time minus the timer's own
 * cost, divided by B).
 *
 * Slow engines: every decision is timed on its own, in query order; they go on until at least
 * minTimed decisions and the budget are spent, and at least checkMin queries are answered (unless
 * checkBudgetMs has passed), so their answers can be checked.
 */
export function timeDecisions(fn: (i: number) => Answer, n: number, o: TimingOptions): Timing {
  const overhead = timerOverheadNs();
  const answers: Answer[] = [];
  const samples: number[] = [];
  let sink = 0;
  const start = now();
  // Calibration: the first decisions, each timed on its own (at least CALIBRATION of them, then
  // on until CALIBRATION_MS or CALIBRATION_MAX); the median of the later half tells a fast engine
  // from a slow one, once the JIT has had a chance.
  const calibration: number[] = [];
  const calibrationEnd = start + BigInt(CALIBRATION_MS) * 1_000_000n;
  for (let i = 0; i < n; i++) {
    if (i >= CALIBRATION_MAX || (i >= CALIBRATION && now() >= calibrationEnd)) break;
    const t0 = now();
    const a = fn(i);
    calibration.push(Math.max(0, Number(now() - t0) - overhead));
    answers.push(a);
  }
  let batch = 1;
  let timed = 0;
  const later = calibration.slice(Math.floor(calibration.length / 2)).sort((a, b) => a - b);
  if (percentile(later, 0.5) < SLOW_NS) {
    for (let i = answers.length; i < n; i++) answers.push(fn(i));
    let i = 0;
    let warmDecisions = 0;
    const w0 = now();
    const warmEnd = w0 + BigInt(WARMUP_MS) * 1_000_000n;
    let w1 = w0;
    while (w1 < warmEnd) {
      for (let k = 0; k < 64; k++) {
        sink ^= fn(i).charCodeAt(0);
        if (++i === n) i = 0;
      }
      warmDecisions += 64;
      w1 = now();
    }
    // The warm cost per decision sets the batch size.
    const estimate = Math.max(1, Number(w1 - w0) / warmDecisions);
    batch = Math.min(1000, Math.max(1, Math.round(BATCH_TARGET_NS / estimate)));
    const t = now();
    const end = t + BigInt(o.budgetMs) * 1_000_000n;
    let t1 = t;
    while (t1 < end && timed < o.maxTimed) {
      const t0 = now();
      for (let k = 0; k < batch; k++) {
        sink ^= fn(i).charCodeAt(0);
        if (++i === n) i = 0;
      }
      t1 = now();
      samples.push(Math.max(0, Number(t1 - t0) - overhead) / batch);
      timed += batch;
    }
  } else {
    // The calibration decisions count as samples, except the very first (cold) one.
    samples.push(...calibration.slice(1));
    timed = samples.length;
    const budget = BigInt(o.budgetMs) * 1_000_000n;
    const checkBudget = BigInt(o.checkBudgetMs) * 1_000_000n;
    for (let i = answers.length; i < n; i++) {
      const elapsed = now() - start;
      const timedEnough = timed >= o.minTimed && elapsed >= budget;
      const checkedEnough = i >= o.checkMin || elapsed >= checkBudget;
      if (timedEnough && checkedEnough) break;
      const t0 = now();
      const a = fn(i);
      samples.push(Math.max(0, Number(now() - t0) - overhead));
      answers.push(a);
      timed++;
    }
  }
  samples.sort((a, b) => a - b);
  const mean = samples.reduce((s, x) => s + x, 0) / Math.max(1, samples.length);
  return {
    answers: answers.join(''),
    p50Ns: percentile(samples, 0.5),
    p99Ns: percentile(samples, 0.99),
    meanNs: mean,
    timedDecisions: timed,
    batch,
    sink,
  };
}
