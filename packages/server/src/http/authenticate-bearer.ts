/**
 * Bearer-token authentication of API callers (RFC 6750): the management API and the decision API
 * both turn `Authorization: Bearer <token>` into the caller's principal with an
 * AccessTokenVerifier; only the audiences they accept differ.
 */

import type { FastifyRequest } from 'fastify';
import { InvalidTokenError, type AccessTokenVerifier } from '../keys/access-tokens.js';
import { ProblemError } from './problem.js';

/** Who is calling: the token's `sub`, lower-cased, and the request id. */
export interface AuthenticatedCaller {
  principal: string;
  requestId?: string | undefined;
}

/**
 * A function that authenticates a request with `verifier`: the caller when the request carries a
 * valid bearer token; otherwise it throws a 401 ProblemError (`auth.required` without a usable
 * `Authorization` header, the verifier's `token.*` code for a refused token). Other errors pass.
 */
export function authenticateBearer(
  verifier: Pick<AccessTokenVerifier, 'verify'>,
): (request: FastifyRequest) => Promise<AuthenticatedCaller> {
  return async (request) => {
    const header = request.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer\s+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(header) : null;
    if (!m) {
      throw new ProblemError({
        status: 401,
        code: 'auth.required',
        detail: 'send an access token: Authorization: Bearer <token>',
      });
    }
    try {
      const claims = await verifier.verify(m[1] as string);
      return { principal: claims.sub.toLowerCase(), requestId: request.id };
    } catch (err) {
      if (err instanceof InvalidTokenError) {
        throw new ProblemError({
          status: 401,
          code: err.code,
          detail: `the access token is not valid: ${err.message}`,
          cause: err,
        });
      }
      throw err;
    }
  };
}
