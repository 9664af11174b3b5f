/**
 * The payload of a signed policy bundle (api.md §4): a domain's roles, group hierarchy, active
 * policies and registered resources — never user membership. The server signs its RFC 8785
 * canonical form; the local engine compiles it (token mode).
 */

import { compileDomain, parseInstant, type CompiledDomain } from './compile-domain.js';
import type { AssertionModel, DomainModel, ResourceModel } from './model.js';

/** The bundle payload. */
export interface BundlePayload {
  domain: string;
  revision: number;
  issuedAt: string;
  expiresAt: string;
  /** Roles without members; delegated roles name their trust domain. */
  roles: { name: string; trust: string | null }[];
  /** The group hierarchy (no members), for `includeSubgroups` in token mode. */
  groups: { name: string; parent: string | null }[];
  /** Active policy versions only. A disabled domain's bundle has none. */
  policies: { name: string; version: string | null; assertions: AssertionModel[] }[];
  resources: ResourceModel[];
}

/**
 * Builds the bundle payload of a domain model (expected to be valid) at `issuedAt`, valid until
 * `expiresAt`. Members are dropped; inactive policy versions are left out.
 */
export function toBundlePayload(model: DomainModel, issuedAt: Date, expiresAt: Date): BundlePayload {
  const enabled = model.enabled !== false;
  return {
    domain: model.name.toLowerCase(),
    revision: model.revision ?? 0,
    issuedAt: issuedAt.toISOString(),
    expiresAt: expiresAt.toISOString(),
    roles: (model.roles ?? []).map((r) => ({
      name: r.name.toLowerCase(),
      trust: r.trust ? r.trust.toLowerCase() : null,
    })),
    groups: (model.groups ?? []).map((g) => ({
      name: g.name.toLowerCase(),
      parent: g.parent ? g.parent.toLowerCase() : null,
    })),
    policies: enabled
      ? (model.policies ?? [])
          .filter((p) => p.active !== false)
          .map((p) => ({ name: p.name.toLowerCase(), version: p.version ?? null, assertions: p.assertions }))
      : [],
    resources: model.resources ?? [],
  };
}

/**
 * Compiles a bundle payload for token mode. Throws ModelError when the payload is not a valid
 * domain, and Error when its `expiresAt` is not an RFC 3339 instant.
 */
export function compileBundle(payload: BundlePayload): CompiledDomain {
  const expiresAtMs = parseInstant(payload.expiresAt);
  if (expiresAtMs === undefined) throw new Error(`bundle expiresAt "${payload.expiresAt}" is not an RFC 3339 instant`);
  const model: DomainModel = {
    name: payload.domain,
    revision: payload.revision,
    roles: payload.roles.map((r) => ({ name: r.name, trust: r.trust })),
    groups: payload.groups.map((g) => ({ name: g.name, parent: g.parent })),
    policies: payload.policies.map((p) => ({
      name: p.name,
      version: p.version ?? undefined,
      assertions: p.assertions,
    })),
    resources: payload.resources,
  };
  return compileDomain(model, { revision: payload.revision, expiresAtMs });
}
