/**
 * The HTTP application: Fastify with TypeBox schemas, request ids, problem+json errors, metrics,
 * health and readiness, and the OpenAPI document generated from the route schemas. The planes'
 * routes are added by the caller through `register`.
 */

import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  fastify,
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { Type } from 'typebox';
import packageJson from '../../package.json' with { type: 'json' };
import type { ServerConfig } from '../config/load-config.js';
import { createMetrics, type GatehouseMetrics } from './create-metrics.js';
import { createValidatorFactory } from './create-validator-factory.js';
import { genRequestId, REQUEST_ID_HEADER } from './gen-request-id.js';
import { answerClientError, handleError, handleNotFound } from './handle-error.js';
import { checkRequestValues } from './check-request-values.js';
import { problemResponses, serviceUnavailable } from './problem.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's Prometheus metrics (createMetrics). */
    metrics: GatehouseMetrics;
  }
}

/** The Fastify instance of Gatehouse, typed by its TypeBox route schemas. */
export type GatehouseApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** Pino options for the app's logger (Fastify's `logger` option when given as an object). */
export type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>;

/** Options of buildApp. */
export interface BuildAppOptions {
  config: ServerConfig;
  /** false: no logs; true or absent: pino at `config.logLevel`; an object: pino options over that. */
  logger?: boolean | LoggerOptions;
  /** Throws (or rejects) while the server cannot serve, such as before the database is open. */
  ready?: () => Promise<void> | void;
  /** Adds the planes' routes; called after the built-in routes. */
  register?: (app: GatehouseApp) => Promise<void> | void;
}

/** The route label of requests that matched no route (bounded metric cardinality). */
export const UNMATCHED_ROUTE = '(unmatched)';

const OPERATIONS_TAG = 'operations';

/**
 * Builds the app; it is not listening yet (`app.listen`, or `app.inject` in tests). Throws what
 * `register` throws.
 */
export async function buildApp(options: BuildAppOptions): Promise<GatehouseApp> {
  const { config } = options;
  const app: GatehouseApp = fastify({
    logger: loggerOptions(options.logger, config.logLevel),
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    genReqId: genRequestId,
    requestIdHeader: false,
    bodyLimit: config.bodyLimitBytes,
    // Path parameters carry names up to the engine's limits (resources: 1,024 characters).
    routerOptions: { maxParamLength: 1024 },
    trustProxy: config.trustProxy,
    schemaController: { compilersFactory: { buildValidator: createValidatorFactory() } },
    // Errors raised while routing (bad percent-encoding, over-long parameters) skip the error
    // handler unless handed to it here.
    frameworkErrors: (error, request, reply) => handleError(error, request, reply),
    // Requests Node's HTTP parser refuses (bytes outside the grammar, oversized headers) never
    // reach a route: answer them with a problem too.
    clientErrorHandler: answerClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  const metrics = createMetrics();
  app.decorate('metrics', metrics);

  // JSON only: any other media type is answered 415 rather than reaching a handler as text.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);

  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
  app.addHook('preValidation', checkRequestValues);
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.is404 ? UNMATCHED_ROUTE : (request.routeOptions.url ?? UNMATCHED_ROUTE);
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpRequestDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Gatehouse API',
        version: packageJson.version,
        description: 'Management, decision and operations endpoints of a Gatehouse server.',
      },
      servers: [{ url: config.publicUrl }],
      tags: [{ name: OPERATIONS_TAG, description: 'Health, readiness and metrics' }],
    },
  });
  // Serves its own copy of Swagger UI's assets: the reference works without network access.
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get(
    '/healthz',
    {
      schema: {
        tags: [OPERATIONS_TAG],
        summary: 'Liveness: answers as long as the process runs',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: [OPERATIONS_TAG],
        summary: 'Readiness: whether the server can serve requests now',
        response: { 200: Type.Object({ status: Type.Literal('ready') }), ...problemResponses(503) },
      },
    },
    async () => {
      try {
        await options.ready?.();
      } catch (err) {
        throw serviceUnavailable('server.not_ready', 'the server is not ready to serve requests', { cause: err });
      }
      return { status: 'ready' as const };
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: [OPERATIONS_TAG],
        summary: 'Prometheus metrics, in the text exposition format',
      },
    },
    async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );

  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await options.register?.(app);
  return app;
}

function loggerOptions(logger: BuildAppOptions['logger'], level: string): FastifyServerOptions['logger'] {
  if (logger === false) return false;
  if (logger === undefined || logger === true) return { level };
  return { level, ...logger };
}
