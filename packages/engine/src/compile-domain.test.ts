import { describe, expect, it } from 'vitest';
import { compileDomain, compileDomainCollecting, ModelError, MODEL_LIMITS } from './compile-domain.js';
import type { DomainModel } from './model.js';

const codes = (m: DomainModel): string[] => compileDomainCollecting(m).issues.map((i) => `${i.path} ${i.code}`);

// semantics.md "Names", "Who holds a role", "The decision": what is rejected when written.
describe('compileDomain validation', () => {
  it('throws ModelError with every issue', () => {
    const bad: DomainModel = {
      name: 'Bad Name',
      roles: [{ name: 'x', members: [{ name: 'user.a', expires: 'tomorrow' }] }],
    };
    expect(() => compileDomain(bad)).toThrow(ModelError);
    try {
      compileDomain(bad);
    } catch (err) {
      expect((err as ModelError).issues.map((i) => i.code)).toEqual(['domain.invalid', 'member.invalid_expires']);
      expect((err as ModelError).message).toMatch(/^name: domain name "bad name"/);
    }
  });

  it('rejects cycles of role entries and of groups', () => {
    expect(
      codes({
        name: 'd',
        roles: [
          { name: 'a', members: [{ name: 'd:role.b' }] },
          { name: 'b', members: [{ name: 'd:role.c' }] },
          { name: 'c', members: [{ name: 'd:role.a' }] },
          { name: 's', members: [{ name: 'd:role.s' }] },
        ],
        groups: [
          { name: 'g1', parent: 'g2' },
          { name: 'g2', parent: 'g1' },
        ],
      }),
    ).toEqual([
      'groups[0].parent group.cycle',
      'groups[1].parent group.cycle',
      'roles[2].members role.cycle',
      'roles[3].members role.cycle',
    ]);
  });

  it('rejects bad member entries', () => {
    expect(
      codes({
        name: 'd',
        roles: [
          {
            name: 'r',
            members: [
              { name: 'other:role.x' },
              { name: 'd:role.nope' },
              { name: 'd:group.nope' },
              { name: 'user.a', state: 'maybe' as never },
              { name: 'user.a', includeSubgroups: true },
              { name: 'bad principal' },
            ],
          },
          { name: 'del', trust: 'd' },
        ],
        groups: [{ name: 'g', members: [{ name: 'd:group.g' }, { name: 'd:role.r' }] }],
      }),
    ).toEqual([
      'roles[1].trust role.trust_self',
      'roles[0].members[0].name member.foreign_role',
      'roles[0].members[1].name role.not_found',
      'roles[0].members[2].name group.not_found',
      'roles[0].members[3].state member.invalid_state',
      'roles[0].members[4].includeSubgroups member.invalid',
      'roles[0].members[5].name principal.invalid',
      'groups[0].members[0].name member.invalid',
      'groups[0].members[1].name member.invalid',
    ]);
  });

  it('allows at most one active version of a policy, and no duplicates', () => {
    const a = { effect: 'allow' as const, action: 'read', resource: 'd:x', principal: 'user.a' };
    expect(
      codes({
        name: 'd',
        policies: [
          { name: 'p', version: '1', assertions: [a] },
          { name: 'p', version: '2', assertions: [a] },
          { name: 'p', version: '2', active: false, assertions: [a] },
        ],
      }),
    ).toEqual(['policies[1].active policy.several_active', 'policies[2] policy.duplicate']);
  });

  it('rejects bad assertions', () => {
    expect(
      codes({
        name: 'd',
        roles: [{ name: 'r' }],
        policies: [
          {
            name: 'p',
            assertions: [
              { effect: 'permit' as never, action: 'read', resource: 'd:x', role: 'r' },
              { effect: 'allow', action: '', resource: 'd:x', role: 'r' },
              { effect: 'allow', action: 'read', resource: ':x', role: 'r' },
              { effect: 'allow', action: 'read', resource: 'd:x', role: 'r', includeSubgroups: true },
              { effect: 'allow', action: 'read', resource: 'd:x', role: 'r', requires: ['nope'] },
              { effect: 'allow', action: 'read', resource: 'd:x', group: 'nope' },
              { effect: 'allow', action: 'read', resource: 'd:x', role: 'd:group.r' },
              { effect: 'allow', action: 'read', resource: 'd:x', role: 'r*' },
              { effect: 'allow', action: 're ad', resource: 'd:x\n', role: 'R a*' },
            ],
          },
        ],
      }),
    ).toEqual([
      'policies[0].assertions[0].effect assertion.invalid_effect',
      'policies[0].assertions[1].action assertion.invalid_action',
      'policies[0].assertions[2].resource assertion.invalid_resource',
      'policies[0].assertions[3].includeSubgroups assertion.invalid',
      'policies[0].assertions[4].requires[0] role.not_found',
      'policies[0].assertions[5].group group.not_found',
      'policies[0].assertions[6].role role.invalid',
      'policies[0].assertions[8].action assertion.invalid_action',
      'policies[0].assertions[8].resource assertion.invalid_resource',
      'policies[0].assertions[8].role role.invalid',
    ]);
  });

  it('limits assertions per policy', () => {
    const many = Array.from({ length: MODEL_LIMITS.assertionsPerPolicy + 1 }, () => ({
      effect: 'allow' as const,
      action: 'read',
      resource: 'd:x',
      principal: 'user.a',
    }));
    expect(codes({ name: 'd', policies: [{ name: 'p', assertions: many }] })).toEqual([
      'policies[0].assertions limit.assertions',
    ]);
  });

  it('indexes role globs against the domain’s own roles only', () => {
    const d = compileDomain({
      name: 'd',
      roles: [{ name: 'readers' }, { name: 'reviewers' }, { name: 'admin' }],
      policies: [{ name: 'p', assertions: [{ effect: 'allow', action: 'read', resource: 'd:*', role: 're*' }] }],
    });
    expect([...d.byRole.keys()].sort()).toEqual(['readers', 'reviewers']);
  });

  it('leaves inactive versions out of the index', () => {
    const d = compileDomain({
      name: 'd',
      policies: [
        {
          name: 'p',
          version: '1',
          active: false,
          assertions: [{ effect: 'allow', action: 'read', resource: 'd:*', principal: '*' }],
        },
        {
          name: 'p',
          version: '2',
          assertions: [{ effect: 'allow', action: 'write', resource: 'd:*', principal: '*' }],
        },
      ],
    });
    expect(d.assertions.map((a) => a.action.source)).toEqual(['write']);
  });
});
