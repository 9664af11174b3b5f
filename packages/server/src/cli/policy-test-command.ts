import { readFileSync } from 'node:fs';
import { formatPolicyTestReports, runPolicyTestFile, type PolicyTestReport } from '@gatehouse/engine';

/** The outcome of `gatehouse test`: the report text and the process exit code. */
export interface PolicyTestRun {
  output: string;
  exitCode: 0 | 1;
}

/**
 * Runs policy test files (config-format.md "Policy tests") without a server: one line per
 * failing case with its file and line, then `N passed, M failed`. Exit code 1 when any case
 * failed or a file could not be read or parsed.
 */
export function runPolicyTests(files: readonly string[]): PolicyTestRun {
  const reports: PolicyTestReport[] = files.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return {
        file,
        passed: 0,
        failed: 0,
        failures: [],
        issues: [{ file, line: 1, column: 1, path: '', code: 'test.unreadable', message: `cannot read: ${message}` }],
      };
    }
    return runPolicyTestFile(file, text, { readFile: (path) => readFileSync(path, 'utf8') });
  });
  const failed = reports.some((r) => r.failed > 0 || r.issues.length > 0);
  return { output: formatPolicyTestReports(reports), exitCode: failed ? 1 : 0 };
}
