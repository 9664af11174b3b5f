/**
 * The AuthZEN 1.0 search APIs' request and response shapes (authzen.md §4) and their opaque
 * page tokens. Like the evaluation shapes, no schema here refuses unknown members. The entity a
 * search looks for carries only its `type`; an `id` sent with it is ignored (spec
 * `#subject-search-api`, `#resource-search-api`), whatever its value.
 */

import { createHash } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { badRequest } from '../http/problem.js';
import { canonicalJson } from '../storage/canonical-json.js';
import { ActionSchema, ContextSchema, ENTITY_LIMITS, ResourceSchema, SubjectSchema } from './evaluation-request.js';

/** Results per page: `default` without `page.limit`, never more than `max` (a larger limit is lowered to it). */
export const SEARCH_LIMITS = { default: 100, max: 1000, token: 512 } as const;

const Properties = Type.Record(Type.String(), Type.Unknown());

const searchedEntity = (what: string) =>
  Type.Object(
    {
      type: Type.String({ minLength: 1, maxLength: ENTITY_LIMITS.type, description: `the type of ${what} searched` }),
      id: Type.Optional(Type.Unknown({ description: 'ignored (spec: the PDP must ignore it)' })),
      properties: Type.Optional(Properties),
    },
    { description: `the ${what} searched: its type only` },
  );

/** Request `page` (spec `#search-pagination`). */
export const PageRequestSchema = Type.Object(
  {
    token: Type.Optional(
      Type.String({ maxLength: SEARCH_LIMITS.token, description: 'the next_token of the previous page' }),
    ),
    limit: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: `most results to return (default ${SEARCH_LIMITS.default}; above ${SEARCH_LIMITS.max} is lowered to ${SEARCH_LIMITS.max})`,
      }),
    ),
    properties: Type.Optional(
      Type.Object(
        { total: Type.Optional(Type.Boolean({ description: 'true: the response page carries `total`' })) },
        { description: 'Gatehouse reads `total`; other members are ignored' },
      ),
    ),
  },
  { description: 'pagination: repeat the request unchanged with `token` set to the last `next_token`' },
);

/** The body of `POST …/access/v1/search/subject`. */
export const SubjectSearchRequestSchema = Type.Object({
  subject: searchedEntity('subject'),
  action: ActionSchema,
  resource: ResourceSchema,
  context: Type.Optional(ContextSchema),
  page: Type.Optional(PageRequestSchema),
});

/** The body of `POST …/access/v1/search/resource`. */
export const ResourceSearchRequestSchema = Type.Object({
  subject: SubjectSchema,
  action: ActionSchema,
  resource: searchedEntity('resource'),
  context: Type.Optional(ContextSchema),
  page: Type.Optional(PageRequestSchema),
});

/** The body of `POST …/access/v1/search/action` (no `action` member). */
export const ActionSearchRequestSchema = Type.Object({
  subject: SubjectSchema,
  resource: ResourceSchema,
  context: Type.Optional(ContextSchema),
  page: Type.Optional(PageRequestSchema),
});

/** Response `page`: `next_token` is empty on the last page. */
export const PageResponseSchema = Type.Object({
  next_token: Type.String({ description: 'pass it back as page.token for the next page; empty on the last page' }),
  count: Type.Integer({ description: 'results in this response' }),
  total: Type.Optional(Type.Integer({ description: 'with page.properties.total: every matching result' })),
});

const SearchContextSchema = Type.Object(
  { revision: Type.Integer({ description: 'the revision of the domain searched' }) },
  { additionalProperties: true },
);

const searchResponse = <T extends ReturnType<typeof Type.Object>>(item: T) =>
  Type.Object({ page: PageResponseSchema, context: SearchContextSchema, results: Type.Array(item) });

/** What the subject and resource searches answer: `{type, id}` entities. */
export const EntitySearchResponseSchema = searchResponse(Type.Object({ type: Type.String(), id: Type.String() }));
/** What the action search answers: `{name}` actions. */
export const ActionSearchResponseSchema = searchResponse(Type.Object({ name: Type.String() }));

export type SubjectSearchRequest = Static<typeof SubjectSearchRequestSchema>;
export type ResourceSearchRequest = Static<typeof ResourceSearchRequestSchema>;
export type ActionSearchRequest = Static<typeof ActionSearchRequestSchema>;
export type PageRequest = Static<typeof PageRequestSchema>;
export type PageResponse = Static<typeof PageResponseSchema>;

/** The three searches. */
export type SearchKind = 'subject' | 'resource' | 'action';

/** Where a page starts and how long it is, from a request's `page`. */
export interface PagePosition {
  limit: number;
  /** The key of the last result of the previous page; results come after it. Undefined: from the start. */
  after: string | undefined;
  wantTotal: boolean;
  /** Identifies the request (without its token): a token is good only for the request that made it. */
  fingerprint: string;
}

interface TokenBody {
  v: 1;
  /** The request's fingerprint. */
  f: string;
  /** The last key returned. */
  a: string;
}

/**
 * The position a search request asks for. Throws 400 problems: `page.token_invalid` for a token
 * this server did not make, `page.token_mismatch` for a token made for a different request
 * (spec: follow-up requests repeat everything but the token).
 */
export function parsePage(kind: SearchKind, domain: string, body: { page?: PageRequest | undefined }): PagePosition {
  const { page, ...rest } = body;
  const limit = Math.min(page?.limit ?? SEARCH_LIMITS.default, SEARCH_LIMITS.max);
  const fingerprint = createHash('sha256')
    .update(canonicalJson({ kind, domain: domain.toLowerCase(), request: rest, limit, properties: page?.properties }))
    .digest('base64url')
    .slice(0, 22);
  const position: PagePosition = { limit, after: undefined, wantTotal: page?.properties?.total === true, fingerprint };
  const token = page?.token;
  if (token === undefined || token === '') return position;
  const decoded = decodeToken(token);
  if (decoded === undefined) throw badRequest('page.token_invalid', 'page.token is not a token this PDP gave out');
  if (decoded.f !== fingerprint) {
    throw badRequest(
      'page.token_mismatch',
      'page.token belongs to a different request: repeat the request that returned it, changing only page.token',
    );
  }
  position.after = decoded.a;
  return position;
}

function decodeToken(token: string): TokenBody | undefined {
  try {
    const body: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof body !== 'object' || body === null) return undefined;
    const { v, f, a } = body as Record<string, unknown>;
    return v === 1 && typeof f === 'string' && typeof a === 'string' ? { v, f, a } : undefined;
  } catch {
    return undefined;
  }
}

/** The token of the page that starts after `lastKey`. */
export function pageToken(position: PagePosition, lastKey: string): string {
  const body: TokenBody = { v: 1, f: position.fingerprint, a: lastKey };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

/**
 * One page of the keys of `candidates` (sorted ascending, distinct) that `matches` accepts,
 * starting after `position.after`: at most `limit` of them, with a non-empty `next_token` when
 * more matching keys follow (the result is never silently cut off), and with `wantTotal` the
 * number of every matching key. Stops scanning as early as it can.
 */
export function searchPage(
  candidates: readonly string[],
  matches: (key: string) => boolean,
  position: PagePosition,
): { keys: string[]; page: PageResponse } {
  let i = 0;
  if (position.after !== undefined) {
    // Binary search: the first candidate after the last key returned.
    let lo = 0;
    let hi = candidates.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((candidates[mid] as string) <= position.after) lo = mid + 1;
      else hi = mid;
    }
    i = lo;
  }
  const keys: string[] = [];
  let more = false;
  let total = 0;
  if (position.wantTotal) {
    for (let j = 0; j < i; j++) if (matches(candidates[j] as string)) total++;
  }
  for (; i < candidates.length; i++) {
    const key = candidates[i] as string;
    if (!matches(key)) continue;
    total++;
    if (keys.length < position.limit) keys.push(key);
    else {
      more = true;
      if (!position.wantTotal) break;
    }
  }
  const page: PageResponse = { next_token: '', count: keys.length };
  if (more) {
    // With limit 0 the next page starts where this one did.
    const last = keys.at(-1) ?? position.after;
    page.next_token = last === undefined ? pageToken(position, '') : pageToken(position, last);
  }
  if (position.wantTotal) page.total = total;
  return { keys, page };
}
