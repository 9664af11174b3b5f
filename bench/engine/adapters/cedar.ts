import {
  preparsePolicySet,
  statefulIsAuthorized,
  type EntityJson,
  type StatefulAuthorizationCall,
} from '@cedar-policy/cedar-wasm/nodejs';
import { docName, projectName, queryResource, roleFull, type Assertion, type Dataset, type Query } from '../dataset.js';
import type { Answer, EngineAdapter } from './types.js';

const POLICY_SET_ID = 'bench';

/** Cedar text of one assertion: `permit(principal in Role::"…", action == Action::"read", resource in Project::"…");`. */
export function cedarPolicy(a: Assertion): string {
  const effect = a.effect === 'allow' ? 'permit' : 'forbid';
  const principal = `principal in Role::"${roleFull(a.tenant, a.role)}"`;
  const action = a.action === '*' ? 'action' : `action == Action::"${a.action}"`;
  // `tenantN:projectM/*` is every document whose parent is the project; a document is itself.
  const resource =
    a.doc === null
      ? `resource in Project::"${projectName(a.tenant, a.project)}"`
      : `resource == Doc::"${docName(a.tenant, a.project, a.doc)}"`;
  return `${effect}(${principal}, ${action}, ${resource});`;
}

/**
 * Cedar 4.13 (wasm), stateful API: the policy set is parsed once (preparsePolicySet) and each
 * request carries its entities: the user with its roles as parents, the document with its project.
 */
export class CedarAdapter implements EngineAdapter {
  private text: string | undefined;
  private loaded = false;

  build(ds: Dataset): void {
    this.text = ds.assertions.map(cedarPolicy).join('\n');
  }

  async load(): Promise<void> {
    const answer = preparsePolicySet(POLICY_SET_ID, { staticPolicies: this.text ?? '' });
    if (answer.type !== 'success') {
      throw new Error(`cedar: ${answer.errors.map((e) => e.message).join('; ')}`);
    }
    this.loaded = true;
    this.text = undefined;
  }

  prepare(ds: Dataset, queries: readonly Query[]): (i: number) => Answer {
    if (!this.loaded) throw new Error('cedar: not loaded');
    const calls: StatefulAuthorizationCall[] = queries.map((q) => {
      const user = ds.users[q.user]!;
      const resource = queryResource(q);
      const entities: EntityJson[] = [
        {
          uid: { type: 'User', id: user.name },
          attrs: {},
          parents: user.roles.map((r) => ({ type: 'Role', id: roleFull(r.tenant, r.role) })),
        },
        {
          uid: { type: 'Doc', id: resource },
          attrs: {},
          parents: [{ type: 'Project', id: projectName(q.tenant, q.project) }],
        },
      ];
      return {
        principal: { type: 'User', id: user.name },
        action: { type: 'Action', id: q.action },
        resource: { type: 'Doc', id: resource },
        context: {},
        preparsedPolicySetId: POLICY_SET_ID,
        entities,
      };
    });
    return (i) => {
      const answer = statefulIsAuthorized(calls[i]!);
      if (answer.type !== 'success') throw new Error(`cedar: ${answer.errors.map((e) => e.message).join('; ')}`);
      return answer.response.decision === 'allow' ? 'A' : 'D';
    };
  }
}
