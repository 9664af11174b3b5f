/**
 * Names: parsing and validation of domain, principal, role, group, policy and resource names
 * (semantics.md "Names"). Every name is case-insensitive and lower-cased on the way in.
 */

/** Limits on names, in characters. */
export const NAME_LIMITS = {
  domain: 256,
  label: 64,
  shortName: 128,
  principal: 384,
  resource: 1024,
  action: 128,
} as const;

/** The reserved domains that exist from the first start. */
export const RESERVED_DOMAINS = ['sys', 'sys.auth', 'user'] as const;

/** The built-in role and policy every domain is created with. */
export const ADMIN_ROLE = 'admin';
export const ADMIN_POLICY = 'admin';

const LABEL = /^[a-z0-9_][a-z0-9_-]*$/;
const PATTERN_LABEL = /^[a-z0-9_*?][a-z0-9_*?-]*$/;

/** A problem with a name: which name, which rule it breaks, and a stable code. */
export interface NameProblem {
  code: string;
  message: string;
}

/** Thrown by the `parseX` functions of this module. */
export class NameError extends Error {
  readonly code: string;
  constructor(problem: NameProblem) {
    super(problem.message);
    this.name = 'NameError';
    this.code = problem.code;
  }
}

function dottedProblem(
  kind: string,
  name: string,
  maxLength: number,
  label: RegExp,
  labelRule: string,
): NameProblem | undefined {
  if (name.length === 0) return { code: `${kind}.invalid`, message: `${kind} name is empty` };
  if (name.length > maxLength) {
    return {
      code: `${kind}.too_long`,
      message: `${kind} name "${truncate(name)}" is ${name.length} characters; at most ${maxLength} are allowed`,
    };
  }
  for (const part of name.split('.')) {
    if (part.length > NAME_LIMITS.label || !label.test(part)) {
      return {
        code: `${kind}.invalid`,
        message:
          part.length > NAME_LIMITS.label
            ? `${kind} name "${name}": label "${truncate(part)}" is longer than ${NAME_LIMITS.label} characters`
            : `${kind} name "${name}": label "${part}" must match ${labelRule} (dot-separated labels)`,
      };
    }
  }
  return undefined;
}

/** Shortens a long name for an error message. */
export function truncate(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/** Checks a domain name (`library`, `library.archive`); returns the problem or undefined. */
export function validateDomainName(name: string): NameProblem | undefined {
  return dottedProblem('domain', name, NAME_LIMITS.domain, LABEL, '[a-z0-9_][a-z0-9_-]*');
}

/** Checks a short role, group or policy name (`readers`, `night-shift`). */
export function validateShortName(kind: 'role' | 'group' | 'policy', name: string): NameProblem | undefined {
  return dottedProblem(kind, name, NAME_LIMITS.shortName, LABEL, '[a-z0-9_][a-z0-9_-]*');
}

/** Checks a principal name (`user.alice`, `library.indexer`): at least two dotted labels. */
export function validatePrincipalName(name: string): NameProblem | undefined {
  const problem = dottedProblem('principal', name, NAME_LIMITS.principal, LABEL, '[a-z0-9_][a-z0-9_-]*');
  if (problem) return problem;
  if (!name.includes('.')) {
    return {
      code: 'principal.invalid',
      message: `principal name "${name}" must be user.<name> or <domain>.<service>`,
    };
  }
  return undefined;
}

/** Checks a principal pattern of a member entry (`user.*`, `*`, `user.joe`). */
export function validatePrincipalPattern(pattern: string): NameProblem | undefined {
  if (pattern === '*') return undefined;
  const problem = dottedProblem('principal', pattern, NAME_LIMITS.principal, PATTERN_LABEL, '[a-z0-9_*?][a-z0-9_*?-]*');
  if (problem) return problem;
  if (!pattern.includes('.') && !/[*?]/.test(pattern)) {
    return {
      code: 'principal.invalid',
      message: `principal name "${pattern}" must be user.<name> or <domain>.<service>`,
    };
  }
  return undefined;
}

/** Parses and lower-cases a domain name; throws NameError. */
export function parseDomainName(name: string): string {
  const lower = name.toLowerCase();
  const problem = validateDomainName(lower);
  if (problem) throw new NameError(problem);
  return lower;
}

/** Parses and lower-cases a principal name; throws NameError. */
export function parsePrincipalName(name: string): string {
  const lower = name.toLowerCase();
  const problem = validatePrincipalName(lower);
  if (problem) throw new NameError(problem);
  return lower;
}

/** A reference to a role, group or policy: its domain and short name. */
export interface QualifiedName {
  domain: string;
  name: string;
}

/**
 * Parses `D:role.NAME` (kind role), `D:group.NAME` or `D:policy.NAME` — or a short `NAME` when
 * `defaultDomain` is given — into domain and short name, lower-cased. Throws NameError.
 */
export function parseQualifiedName(
  kind: 'role' | 'group' | 'policy',
  text: string,
  defaultDomain?: string,
): QualifiedName {
  const lower = text.toLowerCase();
  const colon = lower.indexOf(':');
  let domain: string;
  let name: string;
  if (colon < 0) {
    if (defaultDomain === undefined) {
      throw new NameError({
        code: `${kind}.invalid`,
        message: `"${truncate(text)}" is not a full ${kind} name (expected <domain>:${kind}.<name>)`,
      });
    }
    domain = defaultDomain;
    name = lower.startsWith(`${kind}.`) ? lower.slice(kind.length + 1) : lower;
  } else {
    domain = lower.slice(0, colon);
    const rest = lower.slice(colon + 1);
    if (!rest.startsWith(`${kind}.`)) {
      throw new NameError({
        code: `${kind}.invalid`,
        message: `"${truncate(text)}" is not a ${kind} name (expected <domain>:${kind}.<name>)`,
      });
    }
    name = rest.slice(kind.length + 1);
    const dp = validateDomainName(domain);
    if (dp) throw new NameError(dp);
  }
  const np = validateShortName(kind, name);
  if (np) throw new NameError(np);
  return { domain, name };
}

/** `library` + `readers` → `library:role.readers`. */
export function roleFullName(domain: string, role: string): string {
  return `${domain}:role.${role}`;
}

/** `library` + `staff` → `library:group.staff`. */
export function groupFullName(domain: string, group: string): string {
  return `${domain}:group.${group}`;
}

/** `library` + `books` → `library:policy.books`. */
export function policyFullName(domain: string, policy: string): string {
  return `${domain}:policy.${policy}`;
}

/** A resource name split into its parts (semantics.md: `<domain>:<type>/<id>`). */
export interface ResourceParts {
  domain: string;
  entity: string;
  type: string;
  id: string;
}

/**
 * Splits a lower-cased resource name at its first `:` and the entity at its first `/`.
 * Returns undefined when there is no `:` or nothing after it (semantics.md "The decision" 1);
 * an empty domain before the `:` is returned as such (it names no domain that exists).
 */
export function splitResource(resource: string): ResourceParts | undefined {
  const colon = resource.indexOf(':');
  if (colon < 0 || colon === resource.length - 1) return undefined;
  const domain = resource.slice(0, colon);
  const entity = resource.slice(colon + 1);
  const slash = entity.indexOf('/');
  return slash < 0
    ? { domain, entity, type: entity, id: '' }
    : { domain, entity, type: entity.slice(0, slash), id: entity.slice(slash + 1) };
}

/** The kind of a member entry name: a principal pattern, a group, or a role. */
export type MemberKind = 'principal' | 'group' | 'role';

/** Tells a member entry name's kind by its form (`D:group.G`, `D:role.R`, else a principal). */
export function memberKind(name: string): MemberKind {
  const colon = name.indexOf(':');
  if (colon < 0) return 'principal';
  const rest = name.slice(colon + 1);
  if (rest.startsWith('group.')) return 'group';
  if (rest.startsWith('role.')) return 'role';
  return 'principal';
}
