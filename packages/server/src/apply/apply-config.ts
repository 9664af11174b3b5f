/**
 * `gatehouse apply`: makes every domain a config file names match the file exactly, in one
 * transaction, after computing the plan; domains the file does not name are untouched. A dry
 * run executes the whole change in the transaction — so it is validated exactly as a real one —
 * and rolls it back.
 */

import { ADMIN_ROLE, type CompiledDomain, type ParsedConfig } from '@gatehouse/engine';
import type { Store, WriteContext } from '../storage/store.js';
import { desiredDomainState, policyKey, readDomainState, type DomainState } from './domain-state.js';
import { planDomain, policyOf, type ApplyPlan, type PlannedChange } from './plan-apply.js';

/** The outcome of an apply. */
export interface ApplyResult {
  plan: ApplyPlan;
  /** True when the change was made (false for a dry run or an empty plan). */
  applied: boolean;
  /** The changed domains as compiled after the change (empty for a dry run). */
  compiled: Map<string, CompiledDomain>;
}

/** Options of applyConfig. */
export interface ApplyOptions {
  dryRun?: boolean;
  ctx: WriteContext;
}

function byDepth(a: string, b: string): number {
  return a.split('.').length - b.split('.').length || (a < b ? -1 : a > b ? 1 : 0);
}

async function execute(store: Store, change: PlannedChange, desired: DomainState, ctx: WriteContext): Promise<void> {
  const d = desired.name;
  switch (change.kind) {
    case 'domain':
      if (change.action === 'create') {
        await store.createDomain(
          {
            name: d,
            description: desired.description,
            enabled: desired.enabled,
            attributes: desired.attributes,
            admins: desired.admins,
          },
          ctx,
        );
      } else {
        await store.updateDomain(
          d,
          { description: desired.description, enabled: desired.enabled, attributes: desired.attributes },
          undefined,
          ctx,
        );
      }
      return;
    case 'admins':
      await store.replaceRole(d, ADMIN_ROLE, { members: desired.admins }, undefined, ctx);
      return;
    case 'role': {
      const r = desired.roles.get(change.name);
      if (change.action === 'delete' || r === undefined) await store.deleteRole(d, change.name, undefined, ctx);
      else if (change.action === 'create') await store.createRole(d, { name: change.name, ...r }, ctx);
      else await store.replaceRole(d, change.name, r, undefined, ctx);
      return;
    }
    case 'group': {
      const g = desired.groups.get(change.name);
      if (change.action === 'delete' || g === undefined) await store.deleteGroup(d, change.name, undefined, ctx);
      else if (change.action === 'create') await store.createGroup(d, { name: change.name, ...g }, ctx);
      else await store.replaceGroup(d, change.name, g, undefined, ctx);
      return;
    }
    case 'policy': {
      const { name, version } = policyOf(change);
      const p = desired.policies.get(policyKey(name, version));
      if (change.action === 'delete' || p === undefined) await store.deletePolicy(d, name, version, undefined, ctx);
      else await store.putPolicy(d, p, undefined, ctx);
      return;
    }
    default:
      throw new Error(`apply cannot yet change ${change.kind} objects`);
  }
}

/**
 * Plans and (unless `dryRun`) applies a parsed, issue-free config file. Throws the store's
 * errors (ValidationError with every issue, ConflictError…) and changes nothing when any step
 * fails.
 */
export async function applyConfig(store: Store, parsed: ParsedConfig, options: ApplyOptions): Promise<ApplyResult> {
  if (parsed.issues.length > 0) throw new Error('applyConfig needs a config file without issues');
  const domains = [...parsed.config.domains].sort((a, b) => byDepth(a.name.toLowerCase(), b.name.toLowerCase()));
  const { result, compiled } = await store.transaction(
    async (tx) => {
      const upserts: [PlannedChange, DomainState][] = [];
      const deletes: [PlannedChange, DomainState][] = [];
      for (const dc of domains) {
        const desired = desiredDomainState(dc);
        const current = await readDomainState(tx.db, desired.name);
        const plan = planDomain(current, desired);
        for (const c of plan.upserts) upserts.push([c, desired]);
        for (const c of plan.deletes) deletes.push([c, desired]);
      }
      // Deletions last, newest domains' first: references go before what they point at.
      deletes.reverse();
      const plan: ApplyPlan = { changes: [...upserts, ...deletes].map(([c]) => c) };
      for (const [c, desired] of [...upserts, ...deletes]) await execute(tx, c, desired, options.ctx);
      return plan;
    },
    { deferValidation: true, rollback: options.dryRun === true },
  );
  if (options.dryRun) return { plan: result, applied: false, compiled: new Map() };
  return { plan: result, applied: result.changes.length > 0, compiled };
}
