/**
 * How request schemas are enforced (ajv, through Fastify's own compiler). Fastify's defaults
 * quietly drop unknown fields (`removeAdditional`) and coerce types everywhere; ours refuse unknown
 * fields where a schema says `additionalProperties: false`, never coerce a JSON body (`"1"` is not
 * `1`), and report every failing field rather than the first. Query strings, path parameters and
 * headers are text on the wire, so they are still coerced to the types their schemas declare.
 */

import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';

type ValidatorFactory = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator']
>;

/** What @fastify/ajv-compiler's pool returns at run time (its typings describe a plain ajv compile). */
type RouteValidatorCompiler = (route: { schema: unknown; method: string; url: string; httpPart?: string }) => unknown;

type AjvPoolOptions = Parameters<ReturnType<typeof AjvCompiler>>[1];

const SHARED_OPTIONS = {
  removeAdditional: false,
  useDefaults: true,
  // Every failing field is reported. The body limit bounds the work; schemas should still bound
  // their arrays with maxItems, and the problem lists at most MAX_FIELD_ERRORS of them.
  allErrors: true,
} as const;

/**
 * A Fastify `schemaController.compilersFactory.buildValidator`: one ajv instance for bodies
 * (no coercion) and one for the other parts (coercion), both with the app's shared schemas.
 */
export function createValidatorFactory(): ValidatorFactory {
  const pool = AjvCompiler();
  const build = ((externalSchemas: Parameters<typeof pool>[0], serverOptions: AjvPoolOptions) => {
    const base = serverOptions ?? {};
    const compilerFor = (coerceTypes: false | 'array') =>
      pool(externalSchemas, {
        ...base,
        customOptions: { ...base.customOptions, ...SHARED_OPTIONS, coerceTypes },
      } as AjvPoolOptions) as unknown as RouteValidatorCompiler;
    const body = compilerFor(false);
    const other = compilerFor('array');
    return ((route: Parameters<RouteValidatorCompiler>[0]) =>
      route.httpPart === 'body' ? body(route) : other(route)) as unknown as ReturnType<typeof pool>;
  }) as ValidatorFactory;
  return build;
}
