/**
 * fast-check generators for the agreement property tests: small but valid sets of 2–3 domains
 * (`d1`, `d2` and the subdomain `d1.x`: roles with member, group and role entries, group
 * hierarchies, delegated roles and the `assume_role` policies of their trust domains, policy
 * versions, conditions, globs with characters that must stay literal, registered resources,
 * names in upper case now and then), principals with stored attributes, and requests — half of
 * them aimed at an assertion of the world — around a few fixed instants, so that expiry is
 * exercised at, just before and just after the instant.
 */

import fc from 'fast-check';
import {
  compileCatalog,
  withBuiltins,
  type AssertionModel,
  type Catalog,
  type DomainModel,
  type GroupModel,
  type MemberEntry,
  type PolicyModel,
  type PrincipalModel,
  type ResourceModel,
  type RoleModel,
} from '@gatehouse/engine';
import type { ReferenceRequest } from './reference.js';

/** The instants member entries expire at; requests happen at, just before and just after them. */
export const INSTANTS = [
  Date.UTC(2030, 0, 1, 0, 0, 0),
  Date.UTC(2030, 0, 1, 1, 0, 0),
  Date.UTC(2030, 0, 1, 2, 0, 0),
] as const;

/**
 * Conditions assertions may carry. The first three fail to evaluate when their key is missing
 * (decision rule 5); the next two depend on the action (listing evaluates them per action).
 */
export const CONDITIONS = [
  'resource.properties.owner == subject.id',
  'context.level > 2',
  "subject.properties.dept == 'eng'",
  "action.name == 'read'",
  "action.name in ['read', 'write']",
  "now >= timestamp('2030-01-01T01:00:00Z')",
  'size(resource.id) < 2',
  "subject.type == 'user' && resource.type == 'doc'",
  "resource.name.startsWith(resource.domain + ':doc/')",
  "subject.properties.email == subject.id + '@example.com'",
  'action.properties.urgent == true',
] as const;

/**
 * Principals requests are made for: one in upper case (names are case-insensitive), a service
 * (twice as often), and `userx.a`, which `user.*` must not match.
 */
export const PRINCIPALS = [
  'user.a',
  'user.b',
  'user.ab',
  'user.x',
  'USER.A',
  'd1.svc',
  'd1.svc',
  'userx.a',
  'user.aa',
] as const;

/** Member patterns of role and group entries and of `principal` subjects. */
export const PATTERNS = [
  'user.a',
  'user.b',
  'user.ab',
  'user.*',
  '*',
  'user.a?',
  'd1.svc',
  'USER.B',
  'user.a*',
] as const;

/** Short names of the ordinary roles of every domain; a role may name the roles after it. */
export const ROLES = ['readers', 'writers', 'staff'] as const;

/** Groups of every domain: `ops` may be a subgroup of `eng`, `night` of either. */
export const GROUPS = ['eng', 'ops', 'night'] as const;

/** The delegated role's name (when a domain has one). */
export const DELEGATED = 'partner';

/** Literal and glob actions of assertions. */
export const ASSERTION_ACTIONS = ['read', 'write', 're*', '*', 'assume_role', 'READ', 'r?ad', 'r.ad'] as const;

/** Actions of requests (including an empty one: error action.invalid). */
export const REQUEST_ACTIONS = ['read', 'write', 'Read', 'rex', 'assume_role', 'delete', 'r.ad', ''] as const;

/** Ids of `doc` resources requests name and resources are registered under. */
export const DOC_IDS = ['1', 'a1', 'ab'] as const;

/** A generated set of domains and principals, valid by construction (checked with compileCatalog). */
export interface World {
  domains: DomainModel[];
  principals: PrincipalModel[];
}

/** A generated request and the instant it is made at (epoch ms). */
export interface TimedRequest extends ReferenceRequest {
  now: number;
}

/** One property-test case: a world and requests against it. */
export interface Scenario {
  world: World;
  requests: TimedRequest[];
}

/** An RFC 3339 form of an instant: UTC with `Z`, or the same instant at +01:00. */
function instantText(ms: number, offset: boolean): string {
  if (!offset) return new Date(ms).toISOString();
  return new Date(ms + 3_600_000).toISOString().replace(/\.\d{3}Z$/, '+01:00');
}

const expiresArb: fc.Arbitrary<string | undefined> = fc.option(
  fc.tuple(fc.constantFrom(...INSTANTS), fc.boolean()).map(([ms, offset]) => instantText(ms, offset)),
  { nil: undefined, freq: 2 },
);

/** Copies only the defined fields, so that models carry no `key: undefined`. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Validity fields shared by every entry: expiry, disabled, approval state. */
function entryArb(names: fc.Arbitrary<string>, groupEntry: (name: string) => boolean): fc.Arbitrary<MemberEntry> {
  return fc
    .record({
      name: names,
      expires: expiresArb,
      disabled: fc.constantFrom<boolean | undefined>(undefined, undefined, undefined, undefined, false, true),
      state: fc.constantFrom<MemberEntry['state']>(undefined, undefined, undefined, undefined, 'approved', 'pending'),
      includeSubgroups: fc.constantFrom<boolean | undefined>(undefined, true, false),
    })
    .map((e) => compact({ ...e, includeSubgroups: groupEntry(e.name) ? e.includeSubgroups : undefined }));
}

const isGroupRef = (name: string): boolean => /^[^:]+:group\./.test(name);

interface Shape {
  names: string[];
  /** Domain name → the domain its `partner` role trusts, when it has one. */
  trust: Map<string, string>;
}

const shapeArb: fc.Arbitrary<Shape> = fc.integer({ min: 2, max: 3 }).chain((n) => {
  // The third domain is a subdomain of d1: names that share a prefix must not be confused.
  const names = ['d1', 'd2', 'd1.x'].slice(0, n);
  return fc
    .tuple(
      ...names.map((d) => fc.option(fc.constantFrom(...names.filter((o) => o !== d)), { nil: undefined, freq: 3 })),
    )
    .map((trusts) => {
      const trust = new Map<string, string>();
      trusts.forEach((t, i) => {
        const d = names[i];
        if (t !== undefined && d !== undefined) trust.set(d, t);
      });
      return { names, trust };
    });
});

function rolesArb(domain: string, shape: Shape): fc.Arbitrary<RoleModel[]> {
  const groupRefs = shape.names.flatMap((d) => GROUPS.map((g) => `${d}:group.${g}`));
  const delegated = shape.trust.get(domain);
  const ordinary = ROLES.map((role, i) => {
    // Role entries only name roles after this one (and the delegated role): no cycles.
    const roleRefs = [...ROLES.slice(i + 1), ...(delegated === undefined ? [] : [DELEGATED])].map(
      (r) => `${domain}:role.${r}`,
    );
    const names = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...PATTERNS) },
      { weight: 2, arbitrary: fc.constantFrom(...groupRefs) },
      ...(roleRefs.length > 0 ? [{ weight: 2, arbitrary: fc.constantFrom(...roleRefs) }] : []),
    );
    return fc
      .array(entryArb(names, isGroupRef), { maxLength: 4 })
      .map((members): RoleModel => ({ name: role, members }));
  });
  return fc
    .tuple(...ordinary)
    .map((roles) => (delegated === undefined ? roles : [...roles, { name: DELEGATED, trust: delegated }]));
}

const groupsArb: fc.Arbitrary<GroupModel[]> = fc
  .tuple(
    fc.constantFrom<string | undefined>(undefined, 'eng'),
    fc.constantFrom<string | undefined>(undefined, 'eng', 'ops'),
    ...GROUPS.map(() =>
      fc.array(
        entryArb(fc.constantFrom(...PATTERNS), () => false),
        { maxLength: 3 },
      ),
    ),
  )
  .map(([opsParent, nightParent, engMembers, opsMembers, nightMembers]) => [
    { name: 'eng', members: engMembers ?? [] },
    compact({ name: 'ops', parent: opsParent, members: opsMembers ?? [] }),
    compact({ name: 'night', parent: nightParent, members: nightMembers ?? [] }),
  ]);

function assertionArb(domain: string, shape: Shape, roleNames: readonly string[]): fc.Arbitrary<AssertionModel> {
  const others = shape.names.filter((d) => d !== domain);
  const resources = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.constantFrom(
        `${domain}:doc/*`,
        `${domain}:doc/a?`,
        `${domain}:doc/1`,
        `${domain}:*`,
        `${domain}:doc`,
        // Every character but * and ? is literal (semantics.md "Globs").
        `${domain}:doc/a.b`,
        `${domain}:doc/[ab]`,
        `${domain}:doc/a+`,
        `${domain}:doc:*`,
        `${domain.toUpperCase()}:DOC/AB`,
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        ...others.flatMap((o) => [`${o}:role.${DELEGATED}`, `${o}:role.*`, `${o}:*`]),
        `*:role.${DELEGATED}`,
      ),
    },
  );
  const roleGlobs = [...roleNames, '*', 're*', '?taff', `${domain}:role.readers`, `${domain}:role.?r*`, 'WRITERS'];
  const groups = [...GROUPS, ...shape.names.map((d) => `${d}:group.${GROUPS[0]}`), `${domain}:group.ops`];
  const subject: fc.Arbitrary<Pick<AssertionModel, 'role' | 'group' | 'principal' | 'includeSubgroups'>> = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...roleGlobs).map((role) => ({ role })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...groups), fc.constantFrom<boolean | undefined>(undefined, true, false))
        .map(([group, includeSubgroups]) => compact({ group, includeSubgroups })),
    },
    { weight: 2, arbitrary: fc.constantFrom(...PATTERNS).map((principal) => ({ principal })) },
  );
  return fc
    .record({
      effect: fc.constantFrom<AssertionModel['effect']>('allow', 'allow', 'deny'),
      action: fc.constantFrom(...ASSERTION_ACTIONS),
      resource: resources,
      subject,
      requires: fc.oneof(
        { weight: 3, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.subarray([...roleNames, `${domain}:role.staff`], { maxLength: 2 }) },
      ),
      condition: fc.option(fc.constantFrom(...CONDITIONS, ...CONDITIONS.slice(0, 5)), { nil: undefined, freq: 2 }),
    })
    .map(({ subject: s, requires, ...rest }) =>
      compact({ ...rest, ...s, requires: requires === undefined || requires.length === 0 ? undefined : requires }),
    );
}

/** Assertions of a trust domain that let holders of its roles assume another domain's role. */
function trustAssertionArb(domain: string, shape: Shape, roleNames: readonly string[]): fc.Arbitrary<AssertionModel> {
  const trusting = [...shape.trust.entries()].filter(([, t]) => t === domain).map(([d]) => d);
  const targets = trusting.length > 0 ? trusting : shape.names.filter((d) => d !== domain);
  return fc
    .tuple(
      assertionArb(domain, shape, roleNames),
      fc.constantFrom('assume_role', '*', 'assume_*'),
      fc.constantFrom(
        ...targets.flatMap((d) => [`${d}:role.${DELEGATED}`, `${d}:role.*`, `${d}:*`, `*:role.${DELEGATED}`]),
      ),
      fc.constantFrom<AssertionModel['effect']>('allow', 'allow', 'deny'),
    )
    .map(([a, action, resource, effect]) => ({ ...a, action, resource, effect }));
}

function policiesArb(domain: string, shape: Shape, roleNames: readonly string[]): fc.Arbitrary<PolicyModel[]> {
  const assertions = fc.array(
    fc.oneof(
      { weight: 4, arbitrary: assertionArb(domain, shape, roleNames) },
      { weight: 2, arbitrary: trustAssertionArb(domain, shape, roleNames) },
    ),
    { minLength: 1, maxLength: 4 },
  );
  // One or two versions of a policy: exactly one active, or (rarely) none.
  const policy = (name: string): fc.Arbitrary<PolicyModel[]> =>
    fc
      .tuple(
        assertions,
        assertions,
        fc.constantFrom<'one' | 'one-inactive' | 'first' | 'second' | 'none'>(
          'one',
          'one',
          'first',
          'second',
          'one-inactive',
          'none',
        ),
      )
      .map(([a1, a2, shape]) => {
        switch (shape) {
          case 'one':
            return [{ name, assertions: a1 }];
          case 'one-inactive':
            return [{ name, version: '1', active: false, assertions: a1 }];
          case 'first':
            return [
              { name, version: '1', active: true, assertions: a1 },
              { name, version: '2', active: false, assertions: a2 },
            ];
          case 'second':
            return [
              { name, version: '1', active: false, assertions: a1 },
              { name, version: '2', assertions: a2 },
            ];
          case 'none':
            return [
              { name, version: '1', active: false, assertions: a1 },
              { name, version: '2', active: false, assertions: a2 },
            ];
        }
      });
  return fc.tuple(policy('p1'), fc.option(policy('p2'), { nil: undefined })).map(([p1, p2]) => [...p1, ...(p2 ?? [])]);
}

const resourcesArb: fc.Arbitrary<ResourceModel[]> = fc.subarray([...DOC_IDS]).chain((ids) =>
  fc.tuple(
    ...ids.map((id) =>
      fc
        .record({
          owner: fc.option(fc.constantFrom('user.a', 'user.b', 'user.ab'), { nil: undefined }),
          dept: fc.option(fc.constantFrom('eng', 'ops'), { nil: undefined }),
        })
        .map((properties): ResourceModel => ({ type: 'doc', id, properties: compact(properties) })),
    ),
  ),
);

function domainArb(domain: string, shape: Shape): fc.Arbitrary<DomainModel> {
  const roleNames = [...ROLES, ...(shape.trust.has(domain) ? [DELEGATED] : []), 'admin'];
  return fc
    .record({
      roles: rolesArb(domain, shape),
      groups: groupsArb,
      policies: policiesArb(domain, shape, roleNames),
      resources: resourcesArb,
      admins: fc.array(
        entryArb(fc.constantFrom(...PATTERNS), () => false),
        { maxLength: 1 },
      ),
      enabled: fc.constantFrom<boolean | undefined>(...Array<undefined>(8).fill(undefined), true, false),
    })
    .map(({ admins, enabled, ...rest }) => withBuiltins(compact({ name: domain, enabled, ...rest }), admins))
    .chain((model) => fc.constantFrom(model, model, model, model, model, shout(model)));
}

/**
 * The same domain with its names in upper case (roles, groups, references, trust, registered
 * resources; not the built-in admin role and policy): names are lower-cased when stored
 * (semantics.md "Names"), so nothing may change.
 */
function shout(model: DomainModel): DomainModel {
  const up = (text: string): string => text.toUpperCase();
  const entry = (e: MemberEntry): MemberEntry => (e.name.includes(':') ? { ...e, name: up(e.name) } : e);
  return {
    ...model,
    roles: (model.roles ?? []).map((r) =>
      r.name === 'admin'
        ? r
        : compact({
            ...r,
            name: up(r.name),
            trust: typeof r.trust === 'string' ? up(r.trust) : r.trust,
            members: r.members?.map(entry),
          }),
    ),
    groups: (model.groups ?? []).map((g) =>
      compact({
        ...g,
        name: up(g.name),
        parent: typeof g.parent === 'string' ? up(g.parent) : g.parent,
        members: g.members?.map(entry),
      }),
    ),
    policies: (model.policies ?? []).map((p) =>
      p.name === 'admin'
        ? p
        : {
            ...p,
            assertions: p.assertions.map((a) =>
              compact({
                ...a,
                group: a.group === undefined ? undefined : up(a.group),
                requires: a.requires?.map(up),
              }),
            ),
          },
    ),
    resources: (model.resources ?? []).map((r) => ({ ...r, type: up(r.type), id: up(r.id) })),
  };
}

const principalsArb: fc.Arbitrary<PrincipalModel[]> = fc.tuple(
  ...['user.a', 'user.b', 'user.ab', 'd1.svc'].map((name) =>
    fc
      .record({
        dept: fc.option(fc.constantFrom('eng', 'ops'), { nil: undefined }),
        email: fc.option(fc.constant(`${name}@example.com`), { nil: undefined }),
        shouted: fc.constantFrom(false, false, false, true),
      })
      .map(({ dept, email, shouted }): PrincipalModel =>
        compact({
          name: shouted ? name.toUpperCase() : name,
          email,
          attributes: dept === undefined ? undefined : { dept },
        }),
      ),
  ),
);

/** Worlds before the validity filter (exported to measure how many compileCatalog rejects). */
export const rawWorldArb: fc.Arbitrary<World> = shapeArb.chain((shape) =>
  fc.record({
    domains: fc.tuple(...shape.names.map((d) => domainArb(d, shape))),
    principals: principalsArb,
  }),
);

/** A world of 2–3 valid domains and their principals; invalid ones (rare) are filtered out. */
export const worldArb: fc.Arbitrary<World> = rawWorldArb.filter((w) => compileWorld(w) !== undefined);

/** Compiles a world into a central catalog; undefined when compileCatalog rejects it. */
export function compileWorld(world: World): Catalog | undefined {
  try {
    return compileCatalog(world.domains, world.principals);
  } catch {
    return undefined;
  }
}

/** The instant of a request: at, 1 ms or 1 s around one of INSTANTS, or well before/after them. */
export const nowArb: fc.Arbitrary<number> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(fc.constantFrom(...INSTANTS), fc.constantFrom(-1000, -1, 0, 0, 1, 1000)).map(([t, d]) => t + d),
  },
  { weight: 1, arbitrary: fc.constantFrom(INSTANTS[0] - 86_400_000, INSTANTS[2] + 86_400_000) },
);

/** A text its glob matches: every `*` and every `?` filled in with the given fillers. */
function instantiate(glob: string, star: string, one: string): string {
  return glob.replace(/\*/g, star).replace(/\?/g, one);
}

/**
 * A request against `world`: half of them aimed at an assertion of the world (its action and
 * resource globs filled in), so that subjects, requires and conditions are what decides; the
 * others drawn from fixed pools, with malformed and unknown resources now and then.
 */
export function requestArb(world: World): fc.Arbitrary<TimedRequest> {
  const domains = world.domains.map((d) => d.name);
  const aims = world.domains.flatMap((d) => (d.policies ?? []).flatMap((p) => p.assertions));
  const random = pooledRequestArb(domains);
  if (aims.length === 0) return random;
  const aimed = fc
    .tuple(
      random,
      fc.constantFrom(...aims),
      fc.constantFrom('', 'a', '1', 'doc/ab', 'x'),
      fc.constantFrom('a', '1', 'b'),
    )
    .map(([r, a, star, one]) => ({
      ...r,
      // A principal subject is aimed at too (any principal matches `*`).
      principal: a.principal === undefined || a.principal === '*' ? r.principal : instantiate(a.principal, 'a', 'b'),
      action: instantiate(a.action, star, one),
      resource: instantiate(a.resource, star, one),
    }));
  return fc.oneof(random, aimed);
}

/** A request with its names drawn from fixed pools over `domains`. */
function pooledRequestArb(domains: readonly string[]): fc.Arbitrary<TimedRequest> {
  const resources = fc.oneof(
    {
      weight: 12,
      arbitrary: fc.constantFrom(
        ...domains.flatMap((d) => [
          `${d}:doc/1`,
          `${d}:doc/a1`,
          `${d}:doc/ab`,
          `${d}:doc/zz`,
          `${d.toUpperCase()}:DOC/AB`,
          `${d}:doc`,
          `${d}:role.${DELEGATED}`,
          `${d}:doc/1/x`,
          `${d}:doc/axb`,
          `${d}:doc/a.b`,
          `${d}:doc/[ab]`,
          `${d}:doc/aa`,
          `${d}:doc/a+`,
          `${d}:doc:1`,
        ]),
      ),
    },
    // Errors: nothing after `:`, nothing before it, no `:`, an unknown domain.
    { weight: 1, arbitrary: fc.constantFrom('d1:', ':doc/1', 'nocolon', 'zz:doc/1') },
  );
  const actions = fc.oneof(
    { weight: 20, arbitrary: fc.constantFrom(...REQUEST_ACTIONS.filter((a) => a !== '')) },
    { weight: 1, arbitrary: fc.constant('') },
  );
  // fast-check makes some of these maps without a prototype: conditions must read them all the
  // same (agreement.regressions.test.ts).
  return fc
    .record({
      principal: fc.constantFrom(...PRINCIPALS),
      action: actions,
      resource: resources,
      context: fc.option(fc.record({ level: fc.constantFrom(1, 3) }, { requiredKeys: [] }), {
        nil: undefined,
      }),
      resourceProperties: fc.option(fc.record({ owner: fc.constantFrom('user.a', 'user.b', 'user.x') }), {
        nil: undefined,
        freq: 3,
      }),
      actionProperties: fc.option(fc.record({ urgent: fc.boolean() }), {
        nil: undefined,
        freq: 3,
      }),
      subjectProperties: fc.option(fc.record({ dept: fc.constantFrom('eng', 'ops') }), {
        nil: undefined,
        freq: 3,
      }),
      now: nowArb,
    })
    .map((r) => compact(r));
}

/** A world and a batch of requests against it. */
export const scenarioArb: fc.Arbitrary<Scenario> = worldArb.chain((world) =>
  fc.array(requestArb(world), { minLength: 5, maxLength: 30 }).map((requests) => ({ world, requests })),
);
