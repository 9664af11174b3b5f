/**
 * The management service: each call checks that the caller may make it (a Gatehouse decision,
 * authorize-management.ts), makes it through the store (one audited, validated transaction),
 * and swaps the recompiled domain into this node's catalog before it returns.
 */

import { formatFileIssues, parseConfigFile, type CompiledDomain, type MemberEntry } from '@gatehouse/engine';
import { applyConfig, type ApplyResult } from '../apply/apply-config.js';
import { configToYaml, exportConfig } from '../apply/export-config.js';
import type { CatalogHolder } from '../catalog/catalog-holder.js';
import { forbidden, ProblemError } from '../http/problem.js';
import { listAudit, type AuditEvent } from '../storage/audit-log.js';
import type { AssertionModel } from '@gatehouse/engine';
import type {
  DomainRecord,
  DomainWrite,
  GroupRecord,
  ListOptions,
  Page,
  PolicyRecord,
  RoleRecord,
  Store,
} from '../storage/store.js';
import { canCreateDomain, canManage, isSuperAdmin, type ManagementAction } from './authorize-management.js';

/** Who calls, for authorization and the audit trail. */
export interface Caller {
  /** The principal (`user.alice`, `library.indexer`), or `operator` for local CLI use. */
  principal: string;
  requestId?: string | undefined;
}

/** The principal of local operator mode (the CLI against the database): may do everything. */
export const OPERATOR = 'operator';

/** Management calls for domains, roles, groups, policies, audit, export and import. */
export class ManagementService {
  constructor(
    readonly store: Store,
    readonly catalog: CatalogHolder,
    readonly clock: () => Date = () => new Date(),
  ) {}

  private require(caller: Caller, action: ManagementAction, domain: string, object: string): void {
    if (caller.principal === OPERATOR) return;
    if (
      !canManage(
        this.catalog.catalog,
        caller.principal,
        action,
        domain.toLowerCase(),
        object.toLowerCase(),
        this.clock(),
      )
    ) {
      throw forbidden(
        'management.forbidden',
        `${caller.principal} may not ${action} ${domain.toLowerCase()}:${object.toLowerCase()}`,
      );
    }
  }

  private ctx(caller: Caller): { actor: string; requestId: string | undefined } {
    return { actor: caller.principal, requestId: caller.requestId };
  }

  private applied<T>(w: DomainWrite<T>): T {
    if (w.compiled) this.catalog.update([w.compiled]);
    return w.record;
  }

  // ---- domains ---------------------------------------------------------------------------------

  /** Lists the domains the caller may read. */
  async listDomains(caller: Caller, options: ListOptions & { parent?: string }): Promise<Page<DomainRecord>> {
    const page = await this.store.listDomains(options);
    if (caller.principal === OPERATOR) return page;
    const now = this.clock();
    return {
      ...page,
      items: page.items.filter((d) => canManage(this.catalog.catalog, caller.principal, 'read', d.name, 'domain', now)),
    };
  }

  /** Creates a domain: its parent's admins may create subdomains, super admins any domain. */
  async createDomain(
    caller: Caller,
    input: {
      name: string;
      description?: string | null;
      enabled?: boolean;
      attributes?: Record<string, unknown>;
      admins?: MemberEntry[];
    },
  ): Promise<DomainRecord> {
    const name = input.name.toLowerCase();
    if (caller.principal !== OPERATOR && !canCreateDomain(this.catalog.catalog, caller.principal, name, this.clock())) {
      throw forbidden('management.forbidden', `${caller.principal} may not create domain ${name}`);
    }
    // Whoever creates a domain without naming its admins becomes its admin.
    const admins = input.admins ?? (caller.principal === OPERATOR ? [] : [{ name: caller.principal }]);
    return this.applied(await this.store.createDomain({ ...input, admins }, this.ctx(caller)));
  }

  /** Gets a domain. */
  async getDomain(caller: Caller, name: string): Promise<DomainRecord> {
    this.require(caller, 'read', name, 'domain');
    return this.store.getDomain(name);
  }

  /** Updates a domain's description, enabled flag or attributes. */
  async updateDomain(
    caller: Caller,
    name: string,
    patch: { description?: string | null; enabled?: boolean; attributes?: Record<string, unknown> },
    ifMatch: number | undefined,
  ): Promise<DomainRecord> {
    this.require(caller, 'update', name, 'domain');
    return this.applied(await this.store.updateDomain(name, patch, ifMatch, this.ctx(caller)));
  }

  /** Deletes a domain (super admins, or its parent's admins for a subdomain). */
  async deleteDomain(caller: Caller, name: string, ifMatch: number | undefined): Promise<void> {
    const d = name.toLowerCase();
    const dot = d.lastIndexOf('.');
    const allowed =
      caller.principal === OPERATOR ||
      isSuperAdmin(this.catalog.catalog, caller.principal, 'delete', d, this.clock()) ||
      (dot > 0 &&
        canManage(
          this.catalog.catalog,
          caller.principal,
          'delete',
          d.slice(0, dot),
          `domain.${d.slice(dot + 1)}`,
          this.clock(),
        ));
    if (!allowed) throw forbidden('management.forbidden', `${caller.principal} may not delete domain ${d}`);
    await this.store.deleteDomain(d, ifMatch, this.ctx(caller));
    this.catalog.remove([d]);
  }

  // ---- roles and groups ------------------------------------------------------------------------

  /** Lists a domain's roles. */
  async listRoles(caller: Caller, domain: string, options: ListOptions): Promise<Page<RoleRecord>> {
    this.require(caller, 'read', domain, 'role');
    return this.store.listRoles(domain, options);
  }

  /** Gets a role. */
  async getRole(caller: Caller, domain: string, name: string): Promise<RoleRecord> {
    this.require(caller, 'read', domain, `role.${name}`);
    return this.store.getRole(domain, name);
  }

  /** Creates a role. */
  async createRole(
    caller: Caller,
    domain: string,
    input: { name: string; description?: string | null; trust?: string | null; members?: MemberEntry[] },
  ): Promise<RoleRecord> {
    this.require(caller, 'create', domain, `role.${input.name}`);
    return this.applied(await this.store.createRole(domain, input, this.ctx(caller)));
  }

  /** Replaces a role (description, trust, members). */
  async replaceRole(
    caller: Caller,
    domain: string,
    name: string,
    input: { description?: string | null; trust?: string | null; members?: MemberEntry[] },
    ifMatch: number | undefined,
  ): Promise<RoleRecord> {
    this.require(caller, 'update', domain, `role.${name}`);
    return this.applied(await this.store.replaceRole(domain, name, input, ifMatch, this.ctx(caller)));
  }

  /** Deletes a role. */
  async deleteRole(caller: Caller, domain: string, name: string, ifMatch: number | undefined): Promise<void> {
    this.require(caller, 'delete', domain, `role.${name}`);
    this.applied(await this.store.deleteRole(domain, name, ifMatch, this.ctx(caller)));
  }

  /** Adds or replaces one member entry of a role or group. */
  async putMember(
    caller: Caller,
    kind: 'role' | 'group',
    domain: string,
    owner: string,
    entry: MemberEntry,
    ifMatch: number | undefined,
  ): Promise<RoleRecord | GroupRecord> {
    this.require(caller, 'update', domain, `${kind}.${owner}`);
    return this.applied(await this.store.putMember(kind, domain, owner, entry, ifMatch, this.ctx(caller)));
  }

  /** Removes one member entry of a role or group. */
  async deleteMember(
    caller: Caller,
    kind: 'role' | 'group',
    domain: string,
    owner: string,
    member: string,
    ifMatch: number | undefined,
  ): Promise<RoleRecord | GroupRecord> {
    this.require(caller, 'update', domain, `${kind}.${owner}`);
    return this.applied(await this.store.deleteMember(kind, domain, owner, member, ifMatch, this.ctx(caller)));
  }

  /** Lists a domain's groups. */
  async listGroups(caller: Caller, domain: string, options: ListOptions): Promise<Page<GroupRecord>> {
    this.require(caller, 'read', domain, 'group');
    return this.store.listGroups(domain, options);
  }

  /** Gets a group. */
  async getGroup(caller: Caller, domain: string, name: string): Promise<GroupRecord> {
    this.require(caller, 'read', domain, `group.${name}`);
    return this.store.getGroup(domain, name);
  }

  /** Creates a group. */
  async createGroup(
    caller: Caller,
    domain: string,
    input: { name: string; description?: string | null; parent?: string | null; members?: MemberEntry[] },
  ): Promise<GroupRecord> {
    this.require(caller, 'create', domain, `group.${input.name}`);
    return this.applied(await this.store.createGroup(domain, input, this.ctx(caller)));
  }

  /** Replaces a group. */
  async replaceGroup(
    caller: Caller,
    domain: string,
    name: string,
    input: { description?: string | null; parent?: string | null; members?: MemberEntry[] },
    ifMatch: number | undefined,
  ): Promise<GroupRecord> {
    this.require(caller, 'update', domain, `group.${name}`);
    return this.applied(await this.store.replaceGroup(domain, name, input, ifMatch, this.ctx(caller)));
  }

  /** Deletes a group. */
  async deleteGroup(caller: Caller, domain: string, name: string, ifMatch: number | undefined): Promise<void> {
    this.require(caller, 'delete', domain, `group.${name}`);
    this.applied(await this.store.deleteGroup(domain, name, ifMatch, this.ctx(caller)));
  }

  // ---- policies --------------------------------------------------------------------------------

  /** Lists a domain's policy versions. */
  async listPolicies(caller: Caller, domain: string, options: ListOptions): Promise<Page<PolicyRecord>> {
    this.require(caller, 'read', domain, 'policy');
    return this.store.listPolicies(domain, options);
  }

  /** Gets every version of a policy, the active one first. */
  async getPolicy(caller: Caller, domain: string, name: string): Promise<PolicyRecord[]> {
    this.require(caller, 'read', domain, `policy.${name}`);
    return this.store.getPolicy(domain, name);
  }

  /** Creates or replaces a policy version. */
  async putPolicy(
    caller: Caller,
    domain: string,
    input: {
      name: string;
      version?: string | null;
      active?: boolean;
      description?: string | null;
      assertions: AssertionModel[];
    },
    ifMatch: number | undefined,
  ): Promise<PolicyRecord> {
    this.require(caller, 'update', domain, `policy.${input.name}`);
    return this.applied(await this.store.putPolicy(domain, input, ifMatch, this.ctx(caller)));
  }

  /** Deletes a policy version. */
  async deletePolicy(
    caller: Caller,
    domain: string,
    name: string,
    version: string | null,
    ifMatch: number | undefined,
  ): Promise<void> {
    this.require(caller, 'delete', domain, `policy.${name}`);
    this.applied(await this.store.deletePolicy(domain, name, version, ifMatch, this.ctx(caller)));
  }

  // ---- audit, export, import -------------------------------------------------------------------

  /** Lists audit events: of one domain for whoever may read it; of everything for super admins. */
  async listAudit(
    caller: Caller,
    query: { domain?: string; actor?: string; since?: Date; until?: Date; cursor?: string; limit: number },
  ): Promise<{ items: AuditEvent[]; nextCursor?: string }> {
    if (query.domain !== undefined) this.require(caller, 'read', query.domain, 'audit');
    else if (
      caller.principal !== OPERATOR &&
      !isSuperAdmin(this.catalog.catalog, caller.principal, 'read', 'sys.auth', this.clock())
    ) {
      throw forbidden('management.forbidden', 'only super admins may read the whole audit trail; name a domain');
    }
    const afterSeq = query.cursor === undefined ? undefined : Number.parseInt(query.cursor, 10);
    if (query.cursor !== undefined && (!Number.isSafeInteger(afterSeq) || (afterSeq as number) < 0)) {
      throw new ProblemError({
        status: 400,
        code: 'request.invalid_cursor',
        detail: 'cursor is not one this server handed out',
      });
    }
    const page = await listAudit(this.store.db, {
      domain: query.domain?.toLowerCase(),
      actor: query.actor?.toLowerCase(),
      since: query.since,
      until: query.until,
      afterSeq,
      limit: query.limit,
    });
    return page.nextSeq === undefined ? { items: page.items } : { items: page.items, nextCursor: String(page.nextSeq) };
  }

  /** Exports a domain in the config file format (YAML). */
  async exportDomain(caller: Caller, domain: string): Promise<string> {
    this.require(caller, 'read', domain, 'domain');
    await this.store.getDomain(domain);
    return configToYaml(await exportConfig(this.store.db, [domain]));
  }

  /**
   * Imports a config file into one domain (the file must name exactly that domain): the plan, and
   * — unless `dryRun` — the change, in one transaction. File errors are 400 with line and column.
   */
  async importDomain(caller: Caller, domain: string, text: string, dryRun: boolean): Promise<ApplyResult> {
    const d = domain.toLowerCase();
    this.require(caller, 'update', d, 'domain');
    const groups = await this.store.db.selectFrom('groups').select(['domain', 'name']).execute();
    const known = new Map<string, Set<string>>();
    for (const r of await this.store.db.selectFrom('domains').select('name').execute()) known.set(r.name, new Set());
    for (const g of groups) known.get(g.domain)?.add(g.name);
    const parsed = parseConfigFile(`${d}.yaml`, text, {
      lookupDomain: (n) => (known.has(n) ? { groups: known.get(n) as Set<string> } : undefined),
    });
    if (parsed.issues.length > 0) {
      throw new ProblemError({
        status: 400,
        code: parsed.issues[0]?.code ?? 'config.invalid',
        title: 'Invalid config file',
        detail: formatFileIssues(parsed.issues.slice(0, 20)),
        errors: parsed.issues
          .slice(0, 100)
          .map((i) => ({ pointer: `/body`, code: i.code, message: `${i.line}:${i.column} ${i.path}: ${i.message}` })),
      });
    }
    if (
      parsed.config.users.length > 0 ||
      parsed.config.domains.length !== 1 ||
      parsed.config.domains[0]?.name.toLowerCase() !== d
    ) {
      throw new ProblemError({
        status: 400,
        code: 'import.wrong_domain',
        detail: `a domain import holds exactly one domain, named ${d}, and no users`,
      });
    }
    const result = await applyConfig(this.store, parsed, { dryRun, ctx: this.ctx(caller) });
    this.catalog.update(result.compiled.values() as Iterable<CompiledDomain>);
    return result;
  }
}
