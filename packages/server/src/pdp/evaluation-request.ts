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

type Member = [value: unknown, pointer: string];

function assemble(subject: Member, action: Member, resource: Member, context: Member): EvaluationRequest | string {
  const problem =
    checkTyped(...subject) ??
    checkAction(...action) ??
    checkTyped(...resource) ??
    (context[0] === undefined || isObject(context[0]) ? undefined : `${context[1]} must be an object`);
  if (problem !== undefined) return problem;
  const request: EvaluationRequest = {
    subject: subject[0] as Subject,
    action: action[0] as Action,
    resource: resource[0] as Resource,
  };
  if (context[0] !== undefined) request.context = context[0] as Record<string, unknown>;
  return request;
}

/**
 * The evaluation request a body's top-level members make (a body of `evaluations` without
 * items): the request, or a message naming the first problem (`/subject is required`).
 */
export function parseEvaluation(body: Omit<EvaluationsRequest, 'evaluations' | 'options'>): EvaluationRequest | string {
  return assemble(
    [body.subject, '/subject'],
    [body.action, '/action'],
    [body.resource, '/resource'],
    [body.context, '/context'],
  );
}

/**
 * The evaluation request item `index` of a batch stands for: each of subject, action, resource
 * and context it lacks is taken, as a whole object, from `defaults` (spec `#default-values`;
 * properties are never merged). Returns the request, or a message naming the first problem
 * (`/evaluations/1/subject is required`, `/subject/id must be a string` for a bad default);
 * never throws.
 */
export function parseEvaluationItem(
  item: unknown,
  index: number,
  defaults: Omit<EvaluationsRequest, 'evaluations' | 'options'>,
): EvaluationRequest | string {
  if (!isObject(item)) return `/evaluations/${index} must be an object`;
  return assemble(
    pick(item, index, defaults, 'subject'),
    pick(item, index, defaults, 'action'),
    pick(item, index, defaults, 'resource'),
    pick(item, index, defaults, 'context'),
  );
}

/** An item's own member `key`, else the top-level default, with the pointer to where it came from. */
function pick(
  item: Record<string, unknown>,
  index: number,
  defaults: Omit<EvaluationsRequest, 'evaluations' | 'options'>,
  key: 'subject' | 'action' | 'resource' | 'context',
): Member {
  return Object.hasOwn(item, key) || defaults[key] === undefined
    ? [item[key], `/evaluations/${index}/${key}`]
    : [defaults[key], `/${key}`];
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
