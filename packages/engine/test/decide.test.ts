import { describe, expect, it } from 'vitest';
import { decide, explain, listActions, listResources, permissionsFor, resolveTokenClaims } from '@gatehouse/engine';
import { NOW, catalogFromYaml } from './fixtures.js';

const catalog = catalogFromYaml(`
users:
  - { name: alice, email: alice@example.com, attributes: { dept: eng } }
domains:
  - name: partner
    roles:
      - { name: staff, members: [user.pat] }
    groups:
      - { name: crew, members: [user.quinn] }
    policies:
      - name: delegation
        assertions:
          - { effect: allow, action: assume_role, resource: "library:role.guests", role: staff }
  - name: library
    groups:
      - { name: staff, members: [user.carol] }
      - { name: night, parent: staff, members: [user.dave] }
    roles:
      - { name: readers, members: [user.alice, { name: user.bob, expires: "2026-06-01T00:00:00Z" }, library:group.staff] }
      - { name: librarians, members: [user.carol] }
      - { name: all-staff, members: [library:role.librarians] }
      - { name: guests, trust: partner }
      - { name: crew, members: [{ name: partner:group.crew }] }
    policies:
      - name: books
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
          - { effect: deny, action: delete, resource: "library:book/rare-*", role: readers }
          - { effect: allow, action: update, resource: "library:book/*", role: readers, condition: "resource.properties.owner == subject.id" }
          - { effect: deny, action: "*", resource: "library:book/secret", role: readers, condition: "subject.properties.clearance < 3.0" }
          - { effect: allow, action: "*", resource: "library:shelf/*", group: staff, includeSubgroups: true }
          - { effect: allow, action: catalog, resource: "library:book/*", role: all-staff }
          - { effect: allow, action: read, resource: "library:report/*", role: guests }
          - { effect: allow, action: visit, resource: "library:deck/*", role: crew }
    resources:
      - { type: book, id: "42", properties: { owner: user.alice } }
`);

const ask = (principal: string, action: string, resource: string, extra: object = {}) =>
  decide(catalog, { principal, action, resource, ...extra }, { now: NOW });

// semantics.md "The decision".
describe('decide', () => {
  it('allows, denies, and says why', () => {
    expect(ask('user.alice', 'read', 'library:book/1')).toEqual({
      decision: 'allow',
      code: 'allow',
      domain: 'library',
      revision: 0,
    });
    expect(ask('user.alice', 'delete', 'library:book/rare-1')).toMatchObject({ decision: 'deny', code: 'deny' });
    expect(ask('user.alice', 'write', 'library:book/1')).toMatchObject({ decision: 'deny', code: 'no_match' });
  });

  it('answers errors as decisions of their own, with a status', () => {
    expect(ask('user.alice', '', 'library:book/1')).toMatchObject({
      decision: 'error',
      code: 'action.invalid',
      status: 400,
    });
    expect(ask('user.alice', 'read', 'library')).toMatchObject({
      decision: 'error',
      code: 'resource.invalid',
      status: 400,
    });
    expect(ask('user.alice', 'read', 'nowhere:x')).toMatchObject({
      decision: 'error',
      code: 'domain.not_found',
      status: 404,
    });
  });

  it('is case-insensitive', () => {
    expect(ask('User.Alice', 'READ', 'Library:Book/1').decision).toBe('allow');
  });

  it('uses stored resource properties, overridden by the request key by key', () => {
    expect(ask('user.alice', 'update', 'library:book/42').decision).toBe('allow');
    expect(ask('user.alice', 'update', 'library:book/42', { resourceProperties: { owner: 'user.bob' } }).decision).toBe(
      'deny',
    );
  });

  it('lets a request add subject properties but never override stored ones', () => {
    // alice has no stored clearance: the request may add it.
    expect(ask('user.alice', 'read', 'library:book/secret', { subjectProperties: { clearance: 5 } }).decision).toBe(
      'allow',
    );
    // A missing key makes the deny match (rule 5).
    expect(ask('user.alice', 'read', 'library:book/secret').code).toBe('deny');
    // Stored dept wins over the request's.
    const e = explain(
      catalog,
      { principal: 'user.alice', action: 'read', resource: 'library:book/1', subjectProperties: { dept: 'x' } },
      { now: NOW },
    );
    expect(e.decision).toBe('allow');
  });

  it('shows conditions the subject type: derived from the principal, or the one the request names', () => {
    const typed = catalogFromYaml(`
domains:
  - name: shop
    policies:
      - name: typed
        assertions:
          - { effect: allow, action: browse, resource: "shop:item/*", principal: "*", condition: "subject.type == 'user'" }
`);
    const browse = (principal: string, subjectType?: string) =>
      decide(typed, { principal, action: 'browse', resource: 'shop:item/1', subjectType }, { now: NOW }).decision;
    expect(browse('user.alice')).toBe('allow');
    expect(browse('shop.indexer')).toBe('deny');
    // A PDP evaluating a subject its directory does not know names the type the request gave.
    expect(browse('~unknown', 'user')).toBe('allow');
    expect(browse('~unknown', 'robot')).toBe('deny');
  });

  it('counts a member expiring exactly now, not 1 ms later', () => {
    expect(ask('user.bob', 'read', 'library:book/1').decision).toBe('allow');
    expect(
      decide(catalog, { principal: 'user.bob', action: 'read', resource: 'library:book/1' }, { now: NOW + 1 }).decision,
    ).toBe('deny');
  });
});

describe('explain', () => {
  it('names the deciding assertion and the direct member entry', () => {
    const d = explain(catalog, { principal: 'user.alice', action: 'read', resource: 'library:book/1' }, { now: NOW });
    expect(d.explanation.deciding).toEqual([
      {
        assertion: {
          domain: 'library',
          policy: 'books',
          index: 0,
          effect: 'allow',
          action: 'read',
          resource: 'library:book/*',
          subject: 'role:readers',
        },
        matchedAs: 'library:role.readers',
        path: [{ via: 'member', role: 'readers', entry: 'user.alice' }],
      },
    ]);
    expect(d.explanation.summary).toBe(
      'allowed by library:policy.books #0 (allow read on library:book/* to role:readers) via library:role.readers',
    );
  });

  it('shows group, subgroup, role-entry and delegation paths', () => {
    const shelf = explain(
      catalog,
      { principal: 'user.dave', action: 'dust', resource: 'library:shelf/1' },
      { now: NOW },
    );
    expect(shelf.explanation.deciding[0]!.path).toEqual([
      { via: 'subgroup', group: 'library:group.staff', subgroup: 'library:group.night' },
      { via: 'group-member', group: 'library:group.night', entry: 'user.dave' },
    ]);
    const cat = explain(
      catalog,
      { principal: 'user.carol', action: 'catalog', resource: 'library:book/1' },
      { now: NOW },
    );
    expect(cat.explanation.deciding[0]!.path).toEqual([
      { via: 'role', role: 'all-staff', member: 'librarians' },
      { via: 'member', role: 'librarians', entry: 'user.carol' },
    ]);
    const guest = explain(
      catalog,
      { principal: 'user.pat', action: 'read', resource: 'library:report/1' },
      { now: NOW },
    );
    expect(guest.explanation.deciding[0]!.path).toEqual([
      {
        via: 'trust',
        role: 'guests',
        trust: 'partner',
        policy: 'delegation',
        index: 0,
        heldRole: 'partner:role.staff',
      },
      { via: 'member', role: 'staff', entry: 'user.pat' },
    ]);
    const crew = explain(
      catalog,
      { principal: 'user.quinn', action: 'visit', resource: 'library:deck/1' },
      { now: NOW },
    );
    expect(crew.explanation.deciding[0]!.path).toEqual([
      { via: 'group', role: 'crew', group: 'partner:group.crew', includeSubgroups: false },
      { via: 'group-member', group: 'partner:group.crew', entry: 'user.quinn' },
    ]);
  });

  it('reports every condition evaluated, errors included', () => {
    const d = explain(
      catalog,
      { principal: 'user.alice', action: 'read', resource: 'library:book/secret' },
      { now: NOW },
    );
    expect(d.decision).toBe('deny');
    expect(d.explanation.conditions).toEqual([
      expect.objectContaining({ result: 'error', effect: 'matched', error: expect.stringContaining('clearance') }),
    ]);
    const u = explain(
      catalog,
      {
        principal: 'user.alice',
        action: 'update',
        resource: 'library:book/9',
        resourceProperties: { owner: 'user.bob' },
      },
      { now: NOW },
    );
    expect(u.explanation.conditions).toEqual([expect.objectContaining({ result: false, effect: 'not_matched' })]);
    expect(u.explanation.summary).toBe('denied: no assertion allows user.alice to update library:book/9');
  });

  it('never changes the answer', () => {
    for (const [p, a, r] of [
      ['user.alice', 'delete', 'library:book/rare-1'],
      ['user.dave', 'read', 'library:book/1'],
      ['user.pat', 'read', 'library:report/9'],
      ['user.nobody', 'read', 'nowhere:x'],
    ] as const) {
      const plain = decide(catalog, { principal: p, action: a, resource: r }, { now: NOW });
      const explained = explain(catalog, { principal: p, action: a, resource: r }, { now: NOW });
      expect(explained.decision).toBe(plain.decision);
      expect(explained.code).toBe(plain.code);
    }
  });
});

describe('listing', () => {
  it('lists the actions allowed on a resource, with patterns', () => {
    expect(listActions(catalog, { principal: 'user.alice', resource: 'library:book/rare-2' }, { now: NOW })).toEqual({
      actions: ['read'],
      allowPatterns: [],
      denyPatterns: [],
      conditionalPatterns: [],
    });
    expect(listActions(catalog, { principal: 'user.carol', resource: 'library:shelf/2' }, { now: NOW })).toEqual({
      actions: ['assume_role', 'catalog', 'delete', 'read', 'update', 'visit'].filter((a) => a !== 'assume_role'),
      allowPatterns: ['*'],
      denyPatterns: [],
      conditionalPatterns: [],
    });
    expect(listActions(catalog, { principal: 'user.alice', resource: 'nowhere:x' }, { now: NOW })).toMatchObject({
      error: 'domain.not_found',
    });
  });

  it('lists reachable resource patterns, paginated and complete', () => {
    const first = listResources(
      catalog,
      { principal: 'user.carol', action: 'read', domain: 'library', type: 'book' },
      { now: NOW, limit: 1 },
    );
    expect(first).toEqual({
      allow: [{ pattern: 'library:book/*', conditional: false }],
      deny: [{ pattern: 'library:book/secret', conditional: true }],
    });
    const shelf = listResources(
      catalog,
      { principal: 'user.dave', action: 'dust', domain: 'library', type: 'shelf' },
      { now: NOW },
    );
    expect(shelf).toEqual({ allow: [{ pattern: 'library:shelf/*', conditional: false }], deny: [] });
  });

  it('hands a cursor when a page is not the last', () => {
    const big = catalogFromYaml(`
domains:
  - name: d
    roles: [{ name: r, members: [user.a] }]
    policies:
      - name: p
        assertions:
${Array.from({ length: 5 }, (_, i) => `          - { effect: allow, action: read, resource: "d:doc/${i}", role: r }`).join('\n')}
`);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = listResources(
        big,
        { principal: 'user.a', action: 'read', domain: 'd', type: 'doc' },
        { now: NOW, limit: 2, cursor },
      );
      if ('error' in page) throw new Error(page.message);
      seen.push(...page.allow.map((p) => p.pattern));
      if (page.nextCursor === undefined) break;
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(['d:doc/0', 'd:doc/1', 'd:doc/2', 'd:doc/3', 'd:doc/4']);
  });
});

describe('permissionsFor (api.md PBAC claim)', () => {
  it('lists unconditional literal permissions no deny can override', () => {
    const small = catalogFromYaml(`
domains:
  - name: shop
    roles:
      - { name: clerk, members: [user.kim] }
      - { name: auditor, members: [user.kim, user.lee] }
    policies:
      - name: p
        assertions:
          - { effect: allow, action: read, resource: "shop:order/*", role: clerk }
          - { effect: allow, action: update, resource: "shop:order/42", role: clerk }
          - { effect: allow, action: refund, resource: "shop:order/7", role: clerk, condition: "context.ok == true" }
          - { effect: allow, action: "re*", resource: "shop:order/8", role: clerk }
          - { effect: allow, action: read, resource: "shop:invoice/*", role: clerk }
          - { effect: deny, action: read, resource: "shop:invoice/9?", role: auditor }
          - { effect: allow, action: ship, resource: "shop:order/9", principal: user.lee }
`);
    expect(permissionsFor(small, 'user.kim', 'shop', NOW)).toEqual([
      { order: { '*': ['read'], '42': ['read', 'update'] } },
    ]);
    expect(permissionsFor(small, 'user.lee', 'shop', NOW)).toEqual([{ order: { '9': ['ship'] } }]);
    // Every reader is a reader through groups too, so the conditional deny on book/secret
    // could override book/* for them: nothing is listed.
    expect(permissionsFor(catalog, 'user.carol', 'library', NOW)).toEqual([]);
    expect(permissionsFor(catalog, 'user.alice', 'library', NOW)).toEqual([]);
    expect(permissionsFor(catalog, 'user.alice', 'nowhere', NOW)).toEqual([]);
  });
});

describe('resolveTokenClaims', () => {
  it('lists roles and direct groups, and caps exp at the earliest expiry', () => {
    expect(resolveTokenClaims(catalog, 'user.bob', 'library', NOW)).toEqual({
      roles: ['library:role.readers'],
      groups: [],
      expiresAtMs: NOW,
    });
    expect(resolveTokenClaims(catalog, 'user.carol', 'library', NOW)).toEqual({
      roles: ['library:role.all-staff', 'library:role.librarians', 'library:role.readers'],
      groups: ['library:group.staff'],
      expiresAtMs: undefined,
    });
    expect(resolveTokenClaims(catalog, 'user.pat', 'library', NOW)?.roles).toEqual(['library:role.guests']);
    expect(resolveTokenClaims(catalog, 'user.pat', 'nowhere', NOW)).toBeUndefined();
  });
});
