/**
 * The in-memory decision catalog of this node: every domain compiled, tagged with its revision.
 * Writes on this node swap in the domains they recompiled before they return (read-your-writes
 * on one node); `reload` rebuilds everything from the store; `refreshDomain` reloads one domain
 * (other nodes' changes, change-listener.ts); `ensureRevision` makes sure a domain is at least as
 * fresh as a revision a client has seen (docs/scale-out.md).
 */

import {
  compileDomainCollecting,
  createCatalog,
  NAME_LIMITS,
  withDomains,
  withoutDomains,
  withPrincipals,
  type Catalog,
  type CompiledDomain,
  type DomainModel,
  type PrincipalModel,
} from '@gatehouse/engine';
import type { Kysely } from 'kysely';
import { loadAllDomainModels, loadDomainModel, loadPrincipals, type Queryable } from '../storage/load-domain-model.js';
import type { Database } from '../storage/schema.js';

/** What refreshing one domain from the database did. */
export type DomainRefresh =
  /** The domain as stored, at `revision`, is held now. */
  | { readonly outcome: 'swapped'; readonly revision: number }
  /** The catalog already held `revision`, newer than (or as new as) the stored one; it stays. */
  | { readonly outcome: 'kept'; readonly revision: number; readonly stored: number }
  /** The stored domain does not compile (a database edited by hand); the catalog is unchanged. */
  | { readonly outcome: 'invalid'; readonly revision: number; readonly issues: number }
  /** The database has no such domain; the catalog is unchanged (the caller decides whether to drop it). */
  | { readonly outcome: 'missing' };

/** One load of a domain in flight, shared by everyone waiting for it. */
interface Flight {
  /** The sequence number taken when the load started: it saw every commit before that moment. */
  readonly started: number;
  readonly done: Promise<DomainRefresh>;
}

/**
 * Loads domain `name` from one snapshot of the database. The loader reads the domain's rows with
 * several queries; outside a transaction each could see another commit (PostgreSQL's default
 * isolation takes a snapshot per statement), and a mix of two revisions could even fail to compile.
 */
function loadDomainSnapshot(db: Kysely<Database>, name: string): Promise<DomainModel | undefined> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute((tx) => loadDomainModel(tx, name));
}

/** Holds the current catalog; replaced whole on every change (readers never see half a change). */
export class CatalogHolder {
  private current: Catalog = createCatalog();
  /** Loads of one domain in flight (at most one per domain), for ensureRevision. */
  readonly #flights = new Map<string, Flight>();
  /** Orders ensureRevision calls against the loads they may share. */
  #sequence = 0;

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

  /** The revision of domain `name` (any case) the catalog holds; undefined when it holds none. */
  revisionOf(name: string): number | undefined {
    return this.current.domains.get(name.toLowerCase())?.revision;
  }

  /**
   * Loads domain `name` (any case) from the database as it stands, compiles it and swaps it in —
   * unless the catalog already holds a newer revision (a write on this node may have swapped one
   * in meanwhile). Never drops a domain: on `missing` the caller decides. Throws what the
   * database throws (the catalog is then unchanged).
   */
  async refreshDomain(db: Kysely<Database>, name: string): Promise<DomainRefresh> {
    const model = await loadDomainSnapshot(db, name.toLowerCase());
    if (model === undefined) return { outcome: 'missing' };
    const { compiled, issues } = compileDomainCollecting(model);
    if (issues.length > 0) return { outcome: 'invalid', revision: compiled.revision, issues: issues.length };
    const held = this.current.domains.get(compiled.name)?.revision;
    if (held !== undefined && held > compiled.revision) {
      return { outcome: 'kept', revision: held, stored: compiled.revision };
    }
    this.update([compiled]);
    return { outcome: 'swapped', revision: compiled.revision };
  }

  /**
   * Makes sure the catalog holds domain `domain` (any case) at `minRevision` or newer, as far
   * as the database has it (read-your-writes across nodes: a client that saw revision N on one
   * node asks another with `context.min_revision` N). When the held revision is older (or the
   * domain is not held), loads that one domain from the database now and swaps it in.
   *
   * Concurrent callers share loads: at most one load per domain is in flight, and a caller
   * waits only for a load that started after it was called (so it sees every commit the caller
   * could know of) — a stream of requests naming a revision the database does not have costs
   * one load at a time per domain, never one per request.
   *
   * Resolves to the revision held afterwards: still below `minRevision` when the database itself
   * is older (the caller's answer then carries the revision it was made on), undefined when the
   * domain exists neither here nor in the database. Throws RangeError when `minRevision` is not
   * a positive safe integer, and what the database throws (the catalog is then unchanged).
   */
  async ensureRevision(db: Kysely<Database>, domain: string, minRevision: number): Promise<number | undefined> {
    if (!Number.isSafeInteger(minRevision) || minRevision < 1) {
      throw new RangeError(`minRevision must be a positive integer, not ${String(minRevision)}`);
    }
    const name = domain.toLowerCase();
    const held = (): number | undefined => this.revisionOf(name);
    if ((held() ?? 0) >= minRevision) return held();
    // No domain has a longer name: nothing to load (and nothing unbounded to key flights by).
    if (name.length > NAME_LIMITS.domain) return held();
    const calledAt = ++this.#sequence;
    // At most two rounds: a load already in flight may have started before this call (and
    // missed a commit the caller knows of); the next one starts after it.
    for (;;) {
      const flight = this.#flights.get(name);
      if (flight !== undefined && flight.started > calledAt) {
        await flight.done;
        return held();
      }
      if (flight !== undefined) {
        // Its outcome (or failure) is its starter's; this caller loads again, after it.
        await flight.done.catch(() => undefined);
        if ((held() ?? 0) >= minRevision) return held();
        continue;
      }
      const started = ++this.#sequence;
      const done = this.refreshDomain(db, name).finally(() => {
        if (this.#flights.get(name)?.done === done) this.#flights.delete(name);
      });
      this.#flights.set(name, { started, done });
      await done;
      return held();
    }
  }
}
