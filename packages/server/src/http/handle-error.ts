/**
 * The one error handler: every error a request meets — ours (ProblemError), Fastify's (parsing,
 * validation, limits, routing) or unexpected ones — is answered as RFC 9457 problem+json. Unexpected
 * errors become a generic 500 whose cause is logged with the request id and never sent.
 */

import type { FastifyReply, FastifyRequest, FastifySchemaValidationError } from 'fastify';
import { REQUEST_ID_HEADER } from './gen-request-id.js';
import { NameError } from '@gatehouse/engine';
import { ConflictError, MissingReferenceError, NotFoundError, PreconditionFailedError } from '../storage/errors.js';
import { InvalidCursorError } from '../storage/paginate.js';
import { ValidationError } from '../storage/store.js';
import { PROBLEM_CONTENT_TYPE, ProblemError, toProblemDetails, type ProblemFieldError } from './problem.js';

/** At most this many field errors are listed in a validation problem. */
export const MAX_FIELD_ERRORS = 100;

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** Fastify's name for a part of the request → the first segment of our JSON pointers. */
const PART_POINTER: Record<string, string> = {
  body: '/body',
  querystring: '/query',
  params: '/params',
  headers: '/headers',
};

/** Renders `error` as a problem (for `setErrorHandler` and `frameworkErrors`). Never throws. */
export function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const problem = toProblemError(error, request);
  if (!(error instanceof ProblemError) && problem.status >= 500) {
    if (isDatabaseError(error)) request.server.metrics?.countStoreError(request.routeOptions.url ?? 'unknown');
    request.log.error({ err: error }, `unexpected error: ${problem.code}`);
  } else if (problem.status >= 500) {
    request.log.warn({ err: problem.cause ?? problem, code: problem.code }, problem.detail);
  } else {
    request.log.info({ code: problem.code }, `request refused: ${problem.detail}`);
  }
  sendProblem(request, reply, problem);
}

/**
 * Answers a request that matched no route: 405 with `Allow` when the path exists for other
 * methods (RFC 9110 §15.5.6), 404 `route.not_found` otherwise.
 */
export function handleNotFound(request: FastifyRequest, reply: FastifyReply): void {
  const path = request.url.split('?', 1)[0] ?? '/';
  const allowed = METHODS.filter((method) => request.server.findRoute({ method, url: path }) !== null);
  if (allowed.length > 0) {
    reply.header('allow', allowed.join(', '));
    sendProblem(
      request,
      reply,
      new ProblemError({
        status: 405,
        code: 'route.method_not_allowed',
        detail: `${request.method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`,
      }),
    );
    return;
  }
  sendProblem(
    request,
    reply,
    new ProblemError({ status: 404, code: 'route.not_found', detail: `no route matches ${request.method} ${path}` }),
  );
}

/** Sends `problem` as the response, with the request id in the body and the X-Request-ID header. */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: ProblemError): void {
  if (problem.status === 401 && !reply.hasHeader('www-authenticate')) {
    // RFC 6750 §3: the Bearer challenge, with invalid_token when a token was sent but refused.
    const invalid = problem.code.startsWith('token.') ? ', error="invalid_token"' : '';
    void reply.header('www-authenticate', `Bearer realm="gatehouse"${invalid}`);
  }
  void reply
    .code(problem.status)
    .header(REQUEST_ID_HEADER, request.id)
    .type(PROBLEM_CONTENT_TYPE)
    .send(toProblemDetails(problem, request.url, request.id));
}

/** The problem that answers `error`: ProblemErrors as they are, Fastify's errors mapped, the rest 500. */
export function toProblemError(error: unknown, request: FastifyRequest): ProblemError {
  if (error instanceof ProblemError) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    statusCode?: unknown;
    message?: unknown;
    validation?: FastifySchemaValidationError[];
    validationContext?: string;
  };
  if (Array.isArray(e.validation)) return validationProblem(e.validation, e.validationContext ?? 'body', request);
  const stored = storageProblem(error);
  if (stored !== undefined) return stored;
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ProblemError({
        status: 400,
        code: 'request.malformed_json',
        title: 'Malformed JSON',
        detail: 'the request body is not valid JSON',
        cause: error,
      });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return emptyBodyProblem(error);
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      const limit = request.routeOptions.bodyLimit;
      return new ProblemError({
        status: 413,
        code: 'request.too_large',
        title: 'Request body too large',
        detail: `the request body is larger than the limit of ${limit} bytes`,
        cause: error,
      });
    }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const type = request.headers['content-type'];
      return new ProblemError({
        status: 415,
        code: 'request.unsupported_media_type',
        title: 'Unsupported media type',
        detail:
          type === undefined
            ? 'the request has a body but no Content-Type; send application/json'
            : `content type ${JSON.stringify(type.slice(0, 100))} is not supported; send application/json`,
        cause: error,
      });
    }
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ProblemError({
        status: 400,
        code: 'request.invalid_content_length',
        detail: 'the request body size does not match its Content-Length',
        cause: error,
      });
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_INVALID_URL':
      return new ProblemError({
        status: 400,
        code: 'request.invalid_url',
        detail: 'the request URL is not valid (bad percent-encoding?)',
        cause: error,
      });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ProblemError({
        status: 414,
        code: 'request.uri_too_long',
        detail: 'a path parameter of the request URL is too long',
        cause: error,
      });
    case 'FST_ERR_HANDLER_TIMEOUT':
      return new ProblemError({
        status: 503,
        code: 'server.timeout',
        detail: 'the request took too long and was abandoned',
        cause: error,
      });
  }
  // Other client errors raised by Fastify or its plugins carry a status and a message meant for
  // the client (Fastify's default handler sends both).
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new ProblemError({
      status: e.statusCode,
      code: 'request.invalid',
      detail: typeof e.message === 'string' && e.message !== '' ? e.message : 'the request cannot be processed',
      cause: error,
    });
  }
  return new ProblemError({
    status: 500,
    code: 'internal',
    title: 'Internal Server Error',
    detail: 'an unexpected error occurred; the request id identifies it in the server log',
    cause: error,
  });
}

function emptyBodyProblem(cause: unknown): ProblemError {
  return new ProblemError({
    status: 400,
    code: 'request.empty_body',
    title: 'Empty request body',
    detail: 'the request body is empty; this endpoint expects a JSON body',
    cause,
  });
}

function validationProblem(
  issues: readonly FastifySchemaValidationError[],
  part: string,
  request: FastifyRequest,
): ProblemError {
  if (part === 'body' && request.body === undefined) return emptyBodyProblem(undefined);
  const prefix = PART_POINTER[part] ?? `/${part}`;
  const errors = issues.slice(0, MAX_FIELD_ERRORS).map((issue) => fieldError(prefix, issue));
  const more = issues.length > MAX_FIELD_ERRORS ? ` (the first ${MAX_FIELD_ERRORS} are listed)` : '';
  const first = errors[0];
  return new ProblemError({
    status: 400,
    code: 'request.invalid',
    title: 'Invalid request',
    detail:
      issues.length === 1 && first
        ? `${first.pointer} ${first.message}`
        : `the request has ${issues.length} invalid fields${more}; see errors`,
    errors,
  });
}

/** One ajv issue as a field error: the pointer names the failing field itself, known or not. */
function fieldError(prefix: string, issue: FastifySchemaValidationError): ProblemFieldError {
  const params = issue.params;
  const at = `${prefix}${issue.instancePath}`;
  const child = (name: unknown) => `${at}/${String(name).replace(/~/g, '~0').replace(/\//g, '~1')}`;
  switch (issue.keyword) {
    case 'required':
    case 'dependentRequired':
    case 'dependencies':
      return { pointer: child(params.missingProperty), code: 'field.required', message: 'is required' };
    case 'additionalProperties':
      return { pointer: child(params.additionalProperty), code: 'field.unknown', message: 'is not a known field' };
    case 'unevaluatedProperties':
      return { pointer: child(params.unevaluatedProperty), code: 'field.unknown', message: 'is not a known field' };
    case 'enum':
      return {
        pointer: at,
        code: 'field.not_allowed',
        message: Array.isArray(params.allowedValues)
          ? `must be one of ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`
          : (issue.message ?? 'is not allowed'),
      };
  }
  return { pointer: at, code: FIELD_CODES[issue.keyword] ?? 'field.invalid', message: issue.message ?? 'is invalid' };
}

const FIELD_CODES: Record<string, string> = {
  type: 'field.type',
  maxLength: 'field.too_long',
  minLength: 'field.too_short',
  maximum: 'field.too_large',
  exclusiveMaximum: 'field.too_large',
  minimum: 'field.too_small',
  exclusiveMinimum: 'field.too_small',
  maxItems: 'field.too_many_items',
  minItems: 'field.too_few_items',
  uniqueItems: 'field.duplicate_items',
  maxProperties: 'field.too_many_properties',
  minProperties: 'field.too_few_properties',
  pattern: 'field.pattern',
  format: 'field.format',
  const: 'field.not_allowed',
  multipleOf: 'field.not_multiple',
  anyOf: 'field.no_match',
  oneOf: 'field.no_match',
};

/**
 * Turns a model issue path (`assertions[1].condition`, relative to the request body) into a JSON
 * pointer (`/body/assertions/1/condition`); paths that name other objects
 * (`roles[readers].members[0]`) point at the body as a whole and keep the path in the message.
 */
export function issuePointer(path: string): { pointer: string; prefix: string } {
  if (/^(roles|groups|policies)\[[^\]]*[^\d\]][^\]]*\]/.test(path)) return { pointer: '/body', prefix: `${path}: ` };
  const segments = path
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter((s) => s !== '')
    .map((s) => s.replace(/~/g, '~0').replace(/\//g, '~1'));
  return { pointer: segments.length === 0 ? '/body' : `/body/${segments.join('/')}`, prefix: '' };
}

/** The problem answering a storage or engine error, or undefined for other errors. */
export function storageProblem(error: unknown): ProblemError | undefined {
  if (error instanceof ValidationError) {
    const first = error.issues[0];
    return new ProblemError({
      status: 400,
      code: first?.code ?? error.code,
      title: 'Invalid change',
      detail:
        error.issues.length === 1 && first
          ? `${first.path ? `${first.path}: ` : ''}${first.message}`
          : `the change is invalid (${error.issues.length} problems)`,
      errors: error.issues.slice(0, MAX_FIELD_ERRORS).map((i) => {
        const { pointer, prefix } = issuePointer(i.path);
        return { pointer, code: i.code, message: `${prefix}${i.message}` };
      }),
      cause: error,
    });
  }
  if (error instanceof NotFoundError)
    return new ProblemError({ status: 404, code: error.code, detail: error.message, cause: error });
  if (error instanceof ConflictError || error instanceof MissingReferenceError) {
    return new ProblemError({ status: 409, code: error.code, detail: error.message, cause: error });
  }
  if (error instanceof PreconditionFailedError) {
    return new ProblemError({ status: 412, code: error.code, detail: error.message, cause: error });
  }
  if (error instanceof NameError)
    return new ProblemError({ status: 400, code: error.code, detail: error.message, cause: error });
  if (error instanceof InvalidCursorError) {
    return new ProblemError({ status: 400, code: error.code, detail: error.message, cause: error });
  }
  return undefined;
}

/**
 * True when an error (or one of its causes) comes from a database driver: better-sqlite3's
 * `SQLITE_*` codes, PostgreSQL errors (a five-character SQLSTATE with a severity), or a lost
 * connection.
 */
export function isDatabaseError(error: unknown): boolean {
  for (
    let e = error, depth = 0;
    e !== null && typeof e === 'object' && depth < 8;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (code.startsWith('SQLITE_')) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && 'severity' in e) return true;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT') return true;
  }
  return false;
}

/**
 * Answers a request Node's HTTP parser refused (Fastify's `clientErrorHandler`): a problem with
 * 431 for oversized headers, 408 for a request that took too long, 400 otherwise; then the
 * connection is closed. Node has already removed its own error listener from the socket, so a
 * write error now would be uncaught and end the process: reset connections are left alone, and a
 * listener swallows what writing may still raise.
 */
export function answerClientError(error: Error & { code?: string }, socket: import('node:net').Socket): void {
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.on('error', () => socket.destroy());
  const [status, code, title, detail] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'request.headers_too_large', 'Request Header Fields Too Large', 'the request headers are too large']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request.timeout', 'Request Timeout', 'the request took too long to arrive']
        : [400, 'request.malformed', 'Bad Request', 'the request is not valid HTTP'];
  const body = JSON.stringify({ type: `https://gatehouse.dev/problems/${code}`, title, status, detail, code });
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
