/**
 * Property tests: the indexed engine (`decide`), the naive reference evaluator (test/reference.ts,
 * written from semantics.md alone), token mode (`decideToken` over bundles with the claims
 * `resolveTokenClaims` computes), `listActions` and `permissionsFor` must agree on randomly
 * generated domains and requests (semantics.md "Local engine": "this is tested by property tests
 * that generate random domains and requests and compare the two"; style.md "Tests").
 * Delegation (rule 4) is checked as docs/engine.md chooses it: only role-subject allows of the
 * trust domain delegate (the reference's default; `trustAllowSubjects: 'any'` is the other reading).
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileBundle,
  createCatalog,
  decide,
  decideToken,
  listActions,
  permissionsFor,
  resolveTokenClaims,
  toBundlePayload,
  type Catalog,
  type DecisionRequest,
} from '@gatehouse/engine';
import {
  compileWorld,
  DOC_IDS,
  REQUEST_ACTIONS,
  INSTANTS,
  scenarioArb,
  type Scenario,
  type TimedRequest,
  type World,
} from './arbitraries.js';
import { globMatches, ReferenceWorld } from './reference.js';

/** Sized so that the whole file runs well under 20 s on 2 cores; AGREEMENT_RUNS_SCALE=20 for a deep run. */
const SCALE = Number(process.env.AGREEMENT_RUNS_SCALE ?? '1');
const RUNS = {
  decide: Math.ceil(800 * SCALE),
  token: Math.ceil(400 * SCALE),
  list: Math.ceil(800 * SCALE),
  permissions: Math.ceil(300 * SCALE),
} as const;

/** Bundles are issued before and expire after every instant a request is made at. */
const BUNDLE_ISSUED_AT = new Date(INSTANTS[0] - 7 * 86_400_000);
const BUNDLE_EXPIRES_AT = new Date(INSTANTS[2] + 7 * 86_400_000);

function centralCatalog(world: World): Catalog {
  const catalog = compileWorld(world);
  if (catalog === undefined) throw new Error('the generator produced an invalid world');
  return catalog;
}

/** The local engine's catalog: every domain's signed bundle payload, compiled (no members). */
function bundleCatalog(world: World): Catalog {
  return createCatalog(
    world.domains.map((m) => compileBundle(toBundlePayload(m, BUNDLE_ISSUED_AT, BUNDLE_EXPIRES_AT))),
  );
}

function withoutNow(r: TimedRequest): DecisionRequest {
  const { now: _now, ...request } = r;
  return request;
}

function domainOf(resource: string): string {
  return resource.toLowerCase().slice(0, resource.indexOf(':'));
}

describe('agreement of the engine with the reference evaluator', () => {
  it('decide answers what the reference answers, with and without explain (semantics.md "The decision", "Who holds a role")', () => {
    fc.assert(
      fc.property(scenarioArb, ({ world, requests }: Scenario) => {
        const catalog = centralCatalog(world);
        const reference = new ReferenceWorld(world.domains, world.principals);
        for (const r of requests) {
          const request = withoutNow(r);
          const got = decide(catalog, request, { now: r.now });
          expect({ request: r, decision: got.decision, code: got.code }).toEqual({
            request: r,
            ...reference.decide(request, r.now),
          });
          // "Explaining must not change the answer."
          const explained = decide(catalog, request, { now: r.now, explain: true });
          expect({ request: r, decision: explained.decision, code: explained.code }).toEqual({
            request: r,
            decision: got.decision,
            code: got.code,
          });
        }
      }),
      { numRuns: RUNS.decide },
    );
  });

  it('a token resolves to the roles the reference says the principal holds (semantics.md "Who holds a role", rules 1–4)', () => {
    fc.assert(
      fc.property(scenarioArb, ({ world, requests }: Scenario) => {
        const catalog = centralCatalog(world);
        const reference = new ReferenceWorld(world.domains, world.principals);
        for (const r of requests) {
          for (const d of world.domains) {
            if (d.enabled === false) continue;
            const claims = resolveTokenClaims(catalog, r.principal, d.name, r.now);
            const want = reference.rolesHeld(d.name, r.principal, r.now).map((role) => `${d.name}:role.${role}`);
            expect({ principal: r.principal, domain: d.name, now: r.now, roles: claims?.roles }).toEqual({
              principal: r.principal,
              domain: d.name,
              now: r.now,
              roles: want,
            });
          }
        }
      }),
      { numRuns: RUNS.token },
    );
  });
});

describe('agreement of token mode with the central decision (semantics.md "Local engine")', () => {
  it('decideToken with the claims resolved for P allows exactly when decide allows', () => {
    fc.assert(
      fc.property(scenarioArb, ({ world, requests }: Scenario) => {
        const catalog = centralCatalog(world);
        const bundles = bundleCatalog(world);
        const reference = new ReferenceWorld(world.domains, world.principals);
        for (const r of requests) {
          const request = withoutNow(r);
          const central = decide(catalog, request, { now: r.now });
          if (central.decision === 'error') continue;
          const domain = domainOf(r.resource);
          const claims = resolveTokenClaims(catalog, r.principal, domain, r.now);
          expect(claims, `claims of ${r.principal} in ${domain}`).toBeDefined();
          if (claims === undefined) continue;
          // A token never outlives the memberships it carries; one that could not live a second is not issued.
          if (claims.expiresAtMs !== undefined && claims.expiresAtMs <= r.now + 1000) continue;
          const exp = Math.floor(Math.min(r.now + 3_600_000, claims.expiresAtMs ?? Number.POSITIVE_INFINITY) / 1000);
          // Role and group names in tokens are case-insensitive: a principal asked for in upper
          // case gets its claims in upper case too.
          const shout = r.principal !== r.principal.toLowerCase();
          const token = {
            sub: r.principal,
            domain,
            roles: shout ? claims.roles.map((x) => x.toUpperCase()) : claims.roles,
            groups: shout ? claims.groups.map((x) => x.toUpperCase()) : claims.groups,
            exp,
          };
          const options = {
            now: r.now,
            context: r.context,
            resourceProperties: r.resourceProperties,
            actionProperties: r.actionProperties,
            // What central mode sees: request properties under the stored ones.
            subjectProperties: { ...(r.subjectProperties ?? {}), ...reference.storedSubjectProperties(r.principal) },
          };
          const want = {
            allowed: central.decision === 'allow',
            status: central.decision === 'allow' ? 'ALLOW' : central.code === 'deny' ? 'DENY' : 'DENY_NO_MATCH',
          };
          const local = decideToken(bundles, token, r.action, r.resource, options);
          expect({ request: r, token, allowed: local.allowed, status: local.status }).toEqual({
            request: r,
            token,
            ...want,
          });
          // "A resource without a domain prefix means the token's domain."
          const entity = r.resource.slice(r.resource.indexOf(':') + 1);
          if (!entity.includes(':')) {
            const bare = decideToken(bundles, token, r.action, entity, options);
            expect({ request: r, token, entity, allowed: bare.allowed, status: bare.status }).toEqual({
              request: r,
              token,
              entity,
              ...want,
            });
          }
        }
      }),
      { numRuns: RUNS.token },
    );
  });
});

describe('listing agrees with the decision (semantics.md "Listing")', () => {
  it('listActions lists only allowed actions, every allowed literal action, and patterns that cover the rest and promise nothing decide denies', () => {
    fc.assert(
      fc.property(scenarioArb, ({ world, requests }: Scenario) => {
        const catalog = centralCatalog(world);
        for (const r of requests) {
          const { action: _action, ...rest } = withoutNow(r);
          const listed = listActions(catalog, rest, { now: r.now });
          const probe = decide(catalog, { ...rest, action: 'read' }, { now: r.now });
          if ('error' in listed) {
            // A listing fails exactly as a decision on the same resource does.
            expect({ request: r, error: listed.error }).toEqual({ request: r, error: probe.code });
            continue;
          }
          expect({ request: r, error: probe.decision === 'error' ? probe.code : undefined }).toEqual({
            request: r,
            error: undefined,
          });
          for (const action of listed.actions) {
            const d = decide(catalog, { ...rest, action }, { now: r.now });
            expect({ request: r, listed: action, decision: d.decision }).toEqual({
              request: r,
              listed: action,
              decision: 'allow',
            });
          }
          const model = world.domains.find((m) => m.name === domainOf(r.resource));
          const literals = new Set(
            (model?.policies ?? [])
              .filter((p) => p.active !== false)
              .flatMap((p) => p.assertions.map((a) => a.action.toLowerCase()))
              .filter((a) => !/[*?]/.test(a)),
          );
          for (const action of literals) {
            const d = decide(catalog, { ...rest, action }, { now: r.now });
            if (d.decision !== 'allow') continue;
            expect({ request: r, allowed: action, listed: listed.actions.includes(action) }).toEqual({
              request: r,
              allowed: action,
              listed: true,
            });
          }
          // Any other allowed action is covered by a reported pattern (conditional or not); and an
          // action an unconditional allow pattern covers, that no deny pattern touches, is allowed.
          // (The generated conditions that depend on the action are false for a pattern's own
          // text, so they land in conditionalPatterns.)
          for (const action of REQUEST_ACTIONS.filter((a) => a !== '').map((a) => a.toLowerCase())) {
            const d = decide(catalog, { ...rest, action }, { now: r.now });
            const covers = (patterns: readonly string[]): boolean => patterns.some((p) => globMatches(p, action));
            const covered =
              listed.actions.includes(action) || covers(listed.allowPatterns) || covers(listed.conditionalPatterns);
            const promised = covers(listed.allowPatterns) && !covers(listed.denyPatterns);
            expect({ request: r, action, listed, decision: d.decision, covered, promised }).toEqual({
              request: r,
              action,
              listed,
              decision: d.decision,
              covered: d.decision === 'allow' ? true : covered,
              promised: d.decision === 'allow' ? promised : false,
            });
          }
        }
      }),
      { numRuns: RUNS.list },
    );
  });

  it('the permissions claim is never wider than decide (api.md §1, semantics.md "The decision")', () => {
    fc.assert(
      fc.property(scenarioArb, ({ world, requests }: Scenario) => {
        const catalog = centralCatalog(world);
        for (const r of requests) {
          for (const m of world.domains) {
            const claim = permissionsFor(catalog, r.principal, m.name, r.now);
            const byType = claim[0] ?? {};
            for (const [type, byId] of Object.entries(byType)) {
              for (const [id, actions] of Object.entries(byId)) {
                // `*` stands for every id: a fresh one and every id requests and registrations use.
                const ids =
                  id === '*'
                    ? ['never-registered-7f3a', ...DOC_IDS, 'zz', 'axb', 'a.b', '[ab]', 'aa', 'a+', '1/x']
                    : [id];
                for (const one of ids) {
                  for (const action of actions) {
                    const resource = `${m.name}:${type}/${one}`;
                    const d = decide(catalog, { principal: r.principal, action, resource }, { now: r.now });
                    expect({
                      principal: r.principal,
                      now: r.now,
                      claim: `${type}/${id}:${action}`,
                      resource,
                      decision: d.decision,
                    }).toEqual({
                      principal: r.principal,
                      now: r.now,
                      claim: `${type}/${id}:${action}`,
                      resource,
                      decision: 'allow',
                    });
                  }
                }
              }
            }
          }
        }
      }),
      { numRuns: RUNS.permissions },
    );
  });
});
