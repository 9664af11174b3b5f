/**
 * The directory: which user an AuthZEN subject id names, and which service principals exist,
 * held in memory so that the decision path never queries SQL for a subject (architecture.md,
 * "Decision plane"). Loaded whole at start (and after a lost change feed), then kept current by
 * this node's writes (management-service.ts) and by other nodes' change notices
 * (change-listener.ts).
 *
 * It answers exactly as the store does (UserStore.findUserBySubject,
 * ServiceStore.findServiceByPrincipal): a user by name (any case), else by external id (exact),
 * else by email (any case); a service by its principal name (any case). Memory: three plain
 * Maps and a Set of strings — 100,000 users with an email and one external id each took 35 MB
 * of heap, the strings included (measured on Node 20).
 */

import type { Queryable } from '../storage/load-domain-model.js';
import { loadServicePrincipals, loadUserKeys, type UserKeys } from '../storage/load-directory.js';

/** What the directory keeps of a user: the keys to drop when they change, and the revision. */
interface UserEntry {
  readonly email: string | null;
  readonly externalIds: readonly string[];
  readonly revision: number;
}

/** Shared by every user without external ids (most of them): one array, not one each. */
const NO_IDS: readonly string[] = Object.freeze([]);

/** The sizes of a directory. */
export interface DirectorySize {
  users: number;
  services: number;
}

/** Subject lookup without SQL: users by name, external id or email; service principals. */
export class Directory {
  /** Lower-cased user name → its entry. */
  #users = new Map<string, UserEntry>();
  /** External id (exact) → user name. */
  #byExternalId = new Map<string, string>();
  /** Lower-cased email → user name. */
  #byEmail = new Map<string, string>();
  /** Lower-cased service principals (`<domain>.<name>`). */
  #services = new Set<string>();
  /** #services sorted, made on demand and dropped on every change. */
  #sortedServices: readonly string[] | undefined;

  /** A directory loaded from the database. Throws what the queries throw. */
  static async load(db: Queryable): Promise<Directory> {
    const d = new Directory();
    await d.reload(db);
    return d;
  }

  /**
   * Replaces everything with what the database holds now (built aside, then swapped: lookups
   * never see half of it). Pass a transaction to read one snapshot. Throws what the queries
   * throw; the directory is then unchanged.
   */
  async reload(db: Queryable): Promise<DirectorySize> {
    const [users, services] = await Promise.all([loadUserKeys(db), loadServicePrincipals(db)]);
    const next = new Directory();
    for (const u of users) next.setUser(u);
    for (const s of services) next.#services.add(s);
    this.#users = next.#users;
    this.#byExternalId = next.#byExternalId;
    this.#byEmail = next.#byEmail;
    this.#services = next.#services;
    this.#sortedServices = undefined;
    return this.size;
  }

  /** How many users and services it holds. */
  get size(): DirectorySize {
    return { users: this.#users.size, services: this.#services.size };
  }

  /**
   * The name of the user an AuthZEN subject id names (authzen.md "From AuthZEN to Gatehouse"):
   * the user whose name is `id` in any case, else whose external id is exactly `id`, else whose
   * email is `id` in any case. Undefined when none is (and for anything but a non-empty string).
   */
  findUser(id: string): string | undefined {
    if (typeof id !== 'string' || id.length === 0) return undefined;
    // The store validates the name first; a key of #users is a valid name already, so a hit
    // here is exactly a hit there.
    const lower = id.toLowerCase();
    if (this.#users.has(lower)) return lower;
    return this.#byExternalId.get(id) ?? this.#byEmail.get(lower);
  }

  /** The stored revision of user `name` (any case); undefined when the directory does not hold it. */
  findUserRevision(name: string): number | undefined {
    return this.#users.get(name.toLowerCase())?.revision;
  }

  /**
   * The principal of the service `id` names (`library.gateway` in any case, lower-cased);
   * undefined when there is no such service.
   */
  findService(id: string): string | undefined {
    if (typeof id !== 'string') return undefined;
    const lower = id.toLowerCase();
    return this.#services.has(lower) ? lower : undefined;
  }

  /** True when a service has the principal name `principal` (any case). */
  hasService(principal: string): boolean {
    return this.findService(principal) !== undefined;
  }

  /**
   * Every service principal, sorted (for subject search); the same frozen array until the
   * services change.
   */
  servicePrincipals(): readonly string[] {
    this.#sortedServices ??= Object.freeze([...this.#services].sort());
    return this.#sortedServices;
  }

  /**
   * Sets a user's keys (replacing its old email and external ids), unless the directory holds
   * a newer revision of it — a load that raced with a later write must not undo it. Returns
   * whether it was set. Keys are taken as the store keeps them (name and email lower-cased).
   */
  setUser(user: UserKeys): boolean {
    const name = user.name.toLowerCase();
    const old = this.#users.get(name);
    if (old !== undefined && old.revision > user.revision) return false;
    if (old !== undefined) this.#dropKeys(name, old);
    const email = user.email === null ? null : user.email.toLowerCase();
    const externalIds = user.externalIds.length === 0 ? NO_IDS : [...user.externalIds];
    this.#users.set(name, { email, externalIds, revision: user.revision });
    // A key another user still holds here was taken from it by a write this directory has not
    // seen yet (the database keeps keys unique): the newer holder wins, the older one's notice follows.
    if (email !== null) this.#byEmail.set(email, name);
    for (const id of user.externalIds) this.#byExternalId.set(id, name);
    return true;
  }

  /** Drops user `name` (any case) and its keys; nothing when it is not held. */
  removeUser(name: string): void {
    const lower = name.toLowerCase();
    const old = this.#users.get(lower);
    if (old === undefined) return;
    this.#dropKeys(lower, old);
    this.#users.delete(lower);
  }

  /** Adds a service principal (`<domain>.<name>`, any case). */
  addService(principal: string): void {
    const p = principal.toLowerCase();
    if (this.#services.has(p)) return;
    this.#services.add(p);
    this.#sortedServices = undefined;
  }

  /** Drops a service principal (any case); nothing when it is not held. */
  removeService(principal: string): void {
    if (this.#services.delete(principal.toLowerCase())) this.#sortedServices = undefined;
  }

  /**
   * Drops every service of domain `domain` (a deleted domain's services went with it). Only
   * `<domain>.<name>` with a one-label name: the services of subdomains stay.
   */
  removeServicesOf(domain: string): void {
    const d = domain.toLowerCase();
    for (const p of this.#services) {
      if (p.lastIndexOf('.') === d.length && p.startsWith(d)) this.removeService(p);
    }
  }

  /** Drops the keys `name` holds (not those another user has taken since). */
  #dropKeys(name: string, entry: UserEntry): void {
    if (entry.email !== null && this.#byEmail.get(entry.email) === name) this.#byEmail.delete(entry.email);
    for (const id of entry.externalIds) if (this.#byExternalId.get(id) === name) this.#byExternalId.delete(id);
  }
}
