/**
 * The config file (config-format.md): users and domains with everything inside them, in YAML
 * or JSON. `parseConfigFile` checks the shape (unknown fields are errors), turns it into models
 * and validates them with the engine; every error carries its file, line, column and path.
 */

import { validateDomains, type ValidateOptions } from './catalog.js';
import { MODEL_LIMITS, type ModelIssue } from './compile-domain.js';
import {
  withBuiltins,
  type AssertionModel,
  type DomainModel,
  type GroupModel,
  type MemberEntry,
  type PolicyModel,
  type PrincipalModel,
  type ResourceModel,
  type RoleModel,
} from './model.js';
import { ADMIN_POLICY, ADMIN_ROLE } from './names.js';
import { childPath, readSourceFile, type FileIssue, type SourceFile } from './source-file.js';

/** Limits on config file fields. */
export const CONFIG_LIMITS = { text: 4096, description: 1024, list: 100_000, secret: 1024, uris: 100 } as const;

/** A user of the config file (a principal `user.NAME`). */
export interface UserConfig {
  name: string;
  password?: string;
  passwordHash?: string;
  email?: string;
  displayName?: string;
  externalIds?: string[];
  attributes?: Record<string, unknown>;
}

/** A service (machine principal `DOMAIN.NAME`). */
export interface ServiceConfig {
  name: string;
  description?: string;
  secret?: string;
  publicKeys?: Record<string, unknown>[];
}

/** An API (resource server): an audience and its permission scopes `TYPE:ACTION`. */
export interface ApiConfig {
  name: string;
  audience: string;
  scopes: string[];
  /** Put the PBAC `permissions` claim in access tokens for this API. */
  permissionsClaim?: boolean;
}

/** An OAuth client acting for users. */
export interface ClientConfig {
  clientId: string;
  name?: string;
  type: 'public' | 'confidential';
  secret?: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  grantTypes: string[];
  firstParty: boolean;
}

/** A domain of the config file. */
export interface DomainConfig {
  name: string;
  description?: string;
  admins: MemberEntry[];
  attributes?: Record<string, unknown>;
  enabled: boolean;
  groups: GroupModel[];
  roles: RoleModel[];
  policies: PolicyModel[];
  resources: ResourceModel[];
  services: ServiceConfig[];
  apis: ApiConfig[];
  clients: ClientConfig[];
}

/** A whole config file. */
export interface ConfigFile {
  users: UserConfig[];
  domains: DomainConfig[];
}

/** The result of parsing a config file. */
export interface ParsedConfig {
  config: ConfigFile;
  /** The domains as engine models, with the built-in admin role and policy. */
  domains: DomainModel[];
  principals: PrincipalModel[];
  issues: FileIssue[];
}

type Obj = Record<string, unknown>;

class Checker {
  constructor(
    readonly src: SourceFile,
    readonly issues: FileIssue[],
  ) {}

  issue(path: string, code: string, message: string, atKey = false): void {
    const p = atKey ? this.src.keyPositionOf(path) : this.src.positionOf(path);
    this.issues.push({ file: this.src.file, line: p.line, column: p.column, path, code, message });
  }

  object(v: unknown, path: string, required: readonly string[], optional: readonly string[]): Obj | undefined {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      this.issue(path, 'config.type', `${path || 'the file'} must be a mapping`);
      return undefined;
    }
    const o = v as Obj;
    for (const k of Object.keys(o)) {
      if (!required.includes(k) && !optional.includes(k)) {
        this.issue(
          childPath(path, k),
          'config.unknown_field',
          `unknown field "${k}" (allowed: ${[...required, ...optional].join(', ')})`,
          true,
        );
      }
    }
    for (const k of required)
      if (o[k] === undefined || o[k] === null) this.issue(path, 'config.missing_field', `missing field "${k}"`);
    return o;
  }

  string(v: unknown, path: string, max: number = CONFIG_LIMITS.text): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' || typeof v === 'boolean') v = String(v);
    if (typeof v !== 'string') {
      this.issue(path, 'config.type', `${path} must be a string`);
      return undefined;
    }
    if (v.length > max) {
      this.issue(path, 'config.too_long', `${path} is ${v.length} characters; at most ${max} are allowed`);
      return undefined;
    }
    return v;
  }

  instant(v: unknown, path: string): string | undefined {
    if (v instanceof Date) return v.toISOString();
    return this.string(v, path, 64);
  }

  boolean(v: unknown, path: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') {
      this.issue(path, 'config.type', `${path} must be true or false`);
      return undefined;
    }
    return v;
  }

  list<T>(v: unknown, path: string, each: (item: unknown, path: string) => T | undefined): T[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.issue(path, 'config.type', `${path} must be a list`);
      return [];
    }
    if (v.length > CONFIG_LIMITS.list) {
      this.issue(path, 'config.too_long', `${path} has ${v.length} items; at most ${CONFIG_LIMITS.list} are allowed`);
      return [];
    }
    const out: T[] = [];
    v.forEach((item, i) => {
      const r = each(item, childPath(path, i));
      if (r !== undefined) out.push(r);
    });
    return out;
  }

  strings(v: unknown, path: string, max: number = CONFIG_LIMITS.text): string[] {
    return this.list(v, path, (item, p) => this.string(item, p, max));
  }

  record(v: unknown, path: string): Record<string, unknown> | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.issue(path, 'config.type', `${path} must be a mapping`);
      return undefined;
    }
    return v as Record<string, unknown>;
  }
}

function member(c: Checker, v: unknown, path: string): MemberEntry | undefined {
  if (typeof v === 'string') return { name: v };
  const o = c.object(v, path, ['name'], ['expires', 'disabled', 'state', 'includeSubgroups']);
  if (!o) return undefined;
  const name = c.string(o.name, childPath(path, 'name'));
  if (name === undefined) return undefined;
  const e: MemberEntry = { name };
  const expires = c.instant(o.expires, childPath(path, 'expires'));
  if (expires !== undefined) e.expires = expires;
  const disabled = c.boolean(o.disabled, childPath(path, 'disabled'));
  if (disabled !== undefined) e.disabled = disabled;
  const state = c.string(o.state, childPath(path, 'state'));
  if (state !== undefined) {
    if (state !== 'approved' && state !== 'pending')
      c.issue(childPath(path, 'state'), 'config.invalid', 'state must be approved or pending');
    else e.state = state;
  }
  const inc = c.boolean(o.includeSubgroups, childPath(path, 'includeSubgroups'));
  if (inc !== undefined) e.includeSubgroups = inc;
  return e;
}

function assertion(c: Checker, v: unknown, path: string): AssertionModel | undefined {
  const o = c.object(
    v,
    path,
    ['effect', 'action', 'resource'],
    ['role', 'group', 'principal', 'includeSubgroups', 'requires', 'condition'],
  );
  if (!o) return undefined;
  const effect = c.string(o.effect, childPath(path, 'effect'));
  if (effect !== undefined && effect !== 'allow' && effect !== 'deny') {
    c.issue(childPath(path, 'effect'), 'config.invalid', 'effect must be allow or deny');
  }
  const a: AssertionModel = {
    effect: effect === 'deny' ? 'deny' : 'allow',
    action: c.string(o.action, childPath(path, 'action')) ?? '',
    resource: c.string(o.resource, childPath(path, 'resource')) ?? '',
  };
  for (const k of ['role', 'group', 'principal'] as const) {
    const s = c.string(o[k], childPath(path, k));
    if (s !== undefined) a[k] = s;
  }
  const inc = c.boolean(o.includeSubgroups, childPath(path, 'includeSubgroups'));
  if (inc !== undefined) a.includeSubgroups = inc;
  if (o.requires !== undefined) a.requires = c.strings(o.requires, childPath(path, 'requires'));
  const cond = c.string(o.condition, childPath(path, 'condition'));
  if (cond !== undefined) a.condition = cond;
  return a;
}

function domain(c: Checker, v: unknown, path: string): DomainConfig | undefined {
  const o = c.object(
    v,
    path,
    ['name'],
    [
      'description',
      'admins',
      'attributes',
      'enabled',
      'groups',
      'roles',
      'policies',
      'resources',
      'services',
      'apis',
      'clients',
    ],
  );
  if (!o) return undefined;
  const d: DomainConfig = {
    name: c.string(o.name, childPath(path, 'name')) ?? '',
    admins: c.list(o.admins, childPath(path, 'admins'), (x, p) => member(c, x, p)),
    enabled: c.boolean(o.enabled, childPath(path, 'enabled')) ?? true,
    groups: c.list(o.groups, childPath(path, 'groups'), (x, p) => {
      const g = c.object(x, p, ['name'], ['description', 'parent', 'members']);
      if (!g) return undefined;
      const out: GroupModel = { name: c.string(g.name, childPath(p, 'name')) ?? '' };
      const desc = c.string(g.description, childPath(p, 'description'), CONFIG_LIMITS.description);
      if (desc !== undefined) out.description = desc;
      const parent = c.string(g.parent, childPath(p, 'parent'));
      if (parent !== undefined) out.parent = parent;
      out.members = c.list(g.members, childPath(p, 'members'), (m, mp) => member(c, m, mp));
      return out;
    }),
    roles: c.list(o.roles, childPath(path, 'roles'), (x, p) => {
      const r = c.object(x, p, ['name'], ['description', 'members', 'trust']);
      if (!r) return undefined;
      const out: RoleModel = { name: c.string(r.name, childPath(p, 'name')) ?? '' };
      if (out.name.toLowerCase() === ADMIN_ROLE) {
        c.issue(
          childPath(p, 'name'),
          'config.reserved',
          'the role "admin" is built in: list its members under the domain\'s admins',
        );
      }
      const desc = c.string(r.description, childPath(p, 'description'), CONFIG_LIMITS.description);
      if (desc !== undefined) out.description = desc;
      const trust = c.string(r.trust, childPath(p, 'trust'));
      if (trust !== undefined) out.trust = trust;
      out.members = c.list(r.members, childPath(p, 'members'), (m, mp) => member(c, m, mp));
      return out;
    }),
    policies: c.list(o.policies, childPath(path, 'policies'), (x, p) => {
      const pol = c.object(x, p, ['name'], ['description', 'version', 'active', 'assertions']);
      if (!pol) return undefined;
      const out: PolicyModel = { name: c.string(pol.name, childPath(p, 'name')) ?? '', assertions: [] };
      if (out.name.toLowerCase() === ADMIN_POLICY)
        c.issue(childPath(p, 'name'), 'config.reserved', 'the policy "admin" is built in');
      const desc = c.string(pol.description, childPath(p, 'description'), CONFIG_LIMITS.description);
      if (desc !== undefined) out.description = desc;
      const version = c.string(pol.version, childPath(p, 'version'), 64);
      if (version !== undefined) out.version = version;
      const active = c.boolean(pol.active, childPath(p, 'active'));
      if (active !== undefined) out.active = active;
      if (Array.isArray(pol.assertions) && pol.assertions.length > MODEL_LIMITS.assertionsPerPolicy) {
        c.issue(
          childPath(p, 'assertions'),
          'limit.assertions',
          `at most ${MODEL_LIMITS.assertionsPerPolicy} assertions per policy`,
        );
      } else out.assertions = c.list(pol.assertions, childPath(p, 'assertions'), (a, ap) => assertion(c, a, ap));
      return out;
    }),
    resources: c.list(o.resources, childPath(path, 'resources'), (x, p) => {
      const r = c.object(x, p, ['type', 'id'], ['properties']);
      if (!r) return undefined;
      const out: ResourceModel = {
        type: c.string(r.type, childPath(p, 'type')) ?? '',
        id: c.string(r.id, childPath(p, 'id')) ?? '',
      };
      const props = c.record(r.properties, childPath(p, 'properties'));
      if (props !== undefined) out.properties = props;
      return out;
    }),
    services: c.list(o.services, childPath(path, 'services'), (x, p) => {
      const s = c.object(x, p, ['name'], ['description', 'secret', 'publicKeys']);
      if (!s) return undefined;
      const out: ServiceConfig = { name: c.string(s.name, childPath(p, 'name')) ?? '' };
      const desc = c.string(s.description, childPath(p, 'description'), CONFIG_LIMITS.description);
      if (desc !== undefined) out.description = desc;
      const secret = c.string(s.secret, childPath(p, 'secret'), CONFIG_LIMITS.secret);
      if (secret !== undefined) out.secret = secret;
      if (s.publicKeys !== undefined)
        out.publicKeys = c.list(s.publicKeys, childPath(p, 'publicKeys'), (k, kp) => c.record(k, kp));
      return out;
    }),
    apis: c.list(o.apis, childPath(path, 'apis'), (x, p) => {
      const a = c.object(x, p, ['name', 'audience'], ['scopes', 'permissionsClaim']);
      if (!a) return undefined;
      const out: ApiConfig = {
        name: c.string(a.name, childPath(p, 'name')) ?? '',
        audience: c.string(a.audience, childPath(p, 'audience')) ?? '',
        scopes: c.strings(a.scopes, childPath(p, 'scopes'), 256),
      };
      const pc = c.boolean(a.permissionsClaim, childPath(p, 'permissionsClaim'));
      if (pc !== undefined) out.permissionsClaim = pc;
      return out;
    }),
    clients: c.list(o.clients, childPath(path, 'clients'), (x, p) => {
      const cl = c.object(
        x,
        p,
        ['clientId', 'type'],
        ['name', 'secret', 'redirectUris', 'postLogoutRedirectUris', 'grantTypes', 'firstParty'],
      );
      if (!cl) return undefined;
      const type = c.string(cl.type, childPath(p, 'type'));
      if (type !== undefined && type !== 'public' && type !== 'confidential') {
        c.issue(childPath(p, 'type'), 'config.invalid', 'type must be public or confidential');
      }
      const out: ClientConfig = {
        clientId: c.string(cl.clientId, childPath(p, 'clientId'), 256) ?? '',
        type: type === 'confidential' ? 'confidential' : 'public',
        redirectUris: c.strings(cl.redirectUris, childPath(p, 'redirectUris'), 2048),
        postLogoutRedirectUris: c.strings(cl.postLogoutRedirectUris, childPath(p, 'postLogoutRedirectUris'), 2048),
        grantTypes: c.strings(cl.grantTypes, childPath(p, 'grantTypes'), 64),
        firstParty: c.boolean(cl.firstParty, childPath(p, 'firstParty')) ?? false,
      };
      const name = c.string(cl.name, childPath(p, 'name'), 256);
      if (name !== undefined) out.name = name;
      const secret = c.string(cl.secret, childPath(p, 'secret'), CONFIG_LIMITS.secret);
      if (secret !== undefined) out.secret = secret;
      return out;
    }),
  };
  const desc = c.string(o.description, childPath(path, 'description'), CONFIG_LIMITS.description);
  if (desc !== undefined) d.description = desc;
  const attrs = c.record(o.attributes, childPath(path, 'attributes'));
  if (attrs !== undefined) d.attributes = attrs;
  return d;
}

function user(c: Checker, v: unknown, path: string): UserConfig | undefined {
  const o = c.object(
    v,
    path,
    ['name'],
    ['password', 'passwordHash', 'email', 'displayName', 'externalIds', 'attributes'],
  );
  if (!o) return undefined;
  const u: UserConfig = { name: c.string(o.name, childPath(path, 'name')) ?? '' };
  for (const k of ['password', 'passwordHash', 'email', 'displayName'] as const) {
    const s = c.string(o[k], childPath(path, k), k === 'displayName' ? 256 : CONFIG_LIMITS.secret);
    if (s !== undefined) u[k] = s;
  }
  if (o.externalIds !== undefined) u.externalIds = c.strings(o.externalIds, childPath(path, 'externalIds'), 256);
  const attrs = c.record(o.attributes, childPath(path, 'attributes'));
  if (attrs !== undefined) u.attributes = attrs;
  return u;
}

/** The engine model of one config domain (built-in admin role and policy added). */
export function domainConfigToModel(d: DomainConfig): DomainModel {
  const model: DomainModel = {
    name: d.name,
    enabled: d.enabled,
    roles: d.roles,
    groups: d.groups,
    policies: d.policies,
    resources: d.resources,
  };
  if (d.description !== undefined) model.description = d.description;
  if (d.attributes !== undefined) model.attributes = d.attributes;
  return withBuiltins(model, d.admins);
}

/** The principal model of a config user (`user.NAME`). */
export function userConfigToPrincipal(u: UserConfig): PrincipalModel {
  const p: PrincipalModel = { name: `user.${u.name.toLowerCase()}` };
  if (u.email !== undefined) p.email = u.email;
  if (u.displayName !== undefined) p.displayName = u.displayName;
  if (u.attributes !== undefined) p.attributes = u.attributes;
  return p;
}

/** Maps model issues (paths into the domain list) to file issues with line and column. */
export function modelIssuesToFileIssues(src: SourceFile, issues: readonly ModelIssue[]): FileIssue[] {
  return issues.map((is) => {
    // Issues on the built-in role and policy (appended after the file's own) point at the domain.
    const inText = is.position !== undefined && is.path.endsWith('.condition');
    const p = inText ? src.textPositionOf(is.path) : src.positionOf(is.path);
    let line = p.line;
    let column = p.column;
    if (inText && is.position) {
      // Point into the expression when it sits on one line after its key.
      if (is.position.line === 1) column += is.position.column - 1;
      else {
        line += is.position.line - 1;
        column = is.position.column;
      }
    }
    return { file: src.file, line, column, path: is.path, code: is.code, message: is.message };
  });
}

/**
 * Reads a config file's shape without validating the models against each other: unknown fields,
 * wrong types and reserved names are issues. Never throws.
 */
export function readConfigFile(file: string, text: string): ParsedConfig & { source: SourceFile } {
  const src = readSourceFile(file, text);
  const issues: FileIssue[] = [...src.issues];
  const empty = { config: { users: [], domains: [] }, domains: [], principals: [], issues, source: src };
  if (issues.length > 0 || src.value === null || src.value === undefined) return empty;
  const c = new Checker(src, issues);
  const root = c.object(src.value, '', [], ['users', 'domains']);
  if (!root) return empty;
  const config: ConfigFile = {
    users: c.list(root.users, 'users', (x, p) => user(c, x, p)),
    domains: c.list(root.domains, 'domains', (x, p) => domain(c, x, p)),
  };
  return {
    config,
    domains: config.domains.map(domainConfigToModel),
    principals: config.users.map(userConfigToPrincipal),
    issues,
    source: src,
  };
}

/**
 * Maps issues of validateDomains over the files' domains and principals, concatenated in order,
 * back to each file with line and column.
 */
export function mapModelIssues(
  files: readonly (ParsedConfig & { source: SourceFile })[],
  issues: readonly ModelIssue[],
): FileIssue[] {
  const out: FileIssue[] = [];
  for (const is of issues) {
    const m = /^(domains|principals)\[(\d+)\](.*)$/.exec(is.path);
    if (!m) continue;
    let index = Number(m[2]);
    const isDomain = m[1] === 'domains';
    for (const f of files) {
      const count = isDomain ? f.domains.length : f.principals.length;
      if (index >= count) {
        index -= count;
        continue;
      }
      let path = `${isDomain ? 'domains' : 'users'}[${index}]${m[3] ?? ''}`;
      // The admin role (appended after the file's own roles) takes its members from `admins`.
      const admin = /^domains\[(\d+)\]\.roles\[(\d+)\]\.members\[(\d+)\](.*)$/.exec(path);
      const dc = admin ? f.config.domains[Number(admin[1])] : undefined;
      if (admin && dc && Number(admin[2]) === dc.roles.length)
        path = `domains[${admin[1]}].admins[${admin[3]}]${admin[4]}`;
      out.push(...modelIssuesToFileIssues(f.source, [{ ...is, path }]));
      break;
    }
  }
  return out;
}

/**
 * Parses and validates a config file. Never throws: every problem is an issue with its
 * position. `options` names what exists outside the file (the store), for references.
 */
export function parseConfigFile(
  file: string,
  text: string,
  options: Omit<ValidateOptions, 'principals'> = {},
): ParsedConfig {
  const read = readConfigFile(file, text);
  if (read.issues.length === 0) {
    const modelIssues = validateDomains(read.domains, { ...options, principals: read.principals });
    read.issues.push(...mapModelIssues([read], modelIssues));
  }
  read.issues.sort((a, b) => a.line - b.line || a.column - b.column);
  return { config: read.config, domains: read.domains, principals: read.principals, issues: read.issues };
}

/** Formats file issues one per line: `file:line:column: path: message (code)`. */
export function formatFileIssues(issues: readonly FileIssue[]): string {
  return issues
    .map((i) => `${i.file}:${i.line}:${i.column}: ${i.path ? `${i.path}: ` : ''}${i.message} (${i.code})`)
    .join('\n');
}
