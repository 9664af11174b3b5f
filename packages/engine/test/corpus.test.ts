/**
 * The decision corpus: every `*.test.yaml` policy test file under `packages/engine/testdata`
 * (config-format.md "Policy tests"), written from semantics.md; each case names the rule it proves.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatPolicyTestReports, runPolicyTestFile, type PolicyTestReport } from '@gatehouse/engine';

const testdata = fileURLToPath(new URL('../testdata/', import.meta.url));

function findTestFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return findTestFiles(path);
      return e.isFile() && e.name.endsWith('.test.yaml') ? [path] : [];
    })
    .sort();
}

function run(file: string): PolicyTestReport {
  return runPolicyTestFile(file, readFileSync(file, 'utf8'), { readFile: (path) => readFileSync(path, 'utf8') });
}

const files = findTestFiles(testdata);

describe('decision corpus (semantics.md)', () => {
  it('is not empty', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files.map((file) => [relative(testdata, file), file] as const))('%s', (_name, file) => {
    const report = run(file);
    const summary = formatPolicyTestReports([report]);
    expect(report.issues, summary).toEqual([]);
    expect(report.failed, summary).toBe(0);
    expect(report.passed, summary).toBeGreaterThan(0);
  });
});
