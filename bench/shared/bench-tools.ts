/**
 * What the HTTP benchmarks (bench/pdp, bench/token) share: the child side of their IPC protocol
 * (resource usage on request, a clean exit that lets --cpu-prof write its profile), option
 * parsing, percentiles and medians, and the table output.
 */

/** A child's CPU time and memory, answered to `usage`. */
export interface Usage {
  type: 'usage';
  /** process.cpuUsage() since the child started, µs. */
  userUs: number;
  systemUs: number;
  rssMb: number;
}

/** `usage`: answer with a Usage; `stop`: close and exit (writing a --cpu-prof profile). */
export type ParentMessage = { type: 'usage' } | { type: 'stop' };

/** Answers `usage` and `stop` from the parent; exits (once) when told to or when the parent goes away. */
export function serveParent(close: () => Promise<void>): void {
  let exiting = false;
  const exit = async (): Promise<void> => {
    if (exiting) return;
    exiting = true;
    try {
      await close();
    } finally {
      // process.exit (not a kill) lets --cpu-prof write its profile.
      process.exit(0);
    }
  };
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'usage') {
      const cpu = process.cpuUsage();
      const answer: Usage = {
        type: 'usage',
        userUs: cpu.user,
        systemUs: cpu.system,
        rssMb: process.memoryUsage().rss / (1024 * 1024),
      };
      process.send?.(answer);
    } else if (m.type === 'stop') {
      void exit();
    }
  });
  process.on('disconnect', () => void exit());
}

/** Sends `message` to the parent and waits until it is handed over (stdout without a parent). */
export function send(message: object): Promise<void> {
  return new Promise((resolve) => {
    if (process.send) process.send(message, () => resolve());
    else {
      process.stdout.write(`${JSON.stringify(message)}\n`);
      resolve();
    }
  });
}

/** The number option `--name` given as `text`; throws naming the option when it is not acceptable. */
export function positive(name: string, text: string, integer: boolean, zero = false): number {
  const n = Number(text);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < 0 || (n === 0 && !zero)) {
    throw new Error(
      `--${name}: expected a ${zero ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'}, got "${text}"`,
    );
  }
  return n;
}

/** The `p`th percentile of ascending `sorted` values (nearest rank); NaN when there are none. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The median of `xs`. */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** A whole number with thousands separators; `—` for none. */
export const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
/** Milliseconds; `—` for none. */
export const ms = (n: number): string => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : '—');
/** A percentage; `—` for none. */
export const pct = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(0)}%` : '—');

/** `rows` as a text table: the first column left-aligned, the others right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '))
    .join('\n');
}
