import type { Dataset, Query } from '../dataset.js';

/**
 * One query's answer: `A` allow, `D` deny, `N` deny because nothing matched (Gatehouse tells it
 * apart; the peers answer only A or D), `E` an error answer. Agreement compares allow vs not.
 */
export type Answer = 'A' | 'D' | 'N' | 'E';

/** An engine under test, driven the same way by the child process. */
export interface EngineAdapter {
  /** Translates the neutral dataset into the engine's own input (timed apart, as buildMs). */
  build(ds: Dataset): void;
  /** Compiles or loads the built input; the figure reported as compileMs. Drops the input it no longer needs. */
  load(): Promise<void>;
  /** Builds the request objects (untimed) and returns a function answering query i. */
  prepare(ds: Dataset, queries: readonly Query[]): (i: number) => Answer;
}
