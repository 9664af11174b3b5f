/**
 * Who may manage what (api.md §3): a management call is a Gatehouse decision like any other.
 * The object of a call in domain D is a resource of D named like the object (`D:role.readers`,
 * `D:policy.books`, `D:domain`), and the action is `read`, `create`, `update` or `delete`. Every
 * domain's built-in admin policy allows `*` on `D:*` to its admin role, so a domain's admins may
 * do everything in it; super admins (members of `sys.auth:role.admin`) may do everything
 * everywhere, decided in `sys.auth` on `sys.auth:domain/D`; a domain may grant more with its
 * own policies (e.g. `read` on `D:*` to an auditors role). Nobody else may do anything.
 */

import { decide, type Catalog } from '@gatehouse/engine';

/**
 * A management action; `bundle.read` (on `D:bundle`) fetches the domain's signed policy bundle
 * (docs/bundles.md).
 */
export type ManagementAction = 'read' | 'create' | 'update' | 'delete' | 'bundle.read';

/** The domain of super admins. */
export const SUPER_ADMIN_DOMAIN = 'sys.auth';

/** True when `principal` may do `action` on `object` (e.g. `role.readers`) of `domain` at `now`. */
export function canManage(
  catalog: Catalog,
  principal: string,
  action: ManagementAction,
  domain: string,
  object: string,
  now: Date,
): boolean {
  const inDomain = decide(catalog, { principal, action, resource: `${domain}:${object}` }, { now });
  if (inDomain.decision === 'allow') return true;
  return isSuperAdmin(catalog, principal, action, domain, now);
}

/** True when `principal` may do `action` on domain `domain` as a super admin (decided in sys.auth). */
export function isSuperAdmin(
  catalog: Catalog,
  principal: string,
  action: ManagementAction,
  domain: string,
  now: Date,
): boolean {
  return (
    decide(catalog, { principal, action, resource: `${SUPER_ADMIN_DOMAIN}:domain/${domain}` }, { now }).decision ===
    'allow'
  );
}

/**
 * May `principal` create domain `name`? A subdomain: whoever may `create` on `PARENT:domain.SUB`
 * in its parent (the parent's admins); a top-level domain: super admins only.
 */
export function canCreateDomain(catalog: Catalog, principal: string, name: string, now: Date): boolean {
  const dot = name.lastIndexOf('.');
  if (dot > 0 && canManage(catalog, principal, 'create', name.slice(0, dot), `domain.${name.slice(dot + 1)}`, now))
    return true;
  return isSuperAdmin(catalog, principal, 'create', name, now);
}
