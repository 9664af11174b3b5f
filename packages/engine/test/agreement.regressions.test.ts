/**
 * Minimal counterexamples the agreement property tests (agreement.property.test.ts) found, each
 * pinned as a focused case with the rule of semantics.md it proves. The reference evaluator
 * (reference.ts) answers what these expect.
 */

import { describe, expect, it } from 'vitest';
import {
  compileBundle,
  compileCatalog,
  createCatalog,
  decide,
  decideToken,
  listActions,
  toBundlePayload,
  withBuiltins,
  type AssertionModel,
  type Catalog,
  type DomainModel,
} from '@gatehouse/engine';
import { globMatches, ReferenceWorld } from './reference.js';

const NOW = Date.UTC(2030, 0, 1);

function domainWith(assertions: AssertionModel[]): DomainModel {
  return withBuiltins({ name: 'd1', policies: [{ name: 'p1', assertions }] });
}

function catalogOf(model: DomainModel): Catalog {
  return compileCatalog([model]);
}

/** A map without a prototype, as `Object.create(null)`, `querystring.parse` and some parsers make. */
function bare(entries: Record<string, unknown>): Record<string, unknown> {
  return Object.assign(Object.create(null) as Record<string, unknown>, entries);
}

describe('request maps without a prototype (semantics.md "Conditions (ABAC)"; "The decision" 5)', () => {
  // A key that is present is never an evaluation error. Found by the property tests: the engine
  // handed `context` and `actionProperties` to CEL as they were, and CEL failed on a
  // null-prototype object ("Cannot read properties of undefined (reading 'name')"), so the allow
  // no longer matched and a deny whose condition is false matched (fixed in a649a98).
  const allowIfLevel = domainWith([
    { effect: 'allow', action: 'read', resource: 'd1:*', principal: '*', condition: 'context.level > 2' },
  ]);

  it('a condition reads a null-prototype context like a plain one (allow)', () => {
    const request = { principal: 'user.a', action: 'read', resource: 'd1:doc/1', context: bare({ level: 3 }) };
    expect(new ReferenceWorld([allowIfLevel]).decide(request, NOW)).toEqual({ decision: 'allow', code: 'allow' });
    expect(decide(catalogOf(allowIfLevel), request, { now: NOW })).toMatchObject({ decision: 'allow', code: 'allow' });
  });

  it('a deny whose condition is false on a null-prototype context does not match', () => {
    const model = domainWith([
      { effect: 'allow', action: 'read', resource: 'd1:*', principal: '*' },
      { effect: 'deny', action: 'read', resource: 'd1:*', principal: '*', condition: 'context.level > 5' },
    ]);
    const request = { principal: 'user.a', action: 'read', resource: 'd1:doc/1', context: bare({ level: 3 }) };
    expect(decide(catalogOf(model), request, { now: NOW })).toMatchObject({ decision: 'allow', code: 'allow' });
  });

  it('a nested null-prototype map inside a plain context is read too', () => {
    const model = domainWith([
      { effect: 'allow', action: 'read', resource: 'd1:*', principal: '*', condition: 'context.m.level > 2' },
    ]);
    const request = { principal: 'user.a', action: 'read', resource: 'd1:doc/1', context: { m: bare({ level: 3 }) } };
    expect(new ReferenceWorld([model]).decide(request, NOW)).toEqual({ decision: 'allow', code: 'allow' });
    expect(decide(catalogOf(model), request, { now: NOW })).toMatchObject({ decision: 'allow', code: 'allow' });
  });

  it('a condition reads null-prototype action properties like plain ones', () => {
    const model = domainWith([
      {
        effect: 'allow',
        action: 'read',
        resource: 'd1:*',
        principal: '*',
        condition: 'action.properties.urgent == true',
      },
    ]);
    const request = {
      principal: 'user.a',
      action: 'read',
      resource: 'd1:doc/1',
      actionProperties: bare({ urgent: true }),
    };
    expect(decide(catalogOf(model), request, { now: NOW })).toMatchObject({ decision: 'allow', code: 'allow' });
  });

  it('token mode and listing read a null-prototype context too', () => {
    const bundles = createCatalog([
      compileBundle(toBundlePayload(allowIfLevel, new Date(NOW - 1000), new Date(NOW + 86_400_000))),
    ]);
    const token = { sub: 'user.a', domain: 'd1', exp: NOW / 1000 + 3600 };
    expect(decideToken(bundles, token, 'read', 'd1:doc/1', { now: NOW, context: bare({ level: 3 }) }).status).toBe(
      'ALLOW',
    );
    const listed = listActions(
      catalogOf(allowIfLevel),
      { principal: 'user.a', resource: 'd1:doc/1', context: bare({ level: 3 }) },
      { now: NOW },
    );
    expect(listed).toMatchObject({ actions: ['read'] });
  });
});

describe('listing (semantics.md "Listing": every action for which the decision is allow)', () => {
  // allow `re*` on d1:* to user.b when `action.name == 'read'`: decide allows `read`, but
  // listActions evaluated the condition with action.name = "re*" (false) and dropped the
  // assertion, so `read` was neither in `actions` nor covered by any pattern (fixed in a649a98:
  // `conditionalPatterns`).
  const model = domainWith([
    { effect: 'allow', action: 're*', resource: 'd1:*', principal: 'user.b', condition: "action.name == 'read'" },
  ]);

  it('an action allowed through a conditional glob-action allow is listed or covered by a pattern', () => {
    const catalog = catalogOf(model);
    const request = { principal: 'user.b', resource: 'd1:doc/1' };
    expect(decide(catalog, { ...request, action: 'read' }, { now: NOW })).toMatchObject({ decision: 'allow' });
    expect(new ReferenceWorld([model]).decide({ ...request, action: 'read' }, NOW)).toEqual({
      decision: 'allow',
      code: 'allow',
    });
    const listed = listActions(catalog, request, { now: NOW });
    if ('error' in listed) throw new Error(listed.message);
    const covered =
      listed.actions.includes('read') ||
      listed.allowPatterns.includes('re*') ||
      listed.conditionalPatterns.includes('re*');
    expect({ listed, covered }).toEqual({ listed, covered: true });
  });

  // The same for a deny: allow `*` to user.a, deny `*` to user.a when `action.name == 'read'`.
  // decide denies `read`, but listActions evaluates the deny's condition with action.name = "*"
  // (false) and drops it: it answers allowPatterns ["*"] with no deny pattern beside it, which
  // promises `read`. The listing must not claim more than the decision allows.
  const denying = domainWith([
    { effect: 'allow', action: '*', resource: 'd1:*', principal: 'user.a' },
    { effect: 'deny', action: '*', resource: 'd1:*', principal: 'user.a', condition: "action.name == 'read'" },
  ]);

  it('a conditional glob-action deny is reported beside the allow patterns it cuts into', () => {
    const catalog = catalogOf(denying);
    const request = { principal: 'user.a', resource: 'd1:doc/1' };
    expect(decide(catalog, { ...request, action: 'read' }, { now: NOW })).toMatchObject({
      decision: 'deny',
      code: 'deny',
    });
    expect(new ReferenceWorld([denying]).decide({ ...request, action: 'read' }, NOW)).toEqual({
      decision: 'deny',
      code: 'deny',
    });
    const listed = listActions(catalog, request, { now: NOW });
    if ('error' in listed) throw new Error(listed.message);
    // `read` is promised when an allow pattern covers it and no deny pattern does.
    const promised =
      listed.allowPatterns.some((p) => globMatches(p, 'read')) &&
      !listed.denyPatterns.some((p) => globMatches(p, 'read'));
    expect({ listed, promised }).toEqual({ listed, promised: false });
  });
});
