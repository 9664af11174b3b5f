/**
 * The decision (semantics.md "The decision"): deny overrides allow, no match is deny, errors
 * are answers of their own, and a condition that fails to evaluate never grants and never lifts
 * a deny. `decide` answers in central mode (memberships from the catalog); `evaluateAssertions`
 * is the core shared with token mode.
 */

import type { Catalog } from './catalog.js';
import {
  PREFIX_HASH_SEED,
  type CompiledAssertion,
  type CompiledDomain,
  type PrefixIndex,
  type SubjectBucket,
} from './compile-domain.js';
import { plainMap, type ConditionInput, type ConditionResult } from './condition.js';
import { resolveSubject, type Held, type PathStep, type SubjectView } from './membership.js';
import { roleFullName, splitResource, type ResourceParts } from './names.js';

/** A decision request in central mode. Names are case-insensitive. */
export interface DecisionRequest {
  principal: string;
  action: string;
  /** `<domain>:<entity>`, by convention `<domain>:<type>/<id>`. */
  resource: string;
  context?: Record<string, unknown> | undefined;
  /** Added to the principal's stored properties; never overrides a stored key. */
  subjectProperties?: Record<string, unknown> | undefined;
  /** Overrides the registered resource's stored properties key by key. */
  resourceProperties?: Record<string, unknown> | undefined;
  actionProperties?: Record<string, unknown> | undefined;
  /**
   * The subject's type as conditions see it (`subject.type`). Default: `user` for `user.*`
   * principals, `service` for the others. A PDP that evaluates a subject the directory does not
   * know passes the type the request named, so `subject.type == "user"` still holds for it.
   */
  subjectType?: string | undefined;
}

/** Options of a decision: the instant (time is always passed in) and whether to explain. */
export interface DecideOptions {
  now: Date | number;
  explain?: boolean | undefined;
}

/** Why: `allow`, `deny` (a deny assertion matched), `no_match`, or an error code. */
export type DecisionCode =
  'allow' | 'deny' | 'no_match' | 'action.invalid' | 'resource.invalid' | 'domain.not_found' | 'domain.disabled';

/** A decision and its reason. */
export interface Decision {
  decision: 'allow' | 'deny' | 'error';
  code: DecisionCode;
  /** For errors: a message for people; `status` is the HTTP status the code maps to. */
  message?: string;
  status?: number;
  domain?: string;
  revision?: number;
  explanation?: Explanation;
}

/** An assertion, as an explanation names it. */
export interface AssertionRef {
  domain: string;
  policy: string;
  version?: string;
  index: number;
  effect: 'allow' | 'deny';
  action: string;
  resource: string;
  subject: string;
  condition?: string;
}

/** A condition evaluated while deciding. */
export interface ConditionTrace {
  assertion: AssertionRef;
  result: boolean | 'error';
  error?: string;
  /** What the result did: an error makes an allow not match and a deny match. */
  effect: 'matched' | 'not_matched';
}

/** A deciding assertion and how the subject matched it. */
export interface MatchTrace {
  assertion: AssertionRef;
  /** The role, group or principal pattern through which the subject matched. */
  matchedAs: string;
  path: readonly PathStep[];
}

/** The explanation of a decision. */
export interface Explanation {
  decision: 'allow' | 'deny' | 'error';
  code: DecisionCode;
  principal: string;
  action: string;
  resource: string;
  domain?: string;
  revision?: number;
  /** The matching deny assertions for a deny, the matching allow assertions for an allow. */
  deciding: MatchTrace[];
  conditions: ConditionTrace[];
  summary: string;
}

/** The outcome of evaluating a domain's assertions for one subject. */
export interface Evaluation {
  effect: 'allow' | 'deny' | 'no_match';
  deciding: MatchTrace[];
  conditions: ConditionTrace[];
}

/** Converts `now` (Date or epoch ms) to epoch ms. */
export function toMs(now: Date | number): number {
  return typeof now === 'number' ? now : now.getTime();
}

/** The reference to an assertion that explanations carry. */
export function assertionRef(a: CompiledAssertion): AssertionRef {
  const ref: AssertionRef = {
    domain: a.domain,
    policy: a.policy,
    index: a.index,
    effect: a.effect,
    action: a.action.source,
    resource: a.resource.source,
    subject: `${a.subjectKind}:${a.subject}${a.includeSubgroups ? ' (with subgroups)' : ''}`,
  };
  if (a.version !== undefined) ref.version = a.version;
  if (a.condition) ref.condition = a.condition.source;
  return ref;
}

/** What conditions need beyond the domain, the action and the resource. */
export interface ConditionSource {
  readonly principal: string;
  /** The principal's stored properties (central mode); undefined in token mode. */
  readonly storedSubject: Readonly<Record<string, unknown>> | undefined;
  readonly request: Pick<
    DecisionRequest,
    'context' | 'subjectProperties' | 'resourceProperties' | 'actionProperties' | 'subjectType'
  >;
  readonly nowMs: number;
}

type Path = readonly PathStep[] | undefined;

/**
 * One evaluation of a domain's assertions for one subject: a single pass over the subject
 * buckets the view reaches. A matching deny ends it (unless explaining); unconditional allows
 * are noted; conditional allows are evaluated only when nothing else decided.
 */
class Scan {
  denied = false;
  allowed = false;
  pending: CompiledAssertion[] | undefined;
  pendingMatch: [string, Path][] | undefined;
  input: ConditionInput | undefined;
  results: Map<CompiledAssertion, ConditionResult> | undefined;
  conditions: ConditionTrace[] | undefined;
  denies: MatchTrace[] | undefined;
  allows: MatchTrace[] | undefined;
  readonly seen: Set<CompiledAssertion> | undefined;
  /** The ids of the domain's resource prefixes the resource starts with. */
  readonly ids: number[] = [];

  constructor(
    readonly d: CompiledDomain,
    readonly view: SubjectView,
    readonly action: string,
    readonly resource: string,
    readonly source: ConditionSource,
    readonly explain: boolean,
  ) {
    if (explain) {
      this.seen = new Set();
      this.conditions = [];
      this.denies = [];
      this.allows = [];
    }
  }

  run(): Evaluation {
    this.scan();
    return this.result();
  }

  /** The pass over the buckets; afterwards `effect()` tells the answer. */
  scan(): void {
    const { d, view, resource, ids } = this;
    // Find the domain's resource prefixes this resource starts with: one pass over its
    // characters with a running hash, probing at each prefix length, no slicing.
    const len = resource.length;
    const lengths = d.prefixLengths;
    let next = 0;
    let h = PREFIX_HASH_SEED;
    for (let i = 0; next < lengths.length; i++) {
      const l = lengths[next] as number;
      if (l > len) break;
      if (l === i) {
        next++;
        const found = d.prefixesByHash.get(h & 0x3fffffff);
        if (found !== undefined) {
          for (const [prefix, id] of found) if (resource.startsWith(prefix)) ids.push(id);
        }
      }
      if (i < len) h = Math.imul(h ^ resource.charCodeAt(i), 16777619);
      else if (l !== i) break;
    }
    if (ids.length === 0) return;
    const roleKeys = view.roleKeys;
    for (let i = 0; i < roleKeys.length; i++) {
      const role = roleKeys[i] as string;
      const b = d.byRole.get(role);
      if (b === undefined) continue;
      const path = this.explain ? (view.roles.get(role) as Held).path : undefined;
      if (this.bucket(b, this.explain ? roleFullName(d.name, role) : '', path)) return;
    }
    const p = d.byPrincipal.get(view.principal);
    if (p !== undefined && this.bucket(p, view.principal, undefined)) return;
    if (view.principal !== '') {
      for (const pp of d.principalPatterns) {
        if (pp.glob.matches(view.principal) && this.bucket(pp.bucket, pp.glob.source, undefined)) return;
      }
    }
    if (d.byGroup.size > 0) {
      for (const full of view.groupKeys) {
        const b = d.byGroup.get(full);
        if (b !== undefined && this.bucket(b, full, (view.groups.get(full) as Held).path)) return;
      }
    }
    if (d.byGroupTree.size > 0) {
      for (const full of view.groupTreeKeys) {
        const b = d.byGroupTree.get(full);
        if (b !== undefined && this.bucket(b, full, (view.groupTree.get(full) as Held).path)) return;
      }
    }
    return;
  }

  /** Scans one bucket; returns true when the answer is known (a deny, when not explaining). */
  bucket(b: SubjectBucket, matchedAs: string, path: Path): boolean {
    const exact = b.exact.get(this.action);
    if (exact !== undefined && this.prefixes(exact, false, matchedAs, path)) return true;
    return b.glob !== undefined && this.prefixes(b.glob, true, matchedAs, path);
  }

  prefixes(index: PrefixIndex, checkAction: boolean, matchedAs: string, path: Path): boolean {
    const { ids, resource } = this;
    for (let i = 0; i < ids.length; i++) {
      const list = index.get(ids[i] as number);
      if (list === undefined) continue;
      for (const a of list) {
        if (a.effect === 'allow' && this.allowed && !this.explain) break; // denies come first
        if (checkAction && !a.action.matches(this.action)) continue;
        const shape = a.resource.shape;
        if (shape !== 'prefix' && shape !== 'any' && !a.resource.matches(resource)) continue;
        if (a.requires.length > 0 && !this.holdsAll(a.requires)) continue;
        this.candidate(a, matchedAs, path);
        if (this.denied && !this.explain) return true;
      }
    }
    return false;
  }

  holdsAll(roles: readonly string[]): boolean {
    for (const r of roles) if (!this.view.roles.has(r)) return false;
    return true;
  }

  candidate(a: CompiledAssertion, matchedAs: string, path: Path): void {
    if (a.effect === 'deny') {
      // Rule 5: a deny whose condition errs matches.
      if (a.condition !== undefined && this.condition(a) === false) return;
      this.denied = true;
      if (this.explain) this.record(this.denies as MatchTrace[], a, matchedAs, path);
      return;
    }
    if (a.condition === undefined) {
      this.allowed = true;
      if (this.explain) this.record(this.allows as MatchTrace[], a, matchedAs, path);
      return;
    }
    // Conditional allows wait: most decisions never need to evaluate them.
    (this.pending ??= []).push(a);
    if (this.explain) (this.pendingMatch ??= []).push([matchedAs, path]);
  }

  record(into: MatchTrace[], a: CompiledAssertion, matchedAs: string, path: Path): void {
    const seen = this.seen as Set<CompiledAssertion>;
    if (seen.has(a)) return;
    seen.add(a);
    into.push({ assertion: assertionRef(a), matchedAs, path: path ?? [] });
  }

  condition(a: CompiledAssertion): ConditionResult {
    this.results ??= new Map();
    const known = this.results.get(a);
    if (known !== undefined) return known;
    this.input ??= conditionInput(this.d, this.resource, this.action, this.source);
    const r = (a.condition as NonNullable<CompiledAssertion['condition']>).evaluate(this.input);
    this.results.set(a, r);
    if (this.explain) {
      const isError = typeof r !== 'boolean';
      const matched = isError ? a.effect === 'deny' : r;
      const trace: ConditionTrace = {
        assertion: assertionRef(a),
        result: isError ? 'error' : r,
        effect: matched ? 'matched' : 'not_matched',
      };
      if (isError) trace.error = r.error;
      (this.conditions as ConditionTrace[]).push(trace);
    }
    return r;
  }

  result(): Evaluation {
    const effect = this.effect();
    const none: never[] = [];
    return {
      effect,
      deciding: effect === 'deny' ? (this.denies ?? none) : effect === 'allow' ? (this.allows ?? none) : none,
      conditions: this.conditions ?? none,
    };
  }

  effect(): 'allow' | 'deny' | 'no_match' {
    // Rule 4: any matching deny wins.
    if (this.denied) return 'deny';
    const pending = this.pending;
    if (pending !== undefined && (!this.allowed || this.explain)) {
      for (let i = 0; i < pending.length; i++) {
        const a = pending[i] as CompiledAssertion;
        // Rule 5: an allow whose condition errs does not match.
        if (this.condition(a) !== true) continue;
        this.allowed = true;
        if (!this.explain) break;
        const [matchedAs, path] = (this.pendingMatch as [string, Path][])[i] as [string, Path];
        this.record(this.allows as MatchTrace[], a, matchedAs, path);
      }
    }
    return this.allowed ? 'allow' : 'no_match';
  }
}

/**
 * Decides over domain `d`'s active assertions for a subject view: deny overrides allow, nothing
 * matching is `no_match`, a condition that errs never grants and never lifts a deny. With
 * `explain`, collects every deciding assertion and every condition evaluated.
 */
export function evaluateAssertions(
  d: CompiledDomain,
  view: SubjectView,
  action: string,
  resource: string,
  source: ConditionSource,
  explain: boolean,
): Evaluation {
  return new Scan(d, view, action, resource, source, explain).run();
}

/** Builds the condition input of a request (semantics.md "Conditions"). */
export function conditionInput(
  d: CompiledDomain,
  resource: string,
  action: string,
  source: ConditionSource,
): ConditionInput {
  const parts = splitResource(resource) as ResourceParts;
  const { request, principal } = source;
  // Stored subject properties win over the request's; the request's resource properties win
  // over the stored ones (the enforcing service knows the resource it guards).
  const subjectProps = { ...plainMap(request.subjectProperties), ...(source.storedSubject ?? {}) };
  const resourceProps = { ...(d.resources.get(parts.entity) ?? {}), ...plainMap(request.resourceProperties) };
  return {
    subject: {
      type: request.subjectType ?? (principal.startsWith('user.') ? 'user' : 'service'),
      id: principal,
      principal,
      properties: subjectProps,
    },
    resource: { type: parts.type, id: parts.id, name: resource, domain: parts.domain, properties: resourceProps },
    action: { name: action, properties: plainMap(request.actionProperties) ?? {} },
    context: plainMap(request.context) ?? {},
    nowMs: source.nowMs,
  };
}

const ERROR_STATUS: Partial<Record<DecisionCode, number>> = {
  'action.invalid': 400,
  'resource.invalid': 400,
  'domain.not_found': 404,
  'domain.disabled': 403,
};

function errorDecision(
  code: DecisionCode,
  message: string,
  request: DecisionRequest,
  explain: boolean,
  domain?: string,
): Decision {
  const d: Decision = { decision: 'error', code, message, status: ERROR_STATUS[code] ?? 400 };
  if (domain !== undefined) d.domain = domain;
  if (explain) {
    d.explanation = {
      decision: 'error',
      code,
      principal: request.principal.toLowerCase(),
      action: request.action.toLowerCase(),
      resource: request.resource.toLowerCase(),
      deciding: [],
      conditions: [],
      summary: message,
      ...(domain !== undefined ? { domain } : {}),
    };
  }
  return d;
}

/** Describes an evaluation in one sentence. */
export function summarize(e: Evaluation, principal: string, action: string, resource: string): string {
  const first = e.deciding[0];
  const how = (m: MatchTrace): string => {
    const a = m.assertion;
    return `${a.domain}:policy.${a.policy}${a.version ? `@${a.version}` : ''} #${a.index} (${a.effect} ${a.action} on ${a.resource} to ${a.subject}) via ${m.matchedAs}`;
  };
  if (e.effect === 'no_match') return `denied: no assertion allows ${principal} to ${action} ${resource}`;
  const verb = e.effect === 'allow' ? 'allowed' : 'denied';
  if (!first) return verb;
  const more = e.deciding.length > 1 ? ` and ${e.deciding.length - 1} more` : '';
  return `${verb} by ${how(first)}${more}`;
}

/**
 * Decides whether `principal` may do `action` on `resource` at `now` (central mode). Never
 * throws for bad input: errors are decisions with `decision: 'error'` and a code.
 */
export function decide(catalog: Catalog, request: DecisionRequest, options: DecideOptions): Decision {
  const explain = options.explain === true;
  const action = request.action.toLowerCase();
  if (action.length === 0) return errorDecision('action.invalid', 'action is empty', request, explain);
  const resource = request.resource.toLowerCase();
  const colon = resource.indexOf(':');
  // semantics.md "The decision" 1: no `:` or nothing after it is invalid; an empty domain
  // before it is a domain that does not exist.
  if (colon < 0 || colon === resource.length - 1) {
    return errorDecision(
      'resource.invalid',
      `resource "${request.resource}" is not <domain>:<entity>`,
      request,
      explain,
    );
  }
  const domain = resource.slice(0, colon);
  const d = catalog.domains.get(domain);
  if (d === undefined) {
    return errorDecision('domain.not_found', `domain "${domain}" does not exist`, request, explain, domain);
  }
  if (!d.enabled) return errorDecision('domain.disabled', `domain "${domain}" is disabled`, request, explain, domain);
  const nowMs = toMs(options.now);
  const principal = request.principal.toLowerCase();
  const view = resolveSubject(catalog, d, principal, nowMs, explain);
  const source: ConditionSource = { principal, storedSubject: catalog.principals.get(principal), request, nowMs };
  if (!explain) {
    const scan = new Scan(d, view, action, resource, source, false);
    scan.scan();
    const effect = scan.effect();
    return { decision: effect === 'allow' ? 'allow' : 'deny', code: effect, domain: d.name, revision: d.revision };
  }
  const e = evaluateAssertions(d, view, action, resource, source, explain);
  const result: Decision = {
    decision: e.effect === 'allow' ? 'allow' : 'deny',
    code: e.effect,
    domain: d.name,
    revision: d.revision,
  };
  if (explain) {
    result.explanation = {
      decision: result.decision,
      code: e.effect,
      principal,
      action,
      resource,
      domain: d.name,
      revision: d.revision,
      deciding: e.deciding,
      conditions: e.conditions,
      summary: summarize(e, principal, action, resource),
    };
  }
  return result;
}

/** The same as decide with `explain: true`; the explanation is always present. */
export function explain(
  catalog: Catalog,
  request: DecisionRequest,
  options: Omit<DecideOptions, 'explain'>,
): Decision & { explanation: Explanation } {
  return decide(catalog, request, { ...options, explain: true }) as Decision & { explanation: Explanation };
}
