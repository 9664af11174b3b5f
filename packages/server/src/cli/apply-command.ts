import { readFileSync } from 'node:fs';
import { formatFileIssues, parseConfigFile, type ParsedConfig } from '@gatehouse/engine';
import { applyConfig } from '../apply/apply-config.js';
import { configToYaml, exportConfig } from '../apply/export-config.js';
import { countPlan, formatPlan, type ApplyPlan } from '../apply/plan-apply.js';
import { ensureReservedDomains } from '../runtime/ensure-reserved-domains.js';
import type { Queryable } from '../storage/load-domain-model.js';
import { ValidationError, type Store } from '../storage/store.js';
import { normalizeServerUrl } from './credentials-store.js';
import { tokenForServer, type LoginEnvironment, type ServerToken } from './login-command.js';
import { request } from './oauth-client.js';
import { CommandError, configFromEnv, withStore, type CommandOutput } from './run-operator-command.js';

/** Options of `gatehouse apply`. */
export interface ApplyCommandOptions {
  file: string;
  dryRun?: boolean;
  server?: string | undefined;
  token?: string | undefined;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CommandError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Parses a config file against what the store already holds (references to other domains). */
export async function parseAgainstStore(db: Queryable, file: string, text: string): Promise<ParsedConfig> {
  const known = new Map<string, Set<string>>();
  for (const r of await db.selectFrom('domains').select('name').execute()) known.set(r.name, new Set());
  for (const g of await db.selectFrom('groups').select(['domain', 'name']).execute()) known.get(g.domain)?.add(g.name);
  return parseConfigFile(file, text, {
    lookupDomain: (n) => (known.has(n) ? { groups: known.get(n) as Set<string> } : undefined),
  });
}

function summary(plan: ApplyPlan): string {
  const n = countPlan(plan);
  return `Applied: ${n.create} created, ${n.update} changed, ${n.delete} deleted.`;
}

/**
 * `gatehouse apply -f FILE`: prints the plan, then makes the change in one transaction. Errors in
 * the file are printed with line and column (exit 1); "No changes." when the store matches.
 */
export async function runApply(
  options: ApplyCommandOptions,
  output: CommandOutput,
  environment: LoginEnvironment = {},
): Promise<void> {
  const text = readText(options.file);
  if (options.server !== undefined) return runRemoteApply(options, text, output, environment);
  const config = configFromEnv();
  await withStore(config, async (store) => {
    await ensureReservedDomains(store);
    output.err(`Reading ${options.file}…`);
    const parsed = await parseAgainstStore(store.db, options.file, text);
    if (parsed.issues.length > 0) {
      throw new CommandError(
        `${formatFileIssues(parsed.issues)}\n${parsed.issues.length} problem(s) in ${options.file}; nothing was changed.`,
      );
    }
    const ctx = { actor: 'operator' };
    output.err('Planning…');
    const planned = await applyOrExplain(store, parsed, { dryRun: true, ctx });
    output.out(formatPlan(planned.plan));
    if (options.dryRun || planned.plan.changes.length === 0) return;
    output.err(`Applying ${planned.plan.changes.length} change(s) in one transaction…`);
    const done = await applyOrExplain(store, parsed, { ctx });
    if (JSON.stringify(done.plan) !== JSON.stringify(planned.plan)) {
      output.out(`The store changed while planning; what was applied:\n${formatPlan(done.plan)}`);
    }
    output.out(summary(done.plan));
    for (const sec of done.secrets) {
      output.out(`Generated secret of ${sec.kind} ${sec.name} (shown once; store it now): ${sec.secret}`);
    }
  });
}

async function applyOrExplain(store: Store, parsed: ParsedConfig, options: Parameters<typeof applyConfig>[2]) {
  try {
    return await applyConfig(store, parsed, options);
  } catch (err) {
    if (err instanceof ValidationError) {
      throw new CommandError(
        `${err.issues.map((i) => `${i.path}: ${i.message} (${i.code})`).join('\n')}\nnothing was changed`,
      );
    }
    if (err instanceof Error && 'code' in err)
      throw new CommandError(`${err.message} (${String((err as { code: unknown }).code)}); nothing was changed`);
    throw err;
  }
}

/** The problem of a failed server call, with a hint to log in again when a stored token was refused. */
function remoteProblem(what: string, status: number, detail: string, auth: ServerToken, server: string): string {
  const hint = status === 401 && auth.stored ? `; run gatehouse login --server ${server}` : '';
  return `${what}: ${detail}${hint}`;
}

async function runRemoteApply(
  options: ApplyCommandOptions,
  text: string,
  output: CommandOutput,
  environment: LoginEnvironment,
): Promise<void> {
  const parsed = parseConfigFile(options.file, text, { lookupDomain: () => ({ groups: new Set() }) });
  const own = parsed.issues.filter(
    (i) => i.code !== 'group.not_found' && i.code !== 'domain.not_found' && i.code !== 'domain.parent_not_found',
  );
  if (own.length > 0) throw new CommandError(`${formatFileIssues(own)}\nnothing was changed`);
  if (parsed.config.users.length > 0)
    throw new CommandError('users cannot be applied through --server yet; apply them locally');
  const base = normalizeServerUrl(options.server!);
  const auth = await tokenForServer(base, options.token, output, environment);
  const { stringify } = await import('yaml');
  // Each domain is imported on its own through the API (one transaction per domain).
  for (const [i, d] of parsed.config.domains.entries()) {
    const raw = (parsed as unknown as { config: { domains: unknown[] } }).config.domains[i];
    const body = JSON.stringify({ config: stringify({ domains: [raw] }) });
    for (const dryRun of options.dryRun ? [true] : [true, false]) {
      const res = await request(
        `${base}/v1/domains/${encodeURIComponent(d.name.toLowerCase())}/import${dryRun ? '?dryRun=true' : ''}`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${auth.token}`, 'content-type': 'application/json' },
          body,
        },
      );
      const json = (await res.json().catch(() => ({}))) as {
        changes?: ApplyPlan['changes'];
        detail?: string;
        code?: string;
      };
      if (!res.ok) {
        throw new CommandError(
          remoteProblem(
            d.name,
            res.status,
            `${json.detail ?? res.statusText} (${json.code ?? res.status})`,
            auth,
            base,
          ),
        );
      }
      const plan = { changes: json.changes ?? [] };
      if (dryRun) output.out(`${d.name}:\n${formatPlan(plan)}`);
      else output.out(summary(plan));
      if (plan.changes.length === 0) break;
    }
  }
}

/** `gatehouse export [DOMAIN…]`: the domains (all when none named) in the config file format. */
export async function runExport(
  domains: string[],
  options: { server?: string; token?: string },
  output: CommandOutput,
  environment: LoginEnvironment = {},
): Promise<void> {
  if (options.server !== undefined) {
    if (domains.length === 0) throw new CommandError('name the domains to export from a server');
    const base = normalizeServerUrl(options.server);
    const auth = await tokenForServer(base, options.token, output, environment);
    const { parse, stringify } = await import('yaml');
    const all: unknown[] = [];
    for (const d of domains) {
      const res = await request(`${base}/v1/domains/${encodeURIComponent(d)}/export`, {
        headers: { authorization: `Bearer ${auth.token}` },
      });
      if (!res.ok)
        throw new CommandError(remoteProblem(d, res.status, `${res.status} ${await res.text()}`, auth, base));
      all.push(...((parse(await res.text()) as { domains: unknown[] }).domains ?? []));
    }
    output.out(stringify({ domains: all }, { lineWidth: 0 }));
    return;
  }
  await withStore(configFromEnv(), async (store) => {
    try {
      output.out(configToYaml(await exportConfig(store.db, domains)));
    } catch (err) {
      throw new CommandError((err as Error).message);
    }
  });
}
