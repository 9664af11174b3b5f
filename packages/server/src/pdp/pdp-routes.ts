/**
 * The AuthZEN decision API routes (api.md §2, authzen.md): one PDP per domain at
 * `{PUBLIC_URL}/pdp/<domain>` with the evaluation, evaluations and search APIs, and its metadata at
 * `/.well-known/authzen-configuration/pdp/<domain>` (spec `#pdp-metadata-access`).
 *
 * The evaluation routes live in a scope of their own: callers authenticate before anything else
 * (401 with `WWW-Authenticate`), the domain is checked next (404 when its PDP does not exist), and
 * a body that is not JSON is a 400 (the certification scenario expects 400, not 415).
 */

import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { AuthenticatedCaller } from '../http/authenticate-bearer.js';
import type { GatehouseApp } from '../http/build-app.js';
import { badRequest, notFound, problemResponses } from '../http/problem.js';
import {
  DecisionSchema,
  EvaluationRequestSchema,
  EvaluationsRequestSchema,
  EvaluationsResponseSchema,
  minRevisionOf,
} from './evaluation-request.js';
import type { PdpService } from './pdp-service.js';
import {
  ActionSearchRequestSchema,
  ActionSearchResponseSchema,
  EntitySearchResponseSchema,
  ResourceSearchRequestSchema,
  SubjectSearchRequestSchema,
} from './search-request.js';

/** How long a PEP may cache PDP metadata (it changes only with the public URL). */
export const METADATA_MAX_AGE_SECONDS = 300;

const TAGS = ['authzen'];
const DomainParams = Type.Object({ domain: Type.String({ minLength: 1, maxLength: 256 }) });
const Metadata = Type.Object({
  policy_decision_point: Type.String({ description: 'the PDP identifier: {PUBLIC_URL}/pdp/<domain>' }),
  access_evaluation_endpoint: Type.String(),
  access_evaluations_endpoint: Type.String(),
  search_subject_endpoint: Type.String(),
  search_resource_endpoint: Type.String(),
  search_action_endpoint: Type.String(),
});

/** The path of the PDP of `domain`, relative to the public URL. */
export function pdpPath(domain: string): string {
  return `/pdp/${domain}`;
}

/**
 * Adds the decision API and PDP metadata routes to `app`. `authenticate` verifies a request's
 * bearer token (throws a 401 problem); `publicUrl` is the base of the advertised URLs.
 */
export async function registerPdpRoutes(
  app: GatehouseApp,
  service: PdpService,
  authenticate: (request: FastifyRequest) => Promise<AuthenticatedCaller>,
  publicUrl: string,
): Promise<void> {
  app.get(
    '/.well-known/authzen-configuration/pdp/:domain',
    {
      schema: {
        tags: TAGS,
        summary: "A domain's PDP metadata (AuthZEN #pdp-metadata)",
        params: DomainParams,
        response: { 200: Metadata, ...problemResponses(404) },
      },
    },
    async (request, reply) => {
      const { domain } = request.params;
      if (service.findDomain(domain) === undefined) {
        throw notFound('domain.not_found', `there is no PDP for domain "${domain}": it does not exist`);
      }
      // The PEP discards metadata whose identifier is not the one it derived the URL from, so
      // the domain is echoed as the request spelled it (names are case-insensitive).
      const pdp = `${publicUrl}${pdpPath(domain)}`;
      void reply.header('cache-control', `public, max-age=${METADATA_MAX_AGE_SECONDS}`);
      return {
        policy_decision_point: pdp,
        access_evaluation_endpoint: `${pdp}/access/v1/evaluation`,
        access_evaluations_endpoint: `${pdp}/access/v1/evaluations`,
        search_subject_endpoint: `${pdp}/access/v1/search/subject`,
        search_resource_endpoint: `${pdp}/access/v1/search/resource`,
        search_action_endpoint: `${pdp}/access/v1/search/action`,
      };
    },
  );

  await app.register(async (scope: GatehouseApp) => {
    // authzen.md §6: a body that is not JSON is a bad request here, not an unsupported media type.
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (request, _body, done) => {
      const type = request.headers['content-type'];
      done(
        badRequest(
          'request.unsupported_media_type',
          type === undefined
            ? 'the request has a body but no Content-Type; send application/json'
            : `content type ${JSON.stringify(type.slice(0, 100))} is not supported; send application/json`,
        ),
      );
    });
    const callers = new WeakMap<FastifyRequest, AuthenticatedCaller>();
    scope.addHook('onRequest', async (request) => {
      callers.set(request, await authenticate(request));
      const { domain } = request.params as { domain: string };
      // A domain this node does not hold is checked once the body is parsed: its
      // `context.min_revision` may ask for a domain created through another node a moment ago.
      if (service.findDomain(domain) !== undefined) service.getDomain(domain);
    });
    scope.addHook('preValidation', async (request) => {
      const { domain } = request.params as { domain: string };
      const min = minRevisionOf(request.body);
      if (typeof min === 'object') {
        throw badRequest('request.invalid', min.problem, [
          { pointer: `/body${min.pointer}`, code: 'request.invalid', message: min.problem },
        ]);
      }
      await service.freshen(domain, min);
      service.getDomain(domain);
    });
    const callerOf = async (request: FastifyRequest): Promise<AuthenticatedCaller> =>
      callers.get(request) ?? authenticate(request);
    const errors = problemResponses(400, 401, 403, 404, 413);

    scope.post(
      '/pdp/:domain/access/v1/evaluation',
      {
        schema: {
          tags: TAGS,
          summary: 'One access decision (AuthZEN Access Evaluation API)',
          params: DomainParams,
          body: EvaluationRequestSchema,
          response: { 200: DecisionSchema, ...errors },
        },
      },
      async (request) => service.evaluate(await callerOf(request), request.params.domain, request.body),
    );

    scope.post(
      '/pdp/:domain/access/v1/evaluations',
      {
        schema: {
          tags: TAGS,
          summary: 'Many access decisions (AuthZEN Access Evaluations API)',
          params: DomainParams,
          body: EvaluationsRequestSchema,
          response: { 200: Type.Union([EvaluationsResponseSchema, DecisionSchema]), ...errors },
        },
      },
      async (request) => service.evaluations(await callerOf(request), request.params.domain, request.body),
    );

    scope.post(
      '/pdp/:domain/access/v1/search/subject',
      {
        schema: {
          tags: TAGS,
          summary: 'Who may do the action on the resource (AuthZEN Subject Search API)',
          params: DomainParams,
          body: SubjectSearchRequestSchema,
          response: { 200: EntitySearchResponseSchema, ...errors },
        },
      },
      async (request) => service.searchSubjects(await callerOf(request), request.params.domain, request.body),
    );

    scope.post(
      '/pdp/:domain/access/v1/search/resource',
      {
        schema: {
          tags: TAGS,
          summary: 'On which resources the subject may do the action (AuthZEN Resource Search API)',
          params: DomainParams,
          body: ResourceSearchRequestSchema,
          response: { 200: EntitySearchResponseSchema, ...errors },
        },
      },
      async (request) => service.searchResources(await callerOf(request), request.params.domain, request.body),
    );

    scope.post(
      '/pdp/:domain/access/v1/search/action',
      {
        schema: {
          tags: TAGS,
          summary: 'Which actions the subject may do on the resource (AuthZEN Action Search API)',
          params: DomainParams,
          body: ActionSearchRequestSchema,
          response: { 200: ActionSearchResponseSchema, ...errors },
        },
      },
      async (request) => service.searchActions(await callerOf(request), request.params.domain, request.body),
    );
  });
}
