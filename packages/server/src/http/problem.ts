/**
 * RFC 9457 problem details: the one error format of the management API. A ProblemError thrown
 * anywhere in a request is rendered by handleError as `application/problem+json`, with a stable
 * dotted `code` (`role.not_found`) and, for validation, one JSON pointer per failing field.
 */

import { STATUS_CODES } from 'node:http';
import { Type, type Static } from 'typebox';

/** The media type of every error response (RFC 9457 §3). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Where problem types live; a problem's `type` is this followed by its code. */
export const PROBLEM_TYPE_BASE = 'https://gatehouse.dev/problems/';

/** One failing field of a request: where (a JSON pointer into the request), a stable code, and why. */
export interface ProblemFieldError {
  pointer: string;
  code: string;
  message: string;
}

/** What a ProblemError is made of; `title` defaults to the status's reason phrase. */
export interface ProblemInit {
  status: number;
  code: string;
  detail: string;
  title?: string | undefined;
  errors?: readonly ProblemFieldError[] | undefined;
  cause?: unknown;
}

/**
 * An error that answers the request with a problem: its status, a stable dotted code, a short title
 * and a detail safe to show the caller. Chain the underlying error as `cause`; it is logged, never sent.
 */
export class ProblemError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly errors: readonly ProblemFieldError[] | undefined;
  constructor(init: ProblemInit) {
    super(init.detail, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ProblemError';
    this.status = init.status;
    this.code = init.code;
    this.title = init.title ?? STATUS_CODES[init.status] ?? 'Error';
    this.detail = init.detail;
    this.errors = init.errors;
  }
}

/** The RFC 9457 `type` URI of a problem code. */
export function problemType(code: string): string {
  return `${PROBLEM_TYPE_BASE}${code}`;
}

/** The body of every error response, for routes to declare under their 4xx/5xx responses. */
export const errorSchema = Type.Object(
  {
    type: Type.String({ description: `${PROBLEM_TYPE_BASE}<code>` }),
    title: Type.String({ description: 'short summary of the kind of problem' }),
    status: Type.Integer({ description: 'the HTTP status code' }),
    detail: Type.String({ description: 'what went wrong with this request' }),
    code: Type.String({ description: 'stable dotted code, such as role.not_found' }),
    instance: Type.String({ description: 'the request target' }),
    requestId: Type.String({ description: 'the request id, also in the X-Request-ID header and the server log' }),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          pointer: Type.String({ description: 'JSON pointer into the request, such as /body/name' }),
          code: Type.String({ description: 'stable code, such as field.required' }),
          message: Type.String(),
        }),
        { description: 'one entry per failing field (validation problems only)' },
      ),
    ),
  },
  { title: 'Problem', description: 'RFC 9457 problem details' },
);

/** A problem details body as sent. */
export type ProblemDetails = Static<typeof errorSchema>;

/** A route response that is a problem, declared with its real media type. */
export interface ProblemResponse {
  description: string;
  content: { [PROBLEM_CONTENT_TYPE]: { schema: typeof errorSchema } };
}

/**
 * Response declarations for the given error statuses, for a route's `schema.response`: the OpenAPI
 * document then lists them as `application/problem+json` bodies of errorSchema.
 */
export function problemResponses<S extends number>(...statuses: S[]): Record<S, ProblemResponse> {
  const response: ProblemResponse = {
    description: 'RFC 9457 problem details',
    content: { [PROBLEM_CONTENT_TYPE]: { schema: errorSchema } },
  };
  return Object.fromEntries(statuses.map((s) => [s, response])) as Record<S, ProblemResponse>;
}

/** The body that answers `problem` for the request at `instance` with id `requestId`. */
export function toProblemDetails(problem: ProblemError, instance: string, requestId: string): ProblemDetails {
  const body: ProblemDetails = {
    type: problemType(problem.code),
    title: problem.title,
    status: problem.status,
    detail: problem.detail,
    code: problem.code,
    instance,
    requestId,
  };
  if (problem.errors !== undefined) body.errors = problem.errors.map((e) => ({ ...e }));
  return body;
}

/** 400: the request is wrong; `errors` lists the fields. */
export function badRequest(code: string, detail: string, errors?: readonly ProblemFieldError[]): ProblemError {
  return new ProblemError({ status: 400, code, detail, errors });
}

/** 401: no valid credentials. */
export function unauthorized(code: string, detail: string): ProblemError {
  return new ProblemError({ status: 401, code, detail });
}

/** 403: the caller may not do this. */
export function forbidden(code: string, detail: string): ProblemError {
  return new ProblemError({ status: 403, code, detail });
}

/** 404: the object does not exist. */
export function notFound(code: string, detail: string): ProblemError {
  return new ProblemError({ status: 404, code, detail });
}

/** 409: the change conflicts with the current state (a name is taken, a reference remains). */
export function conflict(code: string, detail: string, options?: { cause?: unknown }): ProblemError {
  return new ProblemError({ status: 409, code, detail, cause: options?.cause });
}

/** 412: `If-Match` names a revision that is no longer current. */
export function preconditionFailed(code: string, detail: string): ProblemError {
  return new ProblemError({ status: 412, code, detail });
}

/** 503: the server cannot answer now; `cause` says why (logged, not sent). */
export function serviceUnavailable(code: string, detail: string, options?: { cause?: unknown }): ProblemError {
  return new ProblemError({ status: 503, code, detail, cause: options?.cause });
}
