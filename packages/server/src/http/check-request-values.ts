/**
 * Bounds on what any request may carry, checked before validation: JSON nested deeper than
 * MAX_JSON_DEPTH (free-form attributes and properties would otherwise overflow the stack where
 * they are serialised) and the NUL character anywhere (PostgreSQL text cannot hold it). The walk
 * is iterative, so no input can overflow it.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from './problem.js';

/** How deep request JSON may nest. */
export const MAX_JSON_DEPTH = 32;

/**
 * True when `root` has no value findBadValue refuses. The common case — a good request — is
 * checked without building a JSON pointer for every value (a batch of evaluations has thousands).
 */
function isClean(root: unknown): boolean {
  const values: unknown[] = [root];
  const depths: number[] = [0];
  while (values.length > 0) {
    const value = values.pop();
    const depth = depths.pop() as number;
    if (typeof value === 'string') {
      if (value.indexOf('\u0000') >= 0) return false;
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) return false;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        values.push(value[i]);
        depths.push(depth + 1);
      }
      continue;
    }
    const object = value as Record<string, unknown>;
    for (const k of Object.keys(object)) {
      if (k.indexOf('\u0000') >= 0) return false;
      values.push(object[k]);
      depths.push(depth + 1);
    }
  }
  return true;
}

/** The first problem with a request value, or undefined: `[pointer, code, message]`. */
export function findBadValue(root: unknown, base: string): [string, string, string] | undefined {
  if (isClean(root)) return undefined;
  const stack: [unknown, string, number][] = [[root, base, 0]];
  while (stack.length > 0) {
    const [value, pointer, depth] = stack.pop() as [unknown, string, number];
    if (typeof value === 'string') {
      if (value.includes('\u0000'))
        return [pointer, 'request.invalid_character', 'text may not contain the NUL character (U+0000)'];
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH)
      return [pointer, 'request.too_deep', `values may nest at most ${MAX_JSON_DEPTH} levels deep`];
    const entries: [string, unknown][] = Array.isArray(value)
      ? value.map((v, i) => [String(i), v])
      : Object.entries(value);
    for (const [k, v] of entries) {
      const p = `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (k.includes('\u0000'))
        return [p, 'request.invalid_character', 'names may not contain the NUL character (U+0000)'];
      stack.push([v, p, depth + 1]);
    }
  }
  return undefined;
}

/** A preValidation hook: 400 when the params, query or body hold a value findBadValue refuses. */
export async function checkRequestValues(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  for (const [part, value] of [
    ['/params', request.params],
    ['/query', request.query],
    ['/body', request.body],
  ] as const) {
    const bad = findBadValue(value, part);
    if (bad !== undefined) {
      const [pointer, code, message] = bad;
      throw new ProblemError({ status: 400, code, detail: message, errors: [{ pointer, code, message }] });
    }
  }
}
