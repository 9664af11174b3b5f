/**
 * The decision (semantics.md "The decision"): deny overrides allow, no match is deny, errors
 * are answers of their own, and a condition that fails to evaluate never grants and never lifts
 * a deny. `decide` answers in central mode (memberships from the catalog); `evaluateAssertions`
 * is the core shared with token mode.
 */

import type { Catalog } from './catalog.js';
import type { CompiledAssertion, CompiledDomain, ResourceIndex } from './compile-domain.js';
import type { ConditionInput, ConditionResult } from './condition.js';
import { forEachBucket, resolveSubject, type PathStep, type SubjectView } from './membership.js';
import { splitResource, type ResourceParts } from './names.js';

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

type Visit = (a: CompiledAssertion, matchedAs: string, path: readonly PathStep[] | undefined) => boolean;

function scanResources(
  ri: ResourceIndex,
  action: string,
  resource: string,
  checkAction: boolean,
  matchedAs: string,
  path: readonly PathStep[] | undefined,
  visit: Visit,
): boolean {
  const len = resource.length;
  for (const l of ri.lengths) {
    if (l > len) break;
    const list = ri.byPrefix.get(l === len ? resource : resource.slice(0, l));
    if (list === undefined) continue;
    for (const a of list) {
      if (checkAction && !a.action.matches(action)) continue;
      const shape = a.resource.shape;
      if (shape !== 'prefix' && shape !== 'any' && !a.resource.matches(resource)) continue;
      if (visit(a, matchedAs, path)) return true;
    }
  }
  return false;
}

/**
 * Calls `visit` for every assertion of `effect` in `d` whose subject the view reaches and whose
 * action and resource globs match (requires and conditions are left to the caller). Stops when
 * `visit` returns true; returns whether it stopped.
 */
export function forEachCandidate(
  d: CompiledDomain,
  view: SubjectView,
  effect: 'allow' | 'deny',
  action: string,
  resource: string,
  visit: Visit,
): boolean {
  return forEachBucket(d, view, (bucket, matchedAs, _until, path) => {
    const ai = effect === 'deny' ? bucket.deny : bucket.allow;
    if (ai === undefined) return false;
    const exact = ai.exact.get(action);
    if (exact !== undefined && scanResources(exact, action, resource, false, matchedAs, path, visit)) return true;
    return ai.glob !== undefined && scanResources(ai.glob, action, resource, true, matchedAs, path, visit);
  });
}

function holdsAll(view: SubjectView, roles: readonly string[]): boolean {
  for (const r of roles) if (!view.roles.has(r)) return false;
  return true;
}

/**
 * Decides over domain `d`'s active assertions for a subject view: deny overrides allow, nothing
 * matching is `no_match`. `input` builds the condition input (called at most once, lazily).
 * With `explain`, collects every deciding assertion and every condition evaluated.
 */
export function evaluateAssertions(
  d: CompiledDomain,
  view: SubjectView,
  action: string,
  resource: string,
  input: () => ConditionInput,
  explain: boolean,
): Evaluation {
  let cached: ConditionInput | undefined;
  let results: Map<CompiledAssertion, ConditionResult> | undefined;
  const conditions: ConditionTrace[] = [];
  const deciding: MatchTrace[] = [];
  const seen = explain ? new Set<CompiledAssertion>() : undefined;
  const evalCondition = (a: CompiledAssertion): ConditionResult => {
    results ??= new Map();
    const known = results.get(a);
    if (known !== undefined) return known;
    cached ??= input();
    const r = (a.condition as NonNullable<CompiledAssertion['condition']>).evaluate(cached);
    results.set(a, r);
    if (explain) {
      const isError = typeof r !== 'boolean';
      const matched = isError ? a.effect === 'deny' : r;
      const trace: ConditionTrace = {
        assertion: assertionRef(a),
        result: isError ? 'error' : r,
        effect: matched ? 'matched' : 'not_matched',
      };
      if (isError) trace.error = r.error;
      conditions.push(trace);
    }
    return r;
  };
  const record = (a: CompiledAssertion, matchedAs: string, path: readonly PathStep[] | undefined): void => {
    if (seen!.has(a)) return;
    seen!.add(a);
    deciding.push({ assertion: assertionRef(a), matchedAs, path: path ?? [] });
  };
  // Rule 4: any matching deny wins. Rule 5: a deny whose condition errs matches.
  const denied = forEachCandidate(d, view, 'deny', action, resource, (a, matchedAs, path) => {
    if (a.requires.length > 0 && !holdsAll(view, a.requires)) return false;
    if (a.condition !== undefined && evalCondition(a) === false) return false;
    if (!explain) return true;
    record(a, matchedAs, path);
    return false;
  });
  if (denied || deciding.length > 0) return { effect: 'deny', deciding, conditions };
  // Rule 5: an allow whose condition errs does not match.
  const allowed = forEachCandidate(d, view, 'allow', action, resource, (a, matchedAs, path) => {
    if (a.requires.length > 0 && !holdsAll(view, a.requires)) return false;
    if (a.condition !== undefined && evalCondition(a) !== true) return false;
    if (!explain) return true;
    record(a, matchedAs, path);
    return false;
  });
  if (allowed || deciding.length > 0) return { effect: 'allow', deciding, conditions };
  return { effect: 'no_match', deciding, conditions };
}

/** Builds the condition input of a request (semantics.md "Conditions"). */
export function conditionInput(
  parts: ResourceParts,
  resource: string,
  principal: string,
  storedSubject: Readonly<Record<string, unknown>> | undefined,
  storedResource: Readonly<Record<string, unknown>> | undefined,
  request: Pick<DecisionRequest, 'context' | 'subjectProperties' | 'resourceProperties' | 'actionProperties'>,
  action: string,
  nowMs: number,
): ConditionInput {
  // Stored subject properties win over the request's; the request's resource properties win
  // over the stored ones (the enforcing service knows the resource it guards).
  const subjectProps = { ...(request.subjectProperties ?? {}), ...(storedSubject ?? {}) };
  const resourceProps = { ...(storedResource ?? {}), ...(request.resourceProperties ?? {}) };
  return {
    subject: {
      type: principal.startsWith('user.') ? 'user' : 'service',
      id: principal,
      principal,
      properties: subjectProps,
    },
    resource: { type: parts.type, id: parts.id, name: resource, domain: parts.domain, properties: resourceProps },
    action: { name: action, properties: request.actionProperties ?? {} },
    context: request.context ?? {},
    nowMs,
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
  const parts = splitResource(resource);
  if (parts === undefined) {
    return errorDecision(
      'resource.invalid',
      `resource "${request.resource}" is not <domain>:<entity>`,
      request,
      explain,
    );
  }
  const d = catalog.domains.get(parts.domain);
  if (d === undefined) {
    return errorDecision('domain.not_found', `domain "${parts.domain}" does not exist`, request, explain, parts.domain);
  }
  if (!d.enabled)
    return errorDecision('domain.disabled', `domain "${parts.domain}" is disabled`, request, explain, parts.domain);
  const nowMs = toMs(options.now);
  const principal = request.principal.toLowerCase();
  const view = resolveSubject(catalog, d, principal, nowMs, explain);
  const e = evaluateAssertions(
    d,
    view,
    action,
    resource,
    () =>
      conditionInput(
        parts,
        resource,
        principal,
        catalog.principals.get(principal),
        d.resources.get(parts.entity),
        request,
        action,
        nowMs,
      ),
    explain,
  );
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
