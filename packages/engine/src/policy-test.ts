/**
 * Policy tests (config-format.md "Policy tests"): a test file names config files, an instant and
 * cases; each case is checked against an in-memory engine — a decision, the actions allowed,
 * the roles held, or a token-mode result code. Pure: files are read through `readFile`.
 */

import { compileBundle, toBundlePayload } from './bundle-payload.js';
import { compileCatalog, createCatalog, validateDomains, type Catalog } from './catalog.js';
import { parseInstant } from './compile-domain.js';
import { mapModelIssues, readConfigFile } from './config-file.js';
import { decide } from './decide.js';
import { listActions } from './list.js';
import type { DomainModel, PrincipalModel } from './model.js';
import { childPath, readSourceFile, type FileIssue } from './source-file.js';
import { decideToken, resolveTokenClaims, type TokenStatus } from './token-mode.js';

/** One failed case. */
export interface PolicyTestFailure {
  file: string;
  line: number;
  name: string;
  message: string;
}

/** The outcome of one test file. */
export interface PolicyTestReport {
  file: string;
  passed: number;
  failed: number;
  failures: PolicyTestFailure[];
  /** Problems with the test file or its config files; a file with any runs no case. */
  issues: FileIssue[];
}

/** Options of runPolicyTestFile. */
export interface PolicyTestOptions {
  /** Reads a file by path; throws when it cannot. */
  readFile: (path: string) => string;
}

const TOKEN_STATUSES: readonly TokenStatus[] = [
  'ALLOW',
  'DENY',
  'DENY_NO_MATCH',
  'DENY_TOKEN_INVALID',
  'DENY_TOKEN_EXPIRED',
  'DENY_DOMAIN_MISMATCH',
  'DENY_DOMAIN_NOT_FOUND',
  'DENY_DOMAIN_EMPTY',
  'DENY_DOMAIN_EXPIRED',
  'DENY_INVALID_PARAMETERS',
];

const CASE_FIELDS = [
  'name',
  'principal',
  'action',
  'resource',
  'domain',
  'resourceProperties',
  'subjectProperties',
  'actionProperties',
  'context',
  'now',
  'token',
  'expect',
  'expectActions',
  'expectRoles',
  'expectStatus',
];

/** Resolves `rel` against the folder of `file` (POSIX separators; absolute paths kept). */
export function resolveRelative(file: string, rel: string): string {
  if (rel.startsWith('/')) return rel;
  const absolute = file.startsWith('/');
  const parts = file
    .split('/')
    .slice(0, -1)
    .filter((p) => p !== '' && p !== '.');
  for (const seg of rel.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..' && parts.length > 0 && parts[parts.length - 1] !== '..') parts.pop();
    else if (seg !== '..' || !absolute) parts.push(seg);
  }
  return `${absolute ? '/' : ''}${parts.join('/')}`;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function seconds(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v instanceof Date) return Math.floor(v.getTime() / 1000);
  if (typeof v === 'string') {
    const ms = parseInstant(v);
    return ms === undefined ? undefined : Math.floor(ms / 1000);
  }
  return undefined;
}

function instant(v: unknown): number | undefined {
  if (v instanceof Date) return v.getTime();
  return typeof v === 'string' ? parseInstant(v) : undefined;
}

/** Runs one policy test file. Never throws: unreadable or invalid files are issues. */
export function runPolicyTestFile(file: string, text: string, options: PolicyTestOptions): PolicyTestReport {
  const report: PolicyTestReport = { file, passed: 0, failed: 0, failures: [], issues: [] };
  const src = readSourceFile(file, text);
  report.issues.push(...src.issues);
  if (src.issues.length > 0) return report;
  const issue = (path: string, code: string, message: string): void => {
    const p = src.positionOf(path);
    report.issues.push({ file, line: p.line, column: p.column, path, code, message });
  };
  const root = src.value as Record<string, unknown> | null;
  if (root === null || typeof root !== 'object' || Array.isArray(root)) {
    issue('', 'test.invalid', 'a test file is a mapping with config, now and tests');
    return report;
  }
  for (const k of Object.keys(root)) {
    if (!['config', 'now', 'tests', 'clockSkewSeconds'].includes(k))
      issue(k, 'config.unknown_field', `unknown field "${k}"`);
  }
  const configs = typeof root.config === 'string' ? [root.config] : root.config;
  if (!Array.isArray(configs) || configs.some((c) => typeof c !== 'string')) {
    issue('config', 'test.invalid', 'config must be a file name or a list of file names');
  }
  const fileNow = root.now === undefined ? undefined : instant(root.now);
  if (root.now !== undefined && fileNow === undefined) issue('now', 'test.invalid', 'now must be an RFC 3339 instant');
  const skew = root.clockSkewSeconds ?? 0;
  if (typeof skew !== 'number' || skew < 0)
    issue('clockSkewSeconds', 'test.invalid', 'clockSkewSeconds must be a number of seconds');
  if (!Array.isArray(root.tests)) issue('tests', 'test.invalid', 'tests must be a list');
  if (report.issues.length > 0) return report;

  const files: ReturnType<typeof readConfigFile>[] = [];
  for (const [i, rel] of (configs as string[]).entries()) {
    const path = resolveRelative(file, rel);
    let configText: string;
    try {
      configText = options.readFile(path);
    } catch (err) {
      issue(
        childPath('config', i),
        'test.config_unreadable',
        `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`,
      );
      continue;
    }
    const read = readConfigFile(path, configText);
    report.issues.push(...read.issues);
    files.push(read);
  }
  if (report.issues.length > 0) return report;
  // The config files of a test are loaded together, with operator rights.
  const domains: DomainModel[] = files.flatMap((f) => f.domains);
  const principals: PrincipalModel[] = files.flatMap((f) => f.principals);
  report.issues.push(...mapModelIssues(files, validateDomains(domains, { principals })));
  if (report.issues.length > 0) return report;
  const catalog: Catalog = compileCatalog(domains, principals);
  const far = new Date(Date.UTC(9999, 0, 1));
  const tokenCatalog: Catalog = createCatalog(domains.map((d) => compileBundle(toBundlePayload(d, new Date(0), far))));

  (root.tests as unknown[]).forEach((raw, i) => {
    const path = childPath('tests', i);
    const line = src.positionOf(path).line;
    const t = raw as Record<string, unknown>;
    const name = typeof t?.name === 'string' ? t.name : `tests[${i}]`;
    const fail = (message: string): void => {
      report.failed++;
      report.failures.push({ file, line, name, message });
    };
    if (t === null || typeof t !== 'object' || Array.isArray(t)) return fail('a case must be a mapping');
    const unknown = Object.keys(t).filter((k) => !CASE_FIELDS.includes(k));
    if (unknown.length > 0) return fail(`unknown field(s): ${unknown.join(', ')}`);
    const nowMs = t.now === undefined ? fileNow : instant(t.now);
    if (nowMs === undefined) return fail('no instant: set now in the file or the case (RFC 3339)');
    const str = (k: string): string => (typeof t[k] === 'string' ? (t[k] as string) : '');
    const obj = (k: string): Record<string, unknown> | undefined =>
      t[k] !== null && typeof t[k] === 'object' && !Array.isArray(t[k]) ? (t[k] as Record<string, unknown>) : undefined;
    const props = {
      context: obj('context'),
      resourceProperties: obj('resourceProperties'),
      subjectProperties: obj('subjectProperties'),
      actionProperties: obj('actionProperties'),
    };
    const expectations = ['expect', 'expectActions', 'expectRoles', 'expectStatus'].filter((k) => t[k] !== undefined);
    if (expectations.length !== 1)
      return fail('a case has exactly one of expect, expectActions, expectRoles, expectStatus');
    if (t.token !== undefined || t.expectStatus !== undefined) {
      const token = obj('token');
      if (!token || typeof t.expectStatus !== 'string') return fail('a token case needs token and expectStatus');
      if (!TOKEN_STATUSES.includes(t.expectStatus as TokenStatus))
        return fail(`expectStatus must be one of ${TOKEN_STATUSES.join(', ')}`);
      const claims = {
        ...token,
        exp: seconds(token.exp),
        iat: token.iat === undefined ? undefined : seconds(token.iat),
      };
      const r = decideToken(tokenCatalog, claims, str('action'), str('resource'), {
        now: nowMs,
        clockSkewSeconds: skew as number,
        ...props,
      });
      if (r.status !== t.expectStatus) return fail(`expected ${String(t.expectStatus)}, got ${r.status}: ${r.reason}`);
      report.passed++;
      return;
    }
    if (t.expectRoles !== undefined) {
      const domain = str('domain');
      const expected = Array.isArray(t.expectRoles) ? t.expectRoles.map(String) : undefined;
      if (!domain || !expected) return fail('a roles case needs principal, domain and expectRoles (a list)');
      const m = resolveTokenClaims(catalog, str('principal'), domain, nowMs);
      if (!m) return fail(`domain ${domain} does not exist or is disabled`);
      const got = m.roles.map((r) => r.slice(r.indexOf(':role.') + 6));
      if (
        !sameSet(
          got,
          expected.map((x) => x.toLowerCase()),
        )
      )
        return fail(`expected roles [${expected.join(', ')}], got [${got.join(', ')}]`);
      report.passed++;
      return;
    }
    if (t.expectActions !== undefined) {
      const expected = Array.isArray(t.expectActions) ? t.expectActions.map(String) : undefined;
      if (!expected) return fail('expectActions must be a list');
      const r = listActions(
        catalog,
        { principal: str('principal'), resource: str('resource'), ...props },
        { now: nowMs },
      );
      if ('error' in r) return fail(`listing failed: ${r.error}: ${r.message}`);
      const got = [...r.actions, ...r.allowPatterns];
      if (
        !sameSet(
          got,
          expected.map((x) => x.toLowerCase()),
        )
      )
        return fail(`expected actions [${expected.join(', ')}], got [${got.join(', ')}]`);
      report.passed++;
      return;
    }
    const expect = String(t.expect);
    if (!/^(allow|deny|error:[a-z_.]+)$/.test(expect)) return fail('expect must be allow, deny or error:<code>');
    const d = decide(
      catalog,
      { principal: str('principal'), action: str('action'), resource: str('resource'), ...props },
      { now: nowMs, explain: true },
    );
    const got = d.decision === 'error' ? `error:${d.code}` : d.decision;
    if (got !== expect) return fail(`expected ${expect}, got ${got}: ${d.explanation?.summary ?? d.message ?? ''}`);
    report.passed++;
  });
  return report;
}

/** Formats reports: one line per failure and issue, then `N passed, M failed`. */
export function formatPolicyTestReports(reports: readonly PolicyTestReport[]): string {
  const lines: string[] = [];
  let passed = 0;
  let failed = 0;
  for (const r of reports) {
    for (const is of r.issues) lines.push(`${is.file}:${is.line}:${is.column}: ${is.message} (${is.code})`);
    for (const f of r.failures) lines.push(`${f.file}:${f.line}: FAIL ${f.name}: ${f.message}`);
    passed += r.passed;
    failed += r.failed + (r.issues.length > 0 ? 1 : 0);
  }
  lines.push(`${passed} passed, ${failed} failed`);
  return lines.join('\n');
}
