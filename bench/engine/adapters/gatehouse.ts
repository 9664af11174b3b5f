import { compileCatalog, decide, type Catalog, type DecisionRequest, type DomainModel } from '@gatehouse/engine';
import {
  ASSERTIONS_PER_POLICY,
  assertionResource,
  queryResource,
  roleShort,
  tenantName,
  type Dataset,
  type Query,
} from '../dataset.js';
import type { Answer, EngineAdapter } from './types.js';

/** A fixed instant: no entry of the dataset expires, so any would do. */
const NOW = Date.UTC(2026, 10, 1);

/** One domain per tenant, its roles with direct member entries, its assertions in policies of ≤ 1,000. */
export function domainModels(ds: Dataset): DomainModel[] {
  const models: DomainModel[] = [];
  for (let t = 0; t < ds.tenants; t++) {
    const members: string[][] = Array.from({ length: ds.rolesPerTenant }, () => []);
    for (const u of ds.users) for (const r of u.roles) if (r.tenant === t) members[r.role]!.push(u.name);
    const assertions = ds.assertions.filter((a) => a.tenant === t);
    const policies = [];
    for (let i = 0; i * ASSERTIONS_PER_POLICY < assertions.length; i++) {
      policies.push({
        name: `p${i}`,
        assertions: assertions.slice(i * ASSERTIONS_PER_POLICY, (i + 1) * ASSERTIONS_PER_POLICY).map((a) => ({
          effect: a.effect,
          action: a.action,
          resource: assertionResource(a),
          role: roleShort(a.role),
        })),
      });
    }
    models.push({
      name: tenantName(t),
      roles: members.map((names, r) => ({ name: roleShort(r), members: names.map((name) => ({ name })) })),
      policies,
    });
  }
  return models;
}

/** Gatehouse: compileCatalog over the tenant domains, decide() per query. */
export class GatehouseAdapter implements EngineAdapter {
  private models: DomainModel[] | undefined;
  private catalog: Catalog | undefined;

  constructor(private readonly explain: boolean) {}

  build(ds: Dataset): void {
    this.models = domainModels(ds);
  }

  async load(): Promise<void> {
    // The catalog keeps the models (explanations quote them), so they count in its heap.
    this.catalog = compileCatalog(this.models ?? []);
    this.models = undefined;
  }

  /** Shares an already loaded catalog (plain and explain run in one process). */
  useCatalog(catalog: Catalog): void {
    this.catalog = catalog;
  }

  get loaded(): Catalog | undefined {
    return this.catalog;
  }

  prepare(ds: Dataset, queries: readonly Query[]): (i: number) => Answer {
    const catalog = this.catalog;
    if (!catalog) throw new Error('gatehouse: not loaded');
    const requests: DecisionRequest[] = queries.map((q) => ({
      principal: ds.users[q.user]!.name,
      action: q.action,
      resource: queryResource(q),
    }));
    const options = { now: NOW, explain: this.explain };
    return (i) => {
      const d = decide(catalog, requests[i]!, options);
      if (d.decision === 'allow') return 'A';
      if (d.decision === 'error') return 'E';
      return d.code === 'no_match' ? 'N' : 'D';
    };
  }
}
