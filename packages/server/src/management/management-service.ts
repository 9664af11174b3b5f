/**
 * The management service: each call checks that the caller may make it (a Gatehouse decision,
 * authorize-management.ts), makes it through the store (one audited, validated transaction),
 * and swaps the recompiled domain into this node's catalog before it returns. Users are
 * managed in the reserved domain `user` (objects `user:user.<name>`); a user may also read
 * themselves and change their own display name and password.
 */

import { formatFileIssues, parseConfigFile, type CompiledDomain, type MemberEntry } from '@gatehouse/engine';
import { applyConfig, type ApplyResult } from '../apply/apply-config.js';
import { configToYaml, exportConfig } from '../apply/export-config.js';
import type { BundleService, SignedBundle } from '../bundles/bundle-service.js';
import type { CatalogHolder } from '../catalog/catalog-holder.js';
import type { Directory } from '../catalog/directory.js';
import { storageProblem } from '../http/handle-error.js';
import { badRequest, forbidden, notFound, ProblemError, serviceUnavailable } from '../http/problem.js';
import type { KeyPurpose, KeyService, PublicJwks } from '../keys/key-service.js';
import { ApiStore, type ApiInput, type ApiPatch, type ApiRecord } from '../storage/api-store.js';
import { listAudit, type AuditEvent } from '../storage/audit-log.js';
import { ClientStore, type ClientInput, type ClientPatch, type ClientRecord } from '../storage/client-store.js';
import { ResourceStore, type ResourceRecord } from '../storage/resource-store.js';
import { ServiceStore, type ServiceInput, type ServicePatch, type ServiceRecord } from '../storage/service-store.js';
import { principalOfUser, UserStore, type UserInput, type UserPatch, type UserRecord } from '../storage/user-store.js';
import type { AssertionModel } from '@gatehouse/engine';
import {
  ValidationError,
  type DomainRecord,
  type DomainWrite,
  type GroupRecord,
  type ListOptions,
  type Page,
  type PolicyRecord,
  type RoleRecord,
  type Store,
} from '../storage/store.js';
import {
  SUPER_ADMIN_DOMAIN,
  canCreateDomain,
  canManage,
  isSuperAdmin,
  type ManagementAction,
} from './authorize-management.js';

/** Who calls, for authorization and the audit trail. */
export interface Caller {
  /** The principal (`user.alice`, `library.indexer`), or `operator` for local CLI use. */
  principal: string;
  requestId?: string | undefined;
}

/** The principal of local operator mode (the CLI against the database): may do everything. */
export const OPERATOR = 'operator';

/** The reserved domain in which user management is decided (objects `user.<name>`). */
export const USER_DOMAIN = 'user';

/** The fields a user may change of themselves without rights on `user:user.<name>`. */
export const SELF_SERVICE_USER_FIELDS: readonly string[] = ['displayName', 'password', 'currentPassword'];

/** The stores and keys beyond the domain store; each defaults to one over the same store. */
export interface ManagementParts {
  users?: UserStore;
  services?: ServiceStore;
  clients?: ClientStore;
  apis?: ApiStore;
  resources?: ResourceStore;
  /** The signing keys whose public halves `/v1/keys` publishes; without it those calls are 503. */
  keys?: KeyService;
  /** Signs the policy bundles `/v1/domains/{d}/bundle` serves; without it those calls are 503. */
  bundles?: BundleService;
  /** Told of every management decision (for the decisions metric). */
  onDecision?: (domain: string, allowed: boolean) => void;
  /** The node's directory of users and services, kept current by the writes made here. */
  directory?: Directory;
}

/** A user change as the API takes it: a UserPatch, and the caller's current password. */
export type UserUpdate = UserPatch & { currentPassword?: string | undefined };

/** A write that may have generated a secret: `secret` is present only then, and shown this once. */
export interface WithSecret<T> {
  record: T;
  secret?: string;
}

/**
 * The problem answering `err`, with the issues at `params` (fields the route takes from the
 * path, not the body) pointing at `/params/<name>`; other errors as they are.
 */
function pathParamsProblem(err: unknown, params: readonly string[]): unknown {
  if (!(err instanceof ValidationError)) return err;
  const problem = storageProblem(err) as ProblemError;
  return new ProblemError({
    status: problem.status,
    code: problem.code,
    title: problem.title,
    detail: problem.detail,
    errors: problem.errors?.map((e, i) => {
      const path = err.issues[i]?.path ?? '';
      return params.includes(path) ? { ...e, pointer: `/params/${path}` } : e;
    }),
    cause: err,
  });
}

/**
 * Management calls for domains, roles, groups, policies, users, services, OAuth clients, APIs,
 * registered resources, public keys, audit, export and import.
 */
export class ManagementService {
  readonly users: UserStore;
  readonly services: ServiceStore;
  readonly clients: ClientStore;
  readonly apis: ApiStore;
  readonly resources: ResourceStore;
  readonly keys: KeyService | undefined;
  readonly bundles: BundleService | undefined;
  /** The directory this service keeps current (absent: none is kept). */
  readonly directory: Directory | undefined;

  private readonly onDecision: ((domain: string, allowed: boolean) => void) | undefined;

  constructor(
    readonly store: Store,
    readonly catalog: CatalogHolder,
    readonly clock: () => Date = () => new Date(),
    parts: ManagementParts = {},
  ) {
    this.onDecision = parts.onDecision;
    this.users = parts.users ?? new UserStore(store);
    this.services = parts.services ?? new ServiceStore(store);
    this.clients = parts.clients ?? new ClientStore(store);
    this.apis = parts.apis ?? new ApiStore(store);
    this.resources = parts.resources ?? new ResourceStore(store);
    this.keys = parts.keys;
    this.bundles = parts.bundles;
    this.directory = parts.directory;
  }

  private require(caller: Caller, action: ManagementAction, domain: string, object: string): void {
    if (caller.principal === OPERATOR) return;
    const allowed = canManage(
      this.catalog.catalog,
      caller.principal,
      action,
      domain.toLowerCase(),
      object.toLowerCase(),
      this.clock(),
    );
    this.onDecision?.(domain.toLowerCase(), allowed);
    if (!allowed) {
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

  private shown<T>(w: DomainWrite<T> & { secret?: string }): WithSecret<T> {
    const record = this.applied(w);
    return w.secret === undefined ? { record } : { record, secret: w.secret };
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
    if (name.toLowerCase() === SUPER_ADMIN_DOMAIN && patch.enabled === false && caller.principal !== OPERATOR) {
      // Through the API this would lock every super admin out; only an operator may do it.
      throw new ProblemError({
        status: 409,
        code: 'domain.lockout',
        detail: `${SUPER_ADMIN_DOMAIN} cannot be disabled through the API`,
      });
    }
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
    // Its services were deleted with it.
    this.directory?.removeServicesOf(d);
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
    this.refuseLastSuperAdmin(caller, domain, name, (input.members ?? []).length);
    return this.applied(await this.store.replaceRole(domain, name, input, ifMatch, this.ctx(caller)));
  }

  /** Through the API, the super admins' role may not lose its last member (an operator may). */
  private refuseLastSuperAdmin(caller: Caller, domain: string, role: string, membersLeft: number): void {
    if (caller.principal === OPERATOR || membersLeft > 0) return;
    if (domain.toLowerCase() === SUPER_ADMIN_DOMAIN && role.toLowerCase() === 'admin') {
      throw new ProblemError({
        status: 409,
        code: 'role.last_super_admin',
        detail: 'the super admins’ role must keep at least one member',
      });
    }
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
    if (kind === 'role') {
      const left = (await this.store.getRole(domain, owner)).members.filter(
        (m) => m.name !== member.toLowerCase(),
      ).length;
      this.refuseLastSuperAdmin(caller, domain, owner, left);
    }
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

  // ---- users ---------------------------------------------------------------------------------

  /** True when the caller is the user `name` (already lower-cased) itself. */
  private isSelf(caller: Caller, name: string): boolean {
    return caller.principal === `${USER_DOMAIN}.${name}`;
  }

  /** True when the caller may update user `name` as an administrator (not merely as itself). */
  private mayAdministerUser(caller: Caller, name: string): boolean {
    return (
      caller.principal === OPERATOR ||
      canManage(this.catalog.catalog, caller.principal, 'update', USER_DOMAIN, `user.${name}`, this.clock())
    );
  }

  /** Lists users: for whoever may read `user:user` (admins of domain `user`, super admins). */
  async listUsers(caller: Caller, options: ListOptions): Promise<Page<UserRecord>> {
    this.require(caller, 'read', USER_DOMAIN, 'user');
    return this.users.listUsers(options);
  }

  /** Gets a user: the user itself, or whoever may read `user:user.<name>`. */
  async getUser(caller: Caller, name: string): Promise<UserRecord> {
    const n = name.toLowerCase();
    if (!this.isSelf(caller, n)) this.require(caller, 'read', USER_DOMAIN, `user.${n}`);
    return this.users.getUser(n);
  }

  /** Creates a user (its password is hashed; the record says only `hasPassword`). */
  async createUser(caller: Caller, input: UserInput): Promise<UserRecord> {
    this.require(caller, 'create', USER_DOMAIN, `user.${String(input.name).toLowerCase()}`);
    const record = await this.users.createUser(input, this.ctx(caller));
    this.userChanged(record);
    return record;
  }

  /**
   * Changes a user. Whoever may update `user:user.<name>` may change every field. A user
   * without that right may change only its own `displayName` and `password` (403
   * `user.self_update_forbidden` otherwise), and a password only with `currentPassword` (400
   * `user.current_password_required`). A `currentPassword` that is sent is always checked: a
   * wrong one is 403 `user.wrong_password` — the request is well formed, the caller failed to
   * prove the right to make it.
   */
  async updateUser(caller: Caller, name: string, update: UserUpdate, ifMatch: number | undefined): Promise<UserRecord> {
    const n = name.toLowerCase();
    const { currentPassword, ...patch } = update;
    if (!this.mayAdministerUser(caller, n)) {
      if (!this.isSelf(caller, n)) this.require(caller, 'update', USER_DOMAIN, `user.${n}`);
      const others = Object.keys(update).filter((k) => !SELF_SERVICE_USER_FIELDS.includes(k));
      if (others.length > 0) {
        throw forbidden(
          'user.self_update_forbidden',
          `you may change only your own displayName and password, not ${others.join(', ')}`,
        );
      }
      if (patch.password !== undefined && currentPassword === undefined) {
        throw badRequest('user.current_password_required', 'changing your own password needs currentPassword', [
          { pointer: '/body/currentPassword', code: 'field.required', message: 'is required to change your password' },
        ]);
      }
    }
    if (currentPassword !== undefined && !(await this.users.verifyPassword(n, currentPassword))) {
      throw forbidden('user.wrong_password', 'currentPassword is not the current password of the user');
    }
    const record = await this.users.updateUser(n, patch, ifMatch, this.ctx(caller));
    this.userChanged(record);
    return record;
  }

  /** Deletes a user (administrators only: a user cannot delete itself). */
  async deleteUser(caller: Caller, name: string, ifMatch: number | undefined): Promise<void> {
    const n = name.toLowerCase();
    this.require(caller, 'delete', USER_DOMAIN, `user.${n}`);
    await this.users.deleteUser(n, ifMatch, this.ctx(caller));
    this.directory?.removeUser(n);
    this.catalog.updatePrincipals([], [`${USER_DOMAIN}.${n}`]);
  }

  /**
   * Swaps a written user into the directory and the catalog — unless the directory already
   * holds a newer revision (another node's later write, applied by the change listener).
   */
  private userChanged(record: UserRecord): void {
    if (this.directory?.setUser(record) === false) return;
    this.catalog.updatePrincipals([principalOfUser(record)]);
  }

  // ---- services --------------------------------------------------------------------------------

  /** Lists a domain's services. */
  async listServices(caller: Caller, domain: string, options: ListOptions): Promise<Page<ServiceRecord>> {
    this.require(caller, 'read', domain, 'service');
    return this.services.listServices(domain, options);
  }

  /** Gets a service (never its secret). */
  async getService(caller: Caller, domain: string, name: string): Promise<ServiceRecord> {
    this.require(caller, 'read', domain, `service.${name}`);
    return this.services.getService(domain, name);
  }

  /** Creates a service; a generated secret is in the result this once. */
  async createService(caller: Caller, domain: string, input: ServiceInput): Promise<WithSecret<ServiceRecord>> {
    this.require(caller, 'create', domain, `service.${String(input.name)}`);
    const shown = this.shown(await this.services.createService(domain, input, this.ctx(caller)));
    this.directory?.addService(shown.record.principal);
    return shown;
  }

  /** Changes a service's description or public keys. */
  async updateService(
    caller: Caller,
    domain: string,
    name: string,
    patch: ServicePatch,
    ifMatch: number | undefined,
  ): Promise<ServiceRecord> {
    this.require(caller, 'update', domain, `service.${name}`);
    return this.applied(await this.services.updateService(domain, name, patch, ifMatch, this.ctx(caller)));
  }

  /** Replaces a service's secret (by `secret`, or a generated one returned this once). */
  async rotateServiceSecret(
    caller: Caller,
    domain: string,
    name: string,
    secret: string | undefined,
    ifMatch: number | undefined,
  ): Promise<WithSecret<ServiceRecord>> {
    this.require(caller, 'update', domain, `service.${name}`);
    return this.shown(await this.services.rotateServiceSecret(domain, name, ifMatch, this.ctx(caller), { secret }));
  }

  /** Deletes a service. */
  async deleteService(caller: Caller, domain: string, name: string, ifMatch: number | undefined): Promise<void> {
    this.require(caller, 'delete', domain, `service.${name}`);
    this.applied(await this.services.deleteService(domain, name, ifMatch, this.ctx(caller)));
    this.directory?.removeService(`${domain}.${name}`);
  }

  // ---- OAuth clients ---------------------------------------------------------------------------

  /** Lists a domain's OAuth clients. */
  async listClients(caller: Caller, domain: string, options: ListOptions): Promise<Page<ClientRecord>> {
    this.require(caller, 'read', domain, 'client');
    return this.clients.listClients(domain, options);
  }

  /** Gets a client (never its secret). */
  async getClient(caller: Caller, domain: string, clientId: string): Promise<ClientRecord> {
    this.require(caller, 'read', domain, `client.${clientId}`);
    return this.clients.getClient(domain, clientId);
  }

  /** Creates a client; a generated secret is in the result this once. */
  async createClient(caller: Caller, domain: string, input: ClientInput): Promise<WithSecret<ClientRecord>> {
    this.require(caller, 'create', domain, `client.${String(input.clientId)}`);
    return this.shown(await this.clients.createClient(domain, input, this.ctx(caller)));
  }

  /** Changes a client's name, URIs, grant types or first-party flag. */
  async updateClient(
    caller: Caller,
    domain: string,
    clientId: string,
    patch: ClientPatch,
    ifMatch: number | undefined,
  ): Promise<ClientRecord> {
    this.require(caller, 'update', domain, `client.${clientId}`);
    return this.applied(await this.clients.updateClient(domain, clientId, patch, ifMatch, this.ctx(caller)));
  }

  /** Replaces a confidential client's secret (by `secret`, or a generated one returned this once). */
  async rotateClientSecret(
    caller: Caller,
    domain: string,
    clientId: string,
    secret: string | undefined,
    ifMatch: number | undefined,
  ): Promise<WithSecret<ClientRecord>> {
    this.require(caller, 'update', domain, `client.${clientId}`);
    return this.shown(await this.clients.rotateClientSecret(domain, clientId, ifMatch, this.ctx(caller), { secret }));
  }

  /** Deletes a client. */
  async deleteClient(caller: Caller, domain: string, clientId: string, ifMatch: number | undefined): Promise<void> {
    this.require(caller, 'delete', domain, `client.${clientId}`);
    this.applied(await this.clients.deleteClient(domain, clientId, ifMatch, this.ctx(caller)));
  }

  // ---- APIs ------------------------------------------------------------------------------------

  /** Lists a domain's APIs. */
  async listApis(caller: Caller, domain: string, options: ListOptions): Promise<Page<ApiRecord>> {
    this.require(caller, 'read', domain, 'api');
    return this.apis.listApis(domain, options);
  }

  /** Gets an API. */
  async getApi(caller: Caller, domain: string, name: string): Promise<ApiRecord> {
    this.require(caller, 'read', domain, `api.${name}`);
    return this.apis.getApi(domain, name);
  }

  /** Creates an API. */
  async createApi(caller: Caller, domain: string, input: ApiInput): Promise<ApiRecord> {
    this.require(caller, 'create', domain, `api.${String(input.name)}`);
    return this.applied(await this.apis.createApi(domain, input, this.ctx(caller)));
  }

  /** Changes an API's audience, scopes or permissions claim. */
  async updateApi(
    caller: Caller,
    domain: string,
    name: string,
    patch: ApiPatch,
    ifMatch: number | undefined,
  ): Promise<ApiRecord> {
    this.require(caller, 'update', domain, `api.${name}`);
    return this.applied(await this.apis.updateApi(domain, name, patch, ifMatch, this.ctx(caller)));
  }

  /** Deletes an API. */
  async deleteApi(caller: Caller, domain: string, name: string, ifMatch: number | undefined): Promise<void> {
    this.require(caller, 'delete', domain, `api.${name}`);
    this.applied(await this.apis.deleteApi(domain, name, ifMatch, this.ctx(caller)));
  }

  // ---- registered resources --------------------------------------------------------------------

  /** Lists a domain's registered resources, optionally of one type. */
  async listResources(
    caller: Caller,
    domain: string,
    options: ListOptions & { type?: string | undefined },
  ): Promise<Page<ResourceRecord>> {
    this.require(caller, 'read', domain, 'resource');
    return this.resources.listResources(domain, options);
  }

  /** Gets a registered resource. */
  async getResource(caller: Caller, domain: string, type: string, id: string): Promise<ResourceRecord> {
    this.require(caller, 'read', domain, `resource.${type}/${id}`);
    return this.resources.getResource(domain, type, id);
  }

  /**
   * Creates or replaces a registered resource (`update` on `D:resource.TYPE/ID` either way, as
   * for policies), and swaps the recompiled domain in: conditions see the new properties at once.
   * `created` is true when it did not exist.
   */
  async putResource(
    caller: Caller,
    domain: string,
    type: string,
    id: string,
    properties: Record<string, unknown> | undefined,
    ifMatch: number | undefined,
  ): Promise<{ record: ResourceRecord; created: boolean }> {
    this.require(caller, 'update', domain, `resource.${type}/${id}`);
    const w = await this.resources
      .putResource(domain, { type, id, properties }, ifMatch, this.ctx(caller))
      .catch((err: unknown) => {
        throw pathParamsProblem(err, ['type', 'id']);
      });
    // A replace moves the resource past revision 1; only an insert leaves it there.
    return { record: this.applied(w), created: w.record.revision === 1 };
  }

  /** Deletes a registered resource. */
  async deleteResource(
    caller: Caller,
    domain: string,
    type: string,
    id: string,
    ifMatch: number | undefined,
  ): Promise<void> {
    this.require(caller, 'delete', domain, `resource.${type}/${id}`);
    this.applied(await this.resources.deleteResource(domain, type, id, ifMatch, this.ctx(caller)));
  }

  // ---- public keys -----------------------------------------------------------------------------

  /**
   * The public JWKS of `purpose` (api.md §4: bundles carry a `control` and a `token` signature).
   * Needs no caller: public keys are public. 503 `keys.unavailable` when built without keys.
   */
  async getPublicJwks(purpose: KeyPurpose): Promise<PublicJwks> {
    if (this.keys === undefined) {
      throw serviceUnavailable('keys.unavailable', 'this server was started without its signing keys');
    }
    return this.keys.publicJwks(purpose);
  }

  // ---- policy bundles --------------------------------------------------------------------------

  /**
   * The signed policy bundle of `domain` at the revision this node holds (docs/bundles.md), for
   * whoever may `bundle.read` on `D:bundle`. 404 when this node holds no such domain; 503
   * `bundles.unavailable` when built without a bundle service.
   */
  async getBundle(caller: Caller, domain: string): Promise<SignedBundle> {
    this.require(caller, 'bundle.read', domain, 'bundle');
    if (this.bundles === undefined) {
      throw serviceUnavailable('bundles.unavailable', 'this server was started without its bundle signer');
    }
    const bundle = await this.bundles.bundle(domain);
    if (bundle === undefined) throw notFound('domain.not_found', `domain "${domain.toLowerCase()}" does not exist`);
    return bundle;
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
    if (result.applied) {
      // An import may create and delete the domain's services (an update leaves them there).
      for (const c of result.plan.changes) {
        if (c.kind !== 'service') continue;
        if (c.action === 'create') this.directory?.addService(`${d}.${c.name}`);
        else if (c.action === 'delete') this.directory?.removeService(`${d}.${c.name}`);
      }
    }
    return result;
  }
}
