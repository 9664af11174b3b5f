import { describe, expect, it } from 'vitest';
import { compileCondition, isConditionProblem, type CompiledCondition, type ConditionInput } from './condition.js';

const input = (over: Partial<ConditionInput> = {}): ConditionInput => ({
  subject: { type: 'user', id: 'user.bob', principal: 'user.bob', properties: { dept: 'eng', level: 3 } },
  resource: { type: 'book', id: '7', name: 'library:book/7', domain: 'library', properties: { owner: 'user.bob' } },
  action: { name: 'update', properties: {} },
  context: { ip: '10.1.2.3' },
  nowMs: Date.parse('2026-06-01T00:00:00Z'),
  ...over,
});

function compiled(source: string): CompiledCondition {
  const c = compileCondition(source);
  if (isConditionProblem(c)) throw new Error(c.message);
  return c;
}

// semantics.md "Conditions (ABAC)".
describe('compileCondition', () => {
  it.each([
    ['resource.properties.owner == subject.id', true],
    ["subject.properties.dept == 'sales'", false],
    ['subject.properties.level >= 3', true],
    ['subject.properties.level == 3', true],
    ["context.ip.startsWith('10.')", true],
    ["now > timestamp('2026-01-01T00:00:00Z')", true],
    ["now < timestamp('2026-06-01T00:00:00Z')", false],
    ["action.name in ['read', 'update']", true],
    ["has(resource.properties.owner) && resource.type == 'book'", true],
    ['[1.0, 2.0, 3.0].exists(x, x > subject.properties.level - 1.0)', true],
    ["subject.properties.dept.upperAscii() == 'ENG'", true],
  ])('%s → %s', (source, expected) => {
    expect(compiled(source).evaluate(input())).toBe(expected);
  });

  it('reports a missing key as an evaluation error, never a silent null', () => {
    const r = compiled('resource.properties.department == "eng"').evaluate(input());
    expect(r).toEqual({ error: expect.stringContaining('department') });
  });

  it('keeps JSON numbers as CEL doubles: arithmetic with an int literal is a type error', () => {
    // CEL has no mixed int/double arithmetic; comparisons across them are defined.
    expect(compiled('subject.properties.level - 1 > 0').evaluate(input())).toHaveProperty('error');
    expect(compiled('subject.properties.level - 1.0 > 0').evaluate(input())).toBe(true);
  });

  it('reports a wrong type and a non-boolean result as errors', () => {
    expect(compiled('context.ip > 2').evaluate(input())).toHaveProperty('error');
    expect(compiled('subject.properties.level').evaluate(input())).toEqual({
      error: 'condition did not evaluate to a boolean',
    });
  });

  it('rejects syntax errors with their position', () => {
    const c = compileCondition('resource.properties.owner ==');
    expect(isConditionProblem(c)).toBe(true);
    expect(c).toMatchObject({ code: 'condition.syntax', position: { line: 1 } });
  });

  it('rejects unknown variables with their position', () => {
    const c = compileCondition('subject.id == owner');
    expect(c).toMatchObject({ code: 'condition.unknown_variable', position: { line: 1, column: 15 } });
    expect((c as { message: string }).message).toContain('"owner"');
  });

  it('rejects unknown functions', () => {
    expect(compileCondition('launch(subject.id)')).toMatchObject({ code: 'condition.unknown_function' });
  });

  it('allows comprehension variables inside macros only', () => {
    expect(isConditionProblem(compileCondition('[1].all(x, x > 0)'))).toBe(false);
    expect(compileCondition('[1].all(x, x > 0) && x > 0')).toMatchObject({ code: 'condition.unknown_variable' });
  });

  it('bounds length, size and macro nesting', () => {
    expect(compileCondition('true || '.repeat(600) + 'true')).toMatchObject({ code: 'condition.too_large' });
    const big = Array.from({ length: 300 }, (_, i) => `context.a${i} == 1`).join(' || ');
    expect(compileCondition(big)).toMatchObject({ code: 'condition.too_large' });
    const nested = '[1].all(a, [1].all(b, [1].all(c, [1].all(d, d > 0))))';
    expect(compileCondition(nested)).toMatchObject({ code: 'condition.too_large' });
  });
});
