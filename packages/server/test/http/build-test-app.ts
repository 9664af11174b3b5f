import { Type } from 'typebox';
import { loadConfig } from '../../src/config/load-config.js';
import { buildApp, type BuildAppOptions, type GatehouseApp } from '../../src/http/build-app.js';
import { notFound, problemResponses } from '../../src/http/problem.js';

/** The test route's body: unknown fields refused, a bounded name, an optional positive size. */
export const widgetSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 10 }),
    size: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);

/** Routes that exercise the error handler; added after the built-in ones. */
export function registerTestRoutes(app: GatehouseApp): void {
  app.post(
    '/test/widgets',
    { schema: { body: widgetSchema, response: { 201: widgetSchema, ...problemResponses(400, 413, 415) } } },
    async (request, reply) => reply.code(201).send(request.body),
  );
  app.get(
    '/test/widgets/:id',
    {
      schema: {
        params: Type.Object({ id: Type.Integer() }),
        querystring: Type.Object({ verbose: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      },
    },
    async (request) => {
      if (request.params.id === 404) throw notFound('widget.not_found', 'widget 404 does not exist');
      return { id: request.params.id, verbose: request.query.verbose ?? false };
    },
  );
  app.get('/test/boom', async () => {
    throw new Error('query failed: password=hunter2', { cause: new Error('connection reset') });
  });
}

/** An app with a 1 KiB body limit, no logs unless asked, and the test routes. */
export async function buildTestApp(options: Partial<BuildAppOptions> = {}): Promise<GatehouseApp> {
  return buildApp({
    config: loadConfig({ GATEHOUSE_BODY_LIMIT_BYTES: '1024' }),
    logger: false,
    ...options,
    async register(app) {
      registerTestRoutes(app);
      await options.register?.(app);
    },
  });
}

/** A pino destination that keeps every log line, parsed. */
export function captureLogs(): { lines: Record<string, unknown>[]; stream: { write(line: string): void } } {
  const lines: Record<string, unknown>[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } };
}
