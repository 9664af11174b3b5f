/**
 * The in-memory decision catalog of this node: every domain compiled, tagged with its revision.
 * Writes on this node swap in the domains they recompiled before they return (read-your-writes
 * on one node); `reload` rebuilds everything from the store.
 */

import {
  compileDomainCollecting,
  createCatalog,
  withDomains,
  withoutDomains,
  withPrincipals,
  type Catalog,
  type CompiledDomain,
  type PrincipalModel,
} from '@gatehouse/engine';
import { loadAllDomainModels, loadPrincipals, type Queryable } from '../storage/load-domain-model.js';

/** Holds the current catalog; replaced whole on every change (readers never see half a change). */
export class CatalogHolder {
  private current: Catalog = createCatalog();

  /** The catalog decisions read now. */
  get catalog(): Catalog {
    return this.current;
  }

  /**
   * Rebuilds the catalog from the store. A domain that no longer validates (it cannot happen
   * through the store, but a database edited by hand can hold one) is left out and reported.
   */
  async reload(db: Queryable): Promise<{ domains: number; invalid: string[] }> {
    const models = await loadAllDomainModels(db);
    const compiled: CompiledDomain[] = [];
    const invalid: string[] = [];
    for (const m of models) {
      const r = compileDomainCollecting(m);
      if (r.issues.length > 0) invalid.push(m.name);
      else compiled.push(r.compiled);
    }
    this.current = createCatalog(compiled, await loadPrincipals(db));
    return { domains: compiled.length, invalid };
  }

  /** Swaps in recompiled domains, unless the catalog already holds a newer revision of one. */
  update(domains: Iterable<CompiledDomain>): void {
    const fresh = [...domains].filter((d) => (this.current.domains.get(d.name)?.revision ?? -1) <= d.revision);
    if (fresh.length > 0) this.current = withDomains(this.current, fresh);
  }

  /** Drops deleted domains. */
  remove(names: readonly string[]): void {
    if (names.length > 0) this.current = withoutDomains(this.current, names);
  }

  /** Sets (or, with `removed`, drops) principals' stored attributes. */
  updatePrincipals(principals: readonly PrincipalModel[], removed: readonly string[] = []): void {
    this.current = withPrincipals(this.current, principals, removed);
  }
}
