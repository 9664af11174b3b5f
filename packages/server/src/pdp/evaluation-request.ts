/**
 * The AuthZEN 1.0 request and response shapes (authzen.md §1–3) as TypeBox schemas, and the
 * checks of one evaluation of a batch. Unknown members are ignored everywhere (spec
 * `#transport-https-json-serialization`), so no schema here is `additionalProperties: false`.
 * Whole requests are checked by the route schemas (400 problem); a batch's items are checked
 * here, one at a time, because a problem with one item is answered in that item (spec
 * `#access-evaluations-response`).
 */

import { NAME_LIMITS } from '@gatehouse/engine';
import { Type, type Static } from 'typebox';

/** Longest entity type, and longest entity id, accepted. */
export const ENTITY_LIMITS = { type: 128, id: 1024, action: NAME_LIMITS.action } as const;

/** Most evaluations one `evaluations` request may carry; more is answered 413. */
export const MAX_EVALUATIONS = 1000;

/** The values of `options.evaluations_semantic` (spec `#evaluations-semantics`). */
export const EVALUATIONS_SEMANTICS = ['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'] as const;

/** How a batch is evaluated: every item, or up to the first deny, or up to the first permit. */
export type EvaluationsSemantic = (typeof EVALUATIONS_SEMANTICS)[number];

const Properties = Type.Record(Type.String(), Type.Unknown(), { description: 'any JSON members' });

const typedEntity = (what: string) =>
  Type.Object(
    {
      type: Type.String({ minLength: 1, maxLength: ENTITY_LIMITS.type, description: `the ${what}'s type` }),
      id: Type.String({ minLength: 1, maxLength: ENTITY_LIMITS.id, description: `unique within the type` }),
      properties: Type.Optional(Properties),
    },
    { description: `the ${what}` },
  );

/** `{type, id, properties?}`: `user` (by name, external id or email) or `service` (its principal). */
export const SubjectSchema = typedEntity('subject');
/** `{type, id, properties?}`: resource `D:type/id` of the PDP's domain D. */
export const ResourceSchema = typedEntity('resource');
/** `{name, properties?}`. */
export const ActionSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: ENTITY_LIMITS.action }),
    properties: Type.Optional(Properties),
  },
  { description: 'the action' },
);
/** Free members describing the environment; `explain: true` asks for the reasons. */
export const ContextSchema = Type.Record(Type.String(), Type.Unknown(), {
  description: 'visible to conditions as `context`; `explain: true` adds reason_admin and reason_user',
});

/** The body of `POST …/access/v1/evaluation`. */
export const EvaluationRequestSchema = Type.Object({
  subject: SubjectSchema,
  action: ActionSchema,
  resource: ResourceSchema,
  context: Type.Optional(ContextSchema),
});

/** The body of `POST …/access/v1/evaluations`. */
export const EvaluationsRequestSchema = Type.Object({
  subject: Type.Optional(SubjectSchema),
  action: Type.Optional(ActionSchema),
  resource: Type.Optional(ResourceSchema),
  context: Type.Optional(ContextSchema),
  evaluations: Type.Optional(
    Type.Array(
      Type.Unknown({
        description:
          'an evaluation request; a member it lacks is taken whole from the top level. A bad item is answered in its place',
      }),
    ),
  ),
  options: Type.Optional(
    Type.Object({
      evaluations_semantic: Type.Optional(Type.Enum([...EVALUATIONS_SEMANTICS])),
    }),
  ),
});

export type Subject = Static<typeof SubjectSchema>;
export type Resource = Static<typeof ResourceSchema>;
export type Action = Static<typeof ActionSchema>;
export type EvaluationRequest = Static<typeof EvaluationRequestSchema>;
export type EvaluationsRequest = Static<typeof EvaluationsRequestSchema>;

/** What a decision's `context` holds: always the domain revision. */
export const DecisionContextSchema = Type.Object(
  {
    revision: Type.Integer({ description: 'the revision of the domain the decision was made on' }),
    reason_admin: Type.Optional(
      Type.Unknown({ description: 'with explain: the deciding assertions, match paths and conditions' }),
    ),
    reason_user: Type.Optional(Type.String({ description: 'with explain: a reason safe to show the subject' })),
    error: Type.Optional(
      Type.Object(
        { status: Type.Integer(), message: Type.String() },
        { description: 'an evaluation of a batch that could not be made (its decision is false)' },
      ),
    ),
  },
  { additionalProperties: true },
);

/** An AuthZEN decision (spec `#decision`). */
export const DecisionSchema = Type.Object({ decision: Type.Boolean(), context: DecisionContextSchema });

/** The answer of `evaluations`: one decision per evaluated item, in request order. */
export const EvaluationsResponseSchema = Type.Object({ evaluations: Type.Array(DecisionSchema) });

export type AccessDecision = Static<typeof DecisionSchema>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkString(v: unknown, where: string, max: number): string | undefined {
  if (v === undefined) return `${where} is required`;
  if (typeof v !== 'string') return `${where} must be a string`;
  if (v.length === 0) return `${where} must not be empty`;
  if (v.length > max) return `${where} must be at most ${max} characters`;
  return undefined;
}

function checkProperties(entity: Record<string, unknown>, where: string): string | undefined {
  const p = entity.properties;
  return p === undefined || isObject(p) ? undefined : `${where}/properties must be an object`;
}

function checkTyped(v: unknown, where: string): string | undefined {
  if (v === undefined) return `${where} is required`;
  if (!isObject(v)) return `${where} must be an object`;
  return (
    checkString(v.type, `${where}/type`, ENTITY_LIMITS.type) ??
    checkString(v.id, `${where}/id`, ENTITY_LIMITS.id) ??
    checkProperties(v, where)
  );
}

function checkAction(v: unknown, where: string): string | undefined {
  if (v === undefined) return `${where} is required`;
  if (!isObject(v)) return `${where} must be an object`;
  return checkString(v.name, `${where}/name`, ENTITY_LIMITS.action) ?? checkProperties(v, where);
}

/** The four members of an evaluation. */
type Members = Record<MemberKey, unknown>;
type MemberKey = 'subject' | 'action' | 'resource' | 'context';

function isText(v: unknown, max: number): boolean {
  return typeof v === 'string' && v.length > 0 && v.length <= max;
}

function isTyped(v: unknown): boolean {
  return (
    isObject(v) &&
    isText(v.type, ENTITY_LIMITS.type) &&
    isText(v.id, ENTITY_LIMITS.id) &&
    (v.properties === undefined || isObject(v.properties))
  );
}

function isAction(v: unknown): boolean {
  return isObject(v) && isText(v.name, ENTITY_LIMITS.action) && (v.properties === undefined || isObject(v.properties));
}

/** The request the members make, or undefined when one is missing or wrongly typed (see explain). */
function assemble(m: Members): EvaluationRequest | undefined {
  // The common case — a good request — is checked without building a single pointer or closure
  // (a batch has up to 1,000 items); `explain` builds the message when there is a problem.
  const ok =
    isTyped(m.subject) && isAction(m.action) && isTyped(m.resource) && (m.context === undefined || isObject(m.context));
  if (!ok) return undefined;
  const request: EvaluationRequest = {
    subject: m.subject as Subject,
    action: m.action as Action,
    resource: m.resource as Resource,
  };
  if (m.context !== undefined) request.context = m.context as Record<string, unknown>;
  return request;
}

/** The message naming the first problem of members assemble refused; `where` gives a member's pointer. */
function explain(m: Members, where: (key: MemberKey) => string): string {
  return (
    checkTyped(m.subject, where('subject')) ??
    checkAction(m.action, where('action')) ??
    checkTyped(m.resource, where('resource')) ??
    `${where('context')} must be an object`
  );
}

/**
 * The evaluation request a body's top-level members make (a body of `evaluations` without
 * items): the request, or a message naming the first problem (`/subject is required`).
 */
export function parseEvaluation(body: Omit<EvaluationsRequest, 'evaluations' | 'options'>): EvaluationRequest | string {
  const m: Members = { subject: body.subject, action: body.action, resource: body.resource, context: body.context };
  return assemble(m) ?? explain(m, (key) => `/${key}`);
}

/** Whether an item's member `key` is its own (else it is the top-level default). */
function isOwn(item: Record<string, unknown>, defaults: Defaults, key: MemberKey): boolean {
  return Object.hasOwn(item, key) || defaults[key] === undefined;
}

type Defaults = Omit<EvaluationsRequest, 'evaluations' | 'options'>;

/**
 * The evaluation request item `index` of a batch stands for: each of subject, action, resource
 * and context it lacks is taken, as a whole object, from `defaults` (spec `#default-values`;
 * properties are never merged). Returns the request, or a message naming the first problem
 * (`/evaluations/1/subject is required`, `/subject/id must be a string` for a bad default);
 * never throws.
 */
export function parseEvaluationItem(item: unknown, index: number, defaults: Defaults): EvaluationRequest | string {
  if (!isObject(item)) return `/evaluations/${index} must be an object`;
  const m: Members = {
    subject: isOwn(item, defaults, 'subject') ? item.subject : defaults.subject,
    action: isOwn(item, defaults, 'action') ? item.action : defaults.action,
    resource: isOwn(item, defaults, 'resource') ? item.resource : defaults.resource,
    context: isOwn(item, defaults, 'context') ? item.context : defaults.context,
  };
  return assemble(m) ?? explain(m, (key) => (isOwn(item, defaults, key) ? `/evaluations/${index}/${key}` : `/${key}`));
}

/**
 * The newest `context.min_revision` a request body asks for (docs/scale-out.md): the top-level
 * context's, and in a batch each item's own, whichever is largest; undefined when none asks.
 * Called on the parsed body before validation, so that the domain can be brought up to date
 * first. Returns a message naming the value instead when one is not a whole number from 0 to
 * 2^53 - 1.
 */
export function minRevisionOf(body: unknown): number | undefined | { problem: string; pointer: string } {
  if (!isObject(body)) return undefined;
  let newest: number | undefined;
  const consider = (context: unknown, pointer: string): string | undefined => {
    if (!isObject(context) || !Object.hasOwn(context, 'min_revision')) return undefined;
    const v = context.min_revision;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return pointer;
    newest = Math.max(newest ?? 0, v);
    return undefined;
  };
  let bad = consider(body.context, '/context/min_revision');
  if (bad === undefined && Array.isArray(body.evaluations)) {
    for (let i = 0; i < body.evaluations.length && bad === undefined; i++) {
      const item: unknown = body.evaluations[i];
      if (isObject(item)) bad = consider(item.context, `/evaluations/${i}/context/min_revision`);
    }
  }
  if (bad !== undefined) return { problem: `${bad} must be a whole number of at least 0`, pointer: bad };
  return newest;
}
