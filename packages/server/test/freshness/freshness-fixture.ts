import pg from 'pg';

/** The PostgreSQL database of the freshness tests; unset: they are skipped with a notice. */
export const pgUrl = process.env.GATEHOUSE_TEST_DATABASE_URL;

/** What a poll found: when, and after how many tries. */
export interface Seen {
  /** Milliseconds from the start of the poll until the condition held. */
  latencyMs: number;
  polls: number;
}

/**
 * Polls `condition` every `intervalMs` until it holds, and says how long that took; rejects with
 * `what` and the time waited when it still does not hold after `timeoutMs`. Cross-node freshness
 * is a matter of time (docs/scale-out.md: ≤ 1 s), so this is the one place tests poll a clock.
 */
export async function seenWithin(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 1000,
  intervalMs = 10,
): Promise<Seen> {
  const start = performance.now();
  for (let polls = 1; ; polls++) {
    if (await condition()) return { latencyMs: performance.now() - start, polls };
    const waited = performance.now() - start;
    if (waited > timeoutMs) throw new Error(`${what}: not seen after ${Math.round(waited)} ms (${polls} polls)`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Runs one statement on the test server with a connection of its own. */
export async function onServer<T extends pg.QueryResultRow>(statement: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    return (await client.query<T>(statement, values)).rows;
  } finally {
    await client.end();
  }
}

/** A fresh, empty schema in the test database; `drop` removes it with everything in it. */
export async function createSchema(label: string): Promise<{ name: string; drop(): Promise<void> }> {
  const name = `gh_${label}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await onServer(`create schema ${name}`);
  return { name, drop: async () => void (await onServer(`drop schema if exists ${name} cascade`)) };
}

/** p50 / p99 / max of some latencies, in whole ms, for the test's log line. */
export function summary(latenciesMs: readonly number[]): string {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const at = (q: number): number => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return `n=${sorted.length} p50=${at(0.5)} ms p99=${at(0.99)} ms max=${Math.round(sorted[sorted.length - 1] ?? 0)} ms`;
}
