/**
 * Request ids: the caller's `X-Request-ID` when it is usable, a random UUID otherwise. The id is
 * in every log line of the request, in every problem body and in the `X-Request-ID` response header.
 */

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The header that carries the request id both ways (lower case, as Node presents headers). */
export const REQUEST_ID_HEADER = 'x-request-id';

/** The longest request id taken from a caller. */
export const MAX_REQUEST_ID_LENGTH = 200;

// Printable ASCII only (space to tilde): safe in a header, in a log line and in JSON.
const USABLE = new RegExp(`^[\\x20-\\x7e]{1,${MAX_REQUEST_ID_LENGTH}}$`);

/** The id of a request (Fastify's `genReqId`): the caller's X-Request-ID if usable, else a new UUID. */
export function genRequestId(request: Pick<IncomingMessage, 'headers'>): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && USABLE.test(given) ? given : randomUUID();
}
