/** What the parent (run.ts) and the per-engine child processes (child.ts) exchange. */

/** The engines a child can run; `gatehouse` also reports `gatehouse-explain`. */
export const ENGINES = ['gatehouse', 'casbin', 'cedar'] as const;
export type EngineName = (typeof ENGINES)[number];

export interface ChildConfig {
  engine: EngineName;
  size: number;
  seed: number;
  queries: number;
  /** Time budget of the timed phase, per engine (and per mode for gatehouse). */
  budgetMs: number;
  /** Slow engines: at least this many timed decisions, budget or not. */
  minTimed: number;
  /** Fast engines: at most this many timed decisions. */
  maxTimed: number;
  /** Slow engines: keep answering (and timing) queries until this many are answered… */
  checkMin: number;
  /** …unless this much time has gone by. */
  checkBudgetMs: number;
}

/** The figures of one engine at one size. */
export interface EngineFigures {
  /** Median time per decision, ns. */
  p50Ns: number;
  /** 99th percentile of the per-decision time (per batch of `batch` decisions), ns. */
  p99Ns: number;
  meanNs: number;
  /** Decisions made while timed. */
  timedDecisions: number;
  /** Decisions per timed batch (1 for slow engines). */
  batch: number;
  /** Load or compile, from the engine's own input (ms). */
  compileMs: number;
  /** Translating the neutral dataset into the engine's input (ms); not part of compileMs. */
  buildMs: number;
  /** process.memoryUsage() deltas across build + load, after a full GC (MiB). */
  heapMb: number;
  externalMb: number;
  arrayBuffersMb: number;
  rssMb: number;
}

export interface EngineRun {
  /** `gatehouse`, `gatehouse-explain`, `casbin` or `cedar`. */
  name: string;
  figures: EngineFigures;
  /** One character per answered query, in query order (A, D, N, E; see adapters/types.ts). */
  answers: string;
}

export interface ChildResult {
  engine: EngineName;
  size: number;
  /** Digest of the generated dataset; must equal the parent's. */
  fingerprint: string;
  runs: EngineRun[];
}

export type ChildMessage = { type: 'result'; result: ChildResult } | { type: 'error'; message: string };
