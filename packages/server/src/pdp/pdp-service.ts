/**
 * The decision service behind the AuthZEN API (api.md §2, authzen.md §2–3): one PDP per domain.
 * Maps AuthZEN subjects, resources and actions onto the engine's principals, `D:type/id`
 * resources and actions, decides on the node's in-memory catalog, and checks that the caller may
 * ask: about itself always, about anyone else with `access.check` on `D:access`.
 *
 * Nothing here queries the database on the way to a decision: subjects are found in the
 * node's in-memory directory. Only a request whose `context.min_revision` is newer than the
 * domain this node holds loads that domain first (`freshen`, read-your-writes across nodes).
 */

import {
  decide,
  hasGlobChars,
  listActions,
  splitResource,
  type Catalog,
  type CompiledDomain,
  type Decision,
  type DecisionRequest,
} from '@gatehouse/engine';
import type { AuthenticatedCaller } from '../http/authenticate-bearer.js';
import { badRequest, forbidden, notFound, ProblemError } from '../http/problem.js';
import type { Kysely } from 'kysely';
import type { CatalogHolder } from '../catalog/catalog-holder.js';
import type { Directory } from '../catalog/directory.js';
import { SUPER_ADMIN_DOMAIN } from '../management/authorize-management.js';
import type { Database } from '../storage/schema.js';
import {
  MAX_EVALUATIONS,
  parseEvaluation,
  parseEvaluationItem,
  type AccessDecision,
  type EvaluationRequest,
  type EvaluationsRequest,
  type EvaluationsSemantic,
  type Subject,
} from './evaluation-request.js';
import {
  parsePage,
  searchPage,
  type ActionSearchRequest,
  type PageResponse,
  type ResourceSearchRequest,
  type SubjectSearchRequest,
} from './search-request.js';

/**
 * The principal an AuthZEN subject the directory does not know is evaluated as (semantics.md,
 * authzen.md §9): no memberships, no stored properties. No principal can be named so (`~` is
 * outside every name and member pattern), and a member pattern can only match it through a
 * leading `*` or `?` — `*` (everyone) does; `user.*` and every other prefix pattern does not.
 */
export const UNKNOWN_SUBJECT_PRINCIPAL = '~unknown';

/** The action a caller needs on `D:access` to ask about subjects other than itself. */
export const ACCESS_CHECK_ACTION = 'access.check';

/** What `evaluations` answers: a batch, or a single decision when there were no items. */
export type EvaluationsResult = { evaluations: AccessDecision[] } | AccessDecision;

/** What a search answers (spec `#search-response`). */
export interface SearchResult<T> {
  page: PageResponse;
  context: { revision: number };
  results: T[];
}

/** What a PdpService reads: the catalog, the directory, the database (for `freshen` only), the clock. */
export interface PdpServiceParts {
  catalog: CatalogHolder;
  directory: Pick<Directory, 'findUser' | 'findService' | 'servicePrincipals'>;
  /** Read only to bring a domain up to a requested `min_revision`. */
  db: Kysely<Database>;
  clock?: () => Date;
  /** Told of the allows (true) or denies (false) answered, `count` at a time; errors are not decisions. */
  onDecision?: (domain: string, allowed: boolean, count: number) => void;
}

/** An evaluation's outcome before it becomes a response: a decision, or an engine error. */
type Outcome = { decision: AccessDecision } | { error: { status: number; message: string }; code: string };

/**
 * True when `principal` may ask the PDP of `domain` about others: `access.check` on `D:access`
 * decided in the domain (its admins have it through the built-in admin policy), or in
 * `sys.auth` on `sys.auth:domain/D` (super admins), as management calls are.
 */
export function canCheckAccess(catalog: Catalog, principal: string, domain: string, now: Date): boolean {
  const inDomain = decide(catalog, { principal, action: ACCESS_CHECK_ACTION, resource: `${domain}:access` }, { now });
  if (inDomain.decision === 'allow') return true;
  const resource = `${SUPER_ADMIN_DOMAIN}:domain/${domain}`;
  return decide(catalog, { principal, action: ACCESS_CHECK_ACTION, resource }, { now }).decision === 'allow';
}

/** A reason safe to show the subject: never a policy, role or condition name. */
function reasonUser(d: Decision): string {
  if (d.code === 'allow') return 'access is granted';
  if (d.code === 'deny') return 'access is denied by policy';
  return 'no policy grants this access';
}

/** Answers AuthZEN evaluation requests for the domains of a catalog. */
export class PdpService {
  readonly #catalog: CatalogHolder;
  readonly #db: Kysely<Database>;
  readonly #clock: () => Date;
  readonly #onDecision: PdpServiceParts['onDecision'];
  readonly #directory: PdpServiceParts['directory'];
  /** Sorted user names per version of the catalog's principals (subject search). */
  readonly #userIds = new WeakMap<Catalog['principals'], readonly string[]>();
  /** Sorted resource ids per compiled domain and type (resource search). */
  readonly #resourceIdsByDomain = new WeakMap<CompiledDomain, Map<string, readonly string[]>>();

  constructor(parts: PdpServiceParts) {
    this.#directory = parts.directory;
    this.#catalog = parts.catalog;
    this.#db = parts.db;
    this.#clock = parts.clock ?? (() => new Date());
    this.#onDecision = parts.onDecision;
  }

  /** The compiled domain `name` (any case) in the current catalog, enabled or not; undefined when none. */
  findDomain(name: string): CompiledDomain | undefined {
    return this.#catalog.catalog.domains.get(name.toLowerCase());
  }

  /**
   * Makes sure this node holds domain `name` at `minRevision` or newer when the database does
   * (`context.min_revision`, docs/scale-out.md): loads it now when the held one is older, or
   * missing (a domain created through another node a moment ago). Nothing happens without a
   * `minRevision` or when the held domain is new enough. Throws what the database throws.
   */
  async freshen(name: string, minRevision: number | undefined): Promise<void> {
    if (minRevision === undefined || minRevision < 1) return;
    if ((this.#catalog.revisionOf(name) ?? 0) >= minRevision) return;
    await this.#catalog.ensureRevision(this.#db, name, minRevision);
  }

  /**
   * The compiled domain whose PDP `name` is, in `catalog` (default: the current one). Throws a
   * 404 problem `domain.not_found` when there is no such domain (its PDP does not exist) and a
   * 403 problem `domain.disabled` when it is disabled (an error, never a deny).
   */
  getDomain(name: string, catalog: Catalog = this.#catalog.catalog): CompiledDomain {
    const d = catalog.domains.get(name.toLowerCase());
    if (d === undefined) throw notFound('domain.not_found', `there is no PDP for domain "${name}": it does not exist`);
    if (!d.enabled) throw forbidden('domain.disabled', `domain "${d.name}" is disabled: it answers no decisions`);
    return d;
  }

  /**
   * One decision (spec `#access-evaluation-api`). Throws ProblemErrors: those of getDomain, 403
   * `pdp.forbidden` when the caller asks about another subject without `access.check`, 400 for
   * an engine error (an action or resource it refuses).
   */
  async evaluate(caller: AuthenticatedCaller, domain: string, request: EvaluationRequest): Promise<AccessDecision> {
    const catalog = this.#catalog.catalog;
    const d = this.getDomain(domain, catalog);
    const now = this.#clock();
    const principal = this.#principalOf(request.subject);
    this.#authorize(catalog, caller, d, [principal], now);
    const outcome = this.#decide(catalog, d, principal, request, now);
    if ('error' in outcome) {
      throw new ProblemError({ status: outcome.error.status, code: outcome.code, detail: outcome.error.message });
    }
    this.#onDecision?.(d.name, outcome.decision.decision, 1);
    return outcome.decision;
  }

  /**
   * Many decisions (spec `#access-evaluations-api`): every item takes the top-level members it
   * lacks, whole; `execute_all` answers every item, `deny_on_first_deny` and
   * `permit_on_first_permit` stop after the deciding item. A bad item is answered in its place
   * as `false` with `context.error`. Without items the request is a single evaluation. Throws
   * what `evaluate` throws, and 413 `pdp.too_many_evaluations` beyond MAX_EVALUATIONS items.
   */
  async evaluations(
    caller: AuthenticatedCaller,
    domain: string,
    request: EvaluationsRequest,
  ): Promise<EvaluationsResult> {
    const items = request.evaluations ?? [];
    if (items.length === 0) {
      // authzen.md §3: no `evaluations` member, or an empty list, is the single evaluation
      // (c-3-4-2/3); the route schema has typed the members, this checks they are there.
      const single = parseEvaluation(request);
      if (typeof single === 'string') throw badRequest('request.invalid', single);
      return this.evaluate(caller, domain, single);
    }
    if (items.length > MAX_EVALUATIONS) {
      throw new ProblemError({
        status: 413,
        code: 'pdp.too_many_evaluations',
        title: 'Too many evaluations',
        detail: `a request may carry at most ${MAX_EVALUATIONS} evaluations, not ${items.length}`,
      });
    }
    const catalog = this.#catalog.catalog;
    const d = this.getDomain(domain, catalog);
    const now = this.#clock();
    const semantic: EvaluationsSemantic = request.options?.evaluations_semantic ?? 'execute_all';
    const parsed = items.map((item, i) => parseEvaluationItem(item, i, request));
    // Every subject is resolved and the caller authorized for all of them before anything is
    // decided: a request is allowed or refused as a whole.
    const principals = parsed.map((p) => (typeof p === 'string' ? undefined : this.#principalOf(p.subject)));
    this.#authorize(
      catalog,
      caller,
      d,
      principals.filter((p): p is string => p !== undefined),
      now,
    );
    const out: AccessDecision[] = [];
    let allowed = 0;
    let denied = 0;
    for (let i = 0; i < parsed.length; i++) {
      const p = parsed[i] as EvaluationRequest | string;
      const principal = principals[i];
      const outcome: Outcome =
        typeof p === 'string' || principal === undefined
          ? { error: { status: 400, message: p as string }, code: 'request.invalid' }
          : this.#decide(catalog, d, principal, p, now);
      let decision: AccessDecision;
      if ('error' in outcome) {
        decision = { decision: false, context: { revision: d.revision, error: outcome.error } };
      } else {
        decision = outcome.decision;
        if (decision.decision) allowed++;
        else denied++;
      }
      out.push(decision);
      // spec `#evaluations-semantics`: a failed item counts as a deny (fail closed).
      if (semantic === 'deny_on_first_deny' && !decision.decision) break;
      if (semantic === 'permit_on_first_permit' && decision.decision) break;
    }
    this.#onDecision?.(d.name, true, allowed);
    this.#onDecision?.(d.name, false, denied);
    return { evaluations: out };
  }

  /**
   * Subject search (spec `#subject-search-api`): the subjects of the requested type the
   * directory knows — users by name, services by principal — that may do the action on the
   * resource, sorted by id, one page at a time. Another type has no known subjects: no results.
   * Needs `access.check` (it is about others). Throws what `evaluate` throws and the 400
   * problems of parsePage.
   */
  async searchSubjects(
    caller: AuthenticatedCaller,
    domain: string,
    request: SubjectSearchRequest,
  ): Promise<SearchResult<{ type: string; id: string }>> {
    const catalog = this.#catalog.catalog;
    const d = this.getDomain(domain, catalog);
    const position = parsePage('subject', d.name, request);
    const now = this.#clock();
    this.#authorize(catalog, caller, d, [UNKNOWN_SUBJECT_PRINCIPAL], now);
    const type = request.subject.type.toLowerCase();
    const principalOf =
      type === 'user' ? (id: string) => `user.${id}` : type === 'service' ? (id: string) => id : undefined;
    const candidates = principalOf === undefined ? [] : this.#subjectIds(catalog, type);
    const resource = `${d.name}:${request.resource.type}/${request.resource.id}`;
    const base = {
      action: request.action.name,
      resource,
      context: request.context,
      subjectProperties: request.subject.properties,
      resourceProperties: request.resource.properties,
      actionProperties: request.action.properties,
      subjectType: type,
    };
    const { keys, page } = searchPage(
      candidates,
      (id) => this.#allows(catalog, { ...base, principal: (principalOf as (id: string) => string)(id) }, now),
      position,
    );
    return {
      page,
      context: { revision: d.revision },
      results: keys.map((id) => ({ type: request.subject.type, id })),
    };
  }

  /**
   * Resource search (spec `#resource-search-api`): the resources of the requested type the
   * domain knows — its registered resources and the ids its policies name literally — on which
   * the subject may do the action, sorted by id, one page at a time. Resources reached only
   * through a glob (`book/*`) are not enumerable and are not listed. Throws what `evaluate`
   * throws and the 400 problems of parsePage.
   */
  async searchResources(
    caller: AuthenticatedCaller,
    domain: string,
    request: ResourceSearchRequest,
  ): Promise<SearchResult<{ type: string; id: string }>> {
    const catalog = this.#catalog.catalog;
    const d = this.getDomain(domain, catalog);
    const position = parsePage('resource', d.name, request);
    const now = this.#clock();
    const principal = this.#principalOf(request.subject);
    this.#authorize(catalog, caller, d, [principal], now);
    const type = request.resource.type.toLowerCase();
    const base = {
      principal,
      action: request.action.name,
      context: request.context,
      subjectProperties: request.subject.properties,
      resourceProperties: request.resource.properties,
      actionProperties: request.action.properties,
      subjectType: request.subject.type.toLowerCase(),
    };
    const { keys, page } = searchPage(
      this.#resourceIds(d, type),
      (id) => this.#allows(catalog, { ...base, resource: `${d.name}:${type}/${id}` }, now),
      position,
    );
    return {
      page,
      context: { revision: d.revision },
      results: keys.map((id) => ({ type: request.resource.type, id })),
    };
  }

  /**
   * Action search (spec `#action-search-api`): the actions the domain's policies name that the
   * subject may do on the resource, sorted, one page at a time. Actions reached only through a
   * glob (`read*`) are not enumerable: only names written in policies are listed. Throws what
   * `evaluate` throws and the 400 problems of parsePage.
   */
  async searchActions(
    caller: AuthenticatedCaller,
    domain: string,
    request: ActionSearchRequest,
  ): Promise<SearchResult<{ name: string }>> {
    const catalog = this.#catalog.catalog;
    const d = this.getDomain(domain, catalog);
    const position = parsePage('action', d.name, request);
    const now = this.#clock();
    const principal = this.#principalOf(request.subject);
    this.#authorize(catalog, caller, d, [principal], now);
    const list = listActions(
      catalog,
      {
        principal,
        resource: `${d.name}:${request.resource.type}/${request.resource.id}`,
        context: request.context,
        subjectProperties: request.subject.properties,
        resourceProperties: request.resource.properties,
        subjectType: request.subject.type.toLowerCase(),
      },
      { now },
    );
    if ('error' in list) throw badRequest(list.error, list.message);
    const allowed = new Set(list.actions);
    const { keys, page } = searchPage(list.actions, (name) => allowed.has(name), position);
    return { page, context: { revision: d.revision }, results: keys.map((name) => ({ name })) };
  }

  /** True when the engine allows `request`; an engine error (a bad action or resource) is a 400 for the whole search. */
  #allows(catalog: Catalog, request: DecisionRequest, now: Date): boolean {
    const result = decide(catalog, request, { now });
    if (result.decision === 'error') {
      throw new ProblemError({
        status: result.status ?? 400,
        code: result.code,
        detail: result.message ?? result.code,
      });
    }
    return result.decision === 'allow';
  }

  /** The ids of the known subjects of `type` (`user` or `service`), sorted; memoised per directory version. */
  #subjectIds(catalog: Catalog, type: 'user' | 'service' | string): readonly string[] {
    if (type === 'service') return this.#directory.servicePrincipals();
    let ids = this.#userIds.get(catalog.principals);
    if (ids === undefined) {
      ids = [...catalog.principals.keys()]
        .filter((p) => p.startsWith('user.'))
        .map((p) => p.slice('user.'.length))
        .sort();
      this.#userIds.set(catalog.principals, ids);
    }
    return ids;
  }

  /** The ids of the resources of `type` that domain `d` knows, sorted; memoised per compiled domain. */
  #resourceIds(d: CompiledDomain, type: string): readonly string[] {
    let byType = this.#resourceIdsByDomain.get(d);
    if (byType === undefined) {
      byType = new Map();
      this.#resourceIdsByDomain.set(d, byType);
    }
    let ids = byType.get(type);
    if (ids === undefined) {
      const found = new Set<string>();
      for (const entity of d.resources.keys()) {
        if (entity.startsWith(`${type}/`)) found.add(entity.slice(type.length + 1));
      }
      for (const a of d.assertions) {
        const source = a.resource.source;
        if (hasGlobChars(source)) continue;
        const parts = splitResource(source);
        if (parts?.domain === d.name && parts.type === type && parts.id !== undefined && parts.id !== '') {
          found.add(parts.id);
        }
      }
      ids = [...found].sort();
      byType.set(type, ids);
    }
    return ids;
  }

  /** 403 unless every principal asked about is the caller, or the caller may check access. */
  #authorize(catalog: Catalog, caller: AuthenticatedCaller, d: CompiledDomain, principals: string[], now: Date): void {
    if (principals.every((p) => p === caller.principal)) return;
    if (canCheckAccess(catalog, caller.principal, d.name, now)) return;
    throw forbidden(
      'pdp.forbidden',
      `${caller.principal} may ask about itself only: asking about another subject needs ${ACCESS_CHECK_ACTION} on ${d.name}:access`,
    );
  }

  /**
   * The principal a subject stands for (api.md §2), from the in-memory directory: a `user` by
   * name, else external id, else email; a `service` by its principal name; anything else, and
   * any subject the directory does not know, UNKNOWN_SUBJECT_PRINCIPAL.
   */
  #principalOf(subject: Subject): string {
    const type = subject.type.toLowerCase();
    if (type === 'user') {
      const name = this.#directory.findUser(subject.id);
      return name === undefined ? UNKNOWN_SUBJECT_PRINCIPAL : `user.${name}`;
    }
    if (type === 'service') return this.#directory.findService(subject.id) ?? UNKNOWN_SUBJECT_PRINCIPAL;
    return UNKNOWN_SUBJECT_PRINCIPAL;
  }

  /** Decides one evaluation in domain `d` for `principal`. */
  #decide(catalog: Catalog, d: CompiledDomain, principal: string, request: EvaluationRequest, now: Date): Outcome {
    const explain = request.context?.explain === true;
    const result = decide(
      catalog,
      {
        principal,
        action: request.action.name,
        resource: `${d.name}:${request.resource.type}/${request.resource.id}`,
        context: request.context,
        subjectProperties: request.subject.properties,
        resourceProperties: request.resource.properties,
        actionProperties: request.action.properties,
        subjectType: request.subject.type.toLowerCase(),
      },
      { now, explain },
    );
    if (result.decision === 'error') {
      return { error: { status: result.status ?? 400, message: result.message ?? result.code }, code: result.code };
    }
    const decision: AccessDecision = {
      decision: result.decision === 'allow',
      context: { revision: result.revision ?? d.revision },
    };
    if (explain && result.explanation !== undefined) {
      decision.context.reason_admin = result.explanation;
      decision.context.reason_user = reasonUser(result);
    }
    return { decision };
  }
}
