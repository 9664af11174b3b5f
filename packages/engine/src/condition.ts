/**
 * Conditions in CEL (semantics.md "Conditions (ABAC)"), through @bufbuild/cel. A condition is
 * parsed and checked once, when its domain is compiled; errors carry the position in the
 * expression. At decision time it evaluates to true, false, or an evaluation error.
 */

import { celEnv, isCelError, parse, plan, type CelInput } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';

/** Limits on a condition: its length and the number of nodes of its syntax tree. */
export const CONDITION_LIMITS = { length: 4096, nodes: 512, nesting: 3 } as const;

/** The variables a condition may name. */
export const CONDITION_VARIABLES = ['subject', 'resource', 'action', 'context', 'now'] as const;

const TYPE_IDENTS = new Set(['int', 'uint', 'double', 'bool', 'string', 'bytes', 'list', 'map', 'null_type', 'type']);

const FUNCTIONS = new Set([
  'size',
  'contains',
  'startsWith',
  'endsWith',
  'matches',
  'int',
  'uint',
  'double',
  'string',
  'bytes',
  'bool',
  'duration',
  'timestamp',
  'type',
  'dyn',
  'getFullYear',
  'getMonth',
  'getDayOfYear',
  'getDayOfMonth',
  'getDate',
  'getDayOfWeek',
  'getHours',
  'getMinutes',
  'getSeconds',
  'getMilliseconds',
  // strings extension
  'charAt',
  'indexOf',
  'lastIndexOf',
  'lowerAscii',
  'upperAscii',
  'replace',
  'split',
  'substring',
  'trim',
  'join',
  'format',
  'strings.quote',
]);

const env = celEnv({ funcs: strings });

/** Where in the expression a problem is: 1-based line and column, 0-based offset. */
export interface ConditionPosition {
  offset: number;
  line: number;
  column: number;
}

/** A condition that failed to compile. */
export interface ConditionProblem {
  code: 'condition.syntax' | 'condition.unknown_variable' | 'condition.unknown_function' | 'condition.too_large';
  message: string;
  position?: ConditionPosition | undefined;
}

/** What a condition sees. */
export interface ConditionInput {
  subject: Record<string, unknown>;
  resource: Record<string, unknown>;
  action: Record<string, unknown>;
  context: Record<string, unknown>;
  nowMs: number;
}

/** A condition's result: true, false, or why it could not be evaluated. */
export type ConditionResult = boolean | { error: string };

/** A compiled condition. */
export interface CompiledCondition {
  readonly source: string;
  evaluate(input: ConditionInput): ConditionResult;
}

function positionAt(source: string, offset: number): ConditionPosition {
  let line = 1;
  let column = 1;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source[i] === '\n') {
      line++;
      column = 1;
    } else column++;
  }
  return { offset, line, column };
}

interface ExprNode {
  id: bigint;
  exprKind: { case: string | undefined; value?: unknown };
}

type Ast = ReturnType<typeof parse>;

/** Walks the syntax tree; returns the first problem (unknown name, too large), or undefined. */
function checkAst(source: string, ast: Ast): ConditionProblem | undefined {
  const positions = ast.sourceInfo?.positions ?? {};
  const at = (node: ExprNode): ConditionPosition | undefined => {
    const offset = (positions as Record<string, number>)[String(node.id)];
    return offset === undefined ? undefined : positionAt(source, offset);
  };
  let nodes = 0;
  const visit = (node: ExprNode, scope: ReadonlySet<string>, depth: number): ConditionProblem | undefined => {
    if (++nodes > CONDITION_LIMITS.nodes) {
      return { code: 'condition.too_large', message: `condition has more than ${CONDITION_LIMITS.nodes} nodes` };
    }
    const kind = node.exprKind;
    switch (kind.case) {
      case 'identExpr': {
        const name = (kind.value as { name: string }).name;
        if (scope.has(name) || TYPE_IDENTS.has(name) || (CONDITION_VARIABLES as readonly string[]).includes(name)) {
          return undefined;
        }
        return {
          code: 'condition.unknown_variable',
          message: `unknown variable "${name}" (known: ${CONDITION_VARIABLES.join(', ')})`,
          position: at(node),
        };
      }
      case 'selectExpr':
        return visit((kind.value as { operand: ExprNode }).operand, scope, depth);
      case 'callExpr': {
        const call = kind.value as { function: string; target?: ExprNode; args: ExprNode[] };
        const fn = call.function;
        if (!/^[_@!-]/.test(fn) && !FUNCTIONS.has(fn)) {
          return { code: 'condition.unknown_function', message: `unknown function "${fn}"`, position: at(node) };
        }
        if (call.target) {
          const p = visit(call.target, scope, depth);
          if (p) return p;
        }
        for (const arg of call.args) {
          const p = visit(arg, scope, depth);
          if (p) return p;
        }
        return undefined;
      }
      case 'listExpr':
        for (const el of (kind.value as { elements: ExprNode[] }).elements) {
          const p = visit(el, scope, depth);
          if (p) return p;
        }
        return undefined;
      case 'structExpr':
        for (const entry of (kind.value as { entries: { mapKey?: ExprNode; value?: ExprNode }[] }).entries) {
          for (const part of [entry.mapKey, entry.value]) {
            if (!part) continue;
            const p = visit(part, scope, depth);
            if (p) return p;
          }
        }
        return undefined;
      case 'comprehensionExpr': {
        if (depth >= CONDITION_LIMITS.nesting) {
          return {
            code: 'condition.too_large',
            message: `macros nested more than ${CONDITION_LIMITS.nesting} deep`,
            position: at(node),
          };
        }
        const c = kind.value as Record<string, unknown> & { iterVar: string; accuVar: string };
        const inner = new Set(scope);
        inner.add(c.iterVar);
        inner.add(c.accuVar);
        const range = visit(c.iterRange as ExprNode, scope, depth + 1);
        if (range) return range;
        for (const f of ['accuInit', 'loopCondition', 'loopStep', 'result']) {
          const p = visit(c[f] as ExprNode, inner, depth + 1);
          if (p) return p;
        }
        return undefined;
      }
      default:
        return undefined;
    }
  };
  return visit(ast.expr as unknown as ExprNode, new Set(), 0);
}

/**
 * Parses and checks a CEL condition. Returns the compiled condition, or the problem with its
 * position. Never throws.
 */
export function compileCondition(source: string): CompiledCondition | ConditionProblem {
  if (source.length > CONDITION_LIMITS.length) {
    return {
      code: 'condition.too_large',
      message: `condition is ${source.length} characters; at most ${CONDITION_LIMITS.length} are allowed`,
    };
  }
  let ast: Ast;
  try {
    ast = parse(source);
  } catch (err) {
    const e = err as { rawMessage?: string; message?: string; location?: { start?: ConditionPosition } };
    const start = e.location?.start;
    return {
      code: 'condition.syntax',
      message: e.rawMessage ?? e.message ?? 'syntax error',
      position: start ? { offset: start.offset, line: start.line, column: start.column } : undefined,
    };
  }
  const problem = checkAst(source, ast);
  if (problem) return problem;
  const program = plan(env, ast);
  return {
    source,
    evaluate(input: ConditionInput): ConditionResult {
      let result: unknown;
      try {
        result = program({
          subject: input.subject as CelInput,
          resource: input.resource as CelInput,
          action: input.action as CelInput,
          context: input.context as CelInput,
          now: timestampFromMs(input.nowMs),
        });
      } catch (err) {
        return { error: err instanceof Error ? err.message : String(err) };
      }
      if (isCelError(result)) return { error: result.message };
      if (typeof result !== 'boolean') return { error: 'condition did not evaluate to a boolean' };
      return result;
    },
  };
}

/** How deep request values are copied for conditions; deeper values are dropped. */
export const CONDITION_VALUE_DEPTH = 32;

/**
 * Copies a request-supplied value into plain objects and arrays that CEL reads as maps and lists:
 * objects without a prototype (`Object.create(null)`, some parsers) become plain objects,
 * `undefined` and functions are dropped, and nesting deeper than CONDITION_VALUE_DEPTH is cut.
 */
export function plainValue(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') {
    return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
  }
  if (depth >= CONDITION_VALUE_DEPTH) return undefined;
  if (Array.isArray(value)) return value.map((v) => plainValue(v, depth + 1) ?? null);
  if (value instanceof Date || value instanceof Uint8Array) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const v = plainValue((value as Record<string, unknown>)[key], depth + 1);
    if (v !== undefined)
      Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Copies a request-supplied map with plainValue; undefined stays undefined. */
export function plainMap(value: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  return value === undefined || value === null ? undefined : (plainValue(value) as Record<string, unknown>);
}

/** True when compileCondition returned a problem. */
export function isConditionProblem(value: CompiledCondition | ConditionProblem): value is ConditionProblem {
  return 'code' in value;
}
