/**
 * A naive reference evaluator for the decision rules of shared/design/semantics.md, written from
 * that document alone (not from the engine's algorithms) so that property tests can require the
 * indexed engine, this reference and token mode to agree. It is deliberately slow and simple:
 * every question is answered by walking the models again, with no index and no cache beyond the
 * compiled CEL programs. Only the CEL evaluation itself is shared with the engine
 * (`compileCondition`), so that both sides give conditions the same meaning.
 */

import {
  compileCondition,
  isConditionProblem,
  type CompiledCondition,
  type ConditionInput,
  type DomainModel,
  type MemberEntry,
  type PrincipalModel,
} from '@gatehouse/engine';

/** A request as the reference takes it (the fields of the central decision API). */
export interface ReferenceRequest {
  principal: string;
  action: string;
  resource: string;
  context?: Record<string, unknown> | undefined;
  resourceProperties?: Record<string, unknown> | undefined;
  subjectProperties?: Record<string, unknown> | undefined;
  actionProperties?: Record<string, unknown> | undefined;
}

/** The codes of a decision (semantics.md "The decision"). */
export type ReferenceCode =
  'allow' | 'deny' | 'no_match' | 'action.invalid' | 'resource.invalid' | 'domain.not_found' | 'domain.disabled';

/** A reference decision: the answer and why. */
export interface ReferenceDecision {
  decision: 'allow' | 'deny' | 'error';
  code: ReferenceCode;
}

/** How holding a role may be proved: all four rules, or rules 1–3 only (inside a trust domain). */
type Rules = 'all' | 'no-trust';

/** Choices the reference leaves open where semantics.md leaves room. */
export interface ReferenceOptions {
  /**
   * Which subjects of an allow `assume_role` assertion of the trust domain T delegate (rule 4).
   * `role` (default): only role subjects, as rule 4 reads ("whose role glob matches a role of T
   * that P holds by rules 1–3") and as docs/engine.md now chooses. `any`: group and principal
   * subjects delegate too. Deny `assume_role` assertions count with any subject kind either way.
   */
  trustAllowSubjects?: 'role' | 'any';
}

/**
 * Everything the reference knows, built once from the models: domains by lower-cased name and
 * the stored subject properties by lower-cased principal name.
 */
export class ReferenceWorld {
  private readonly domains = new Map<string, DomainModel>();
  private readonly principals = new Map<string, Record<string, unknown>>();
  private readonly conditions = new Map<string, CompiledCondition | undefined>();
  private readonly trustAllowSubjects: 'role' | 'any';

  /** Takes the domain models and principals; names are lower-cased here (semantics.md "Names"). */
  constructor(
    domains: readonly DomainModel[],
    principals: readonly PrincipalModel[] = [],
    options: ReferenceOptions = {},
  ) {
    this.trustAllowSubjects = options.trustAllowSubjects ?? 'role';
    for (const d of domains) this.domains.set(d.name.toLowerCase(), d);
    for (const p of principals) {
      // semantics.md "Conditions": stored attributes plus email and displayName.
      const props: Record<string, unknown> = { ...(p.attributes ?? {}) };
      if (p.email !== undefined) props.email = p.email;
      if (p.displayName !== undefined) props.displayName = p.displayName;
      this.principals.set(p.name.toLowerCase(), props);
    }
  }

  /** The stored subject properties of a principal (empty when it has none). */
  storedSubjectProperties(principal: string): Record<string, unknown> {
    return { ...(this.principals.get(principal.toLowerCase()) ?? {}) };
  }

  /** The decision for `request` at `now` (epoch ms), by semantics.md "The decision". */
  decide(request: ReferenceRequest, now: number): ReferenceDecision {
    // Rule 1: lower-case, then the errors, each an answer of its own.
    const action = request.action.toLowerCase();
    const resource = request.resource.toLowerCase();
    const principal = request.principal.toLowerCase();
    if (action === '') return { decision: 'error', code: 'action.invalid' };
    const colon = resource.indexOf(':');
    // Only "no `:`" and "nothing after it" are resource.invalid; an empty D (`:doc/1`) is a domain
    // that does not exist (domain.not_found), as the rule reads.
    if (colon < 0 || colon === resource.length - 1) return { decision: 'error', code: 'resource.invalid' };
    const domainName = resource.slice(0, colon);
    const domain = this.domains.get(domainName);
    if (domain === undefined) return { decision: 'error', code: 'domain.not_found' };
    if (domain.enabled === false) return { decision: 'error', code: 'domain.disabled' };

    // Rules 2–5: every assertion of every active policy version; deny overrides allow.
    let allowed = false;
    let denied = false;
    for (const policy of domain.policies ?? []) {
      if (policy.active === false) continue;
      for (const a of policy.assertions) {
        if (!globMatches(a.action.toLowerCase(), action) || !globMatches(a.resource.toLowerCase(), resource)) continue;
        if (!this.subjectMatches(domainName, a, principal, now, 'all')) continue;
        if (!this.holdsAll(domainName, a.requires, principal, now, 'all')) continue;
        let holds = true;
        if (a.condition !== undefined) {
          const result = this.evaluate(
            a.condition,
            this.conditionInput(domain, request, principal, action, resource, now),
          );
          // Rule 5: an error never grants (allow does not match) and never lifts a deny (deny matches).
          holds = result === 'error' ? a.effect === 'deny' : result;
        }
        if (!holds) continue;
        if (a.effect === 'deny') denied = true;
        else allowed = true;
      }
    }
    if (denied) return { decision: 'deny', code: 'deny' };
    if (allowed) return { decision: 'allow', code: 'allow' };
    return { decision: 'deny', code: 'no_match' };
  }

  /**
   * The short names of the roles of `domain` that `principal` holds at `now` (semantics.md
   * "Who holds a role", all four rules). Empty when the domain does not exist.
   */
  rolesHeld(domain: string, principal: string, now: number): string[] {
    const d = this.domains.get(domain.toLowerCase());
    if (d === undefined) return [];
    const p = principal.toLowerCase();
    return (d.roles ?? [])
      .map((r) => r.name.toLowerCase())
      .filter((r) => this.holdsRole(domain.toLowerCase(), r, p, now, 'all', new Set()))
      .sort();
  }

  // ---- conditions ----------------------------------------------------------------------------

  private evaluate(source: string, input: ConditionInput): boolean | 'error' {
    if (!this.conditions.has(source)) {
      const c = compileCondition(source);
      this.conditions.set(source, isConditionProblem(c) ? undefined : c);
    }
    const c = this.conditions.get(source);
    // A valid model never holds a condition that does not compile; treat one as an error.
    if (c === undefined) return 'error';
    const r = c.evaluate(input);
    return typeof r === 'boolean' ? r : 'error';
  }

  private conditionInput(
    domain: DomainModel,
    request: ReferenceRequest,
    principal: string,
    action: string,
    resource: string,
    now: number,
  ): ConditionInput {
    const domainName = domain.name.toLowerCase();
    const entity = resource.slice(resource.indexOf(':') + 1);
    const slash = entity.indexOf('/');
    const type = slash < 0 ? entity : entity.slice(0, slash);
    const id = slash < 0 ? '' : entity.slice(slash + 1);
    const registered = (domain.resources ?? []).find((r) => r.type.toLowerCase() === type && r.id.toLowerCase() === id);
    return {
      subject: {
        type: principal.startsWith('user.') ? 'user' : 'service',
        id: principal,
        principal,
        // A request may add subject properties but never override stored ones.
        properties: { ...plainMap(request.subjectProperties), ...plainMap(this.storedSubjectProperties(principal)) },
      },
      resource: {
        type,
        id,
        name: resource,
        domain: domainName,
        // Stored properties, overridden key by key by the request's.
        properties: { ...plainMap(registered?.properties), ...plainMap(request.resourceProperties) },
      },
      // Maps are read by their entries, whatever their prototype (a present key is never an error).
      action: { name: action, properties: plainMap(request.actionProperties) },
      context: plainMap(request.context),
      nowMs: now,
    };
  }

  // ---- subjects ------------------------------------------------------------------------------

  /** Decision rule 3's subject test, in `domain` (the assertion's own domain). */
  private subjectMatches(
    domain: string,
    a: {
      role?: string | undefined;
      group?: string | undefined;
      principal?: string | undefined;
      includeSubgroups?: boolean | undefined;
    },
    principal: string,
    now: number,
    rules: Rules,
  ): boolean {
    if (a.role !== undefined) {
      const glob = shortRoleName(domain, a.role.toLowerCase());
      const d = this.domains.get(domain);
      return (d?.roles ?? []).some(
        (r) =>
          globMatches(glob, r.name.toLowerCase()) &&
          this.holdsRole(domain, r.name.toLowerCase(), principal, now, rules, new Set()),
      );
    }
    if (a.group !== undefined) {
      const ref = parseGroupRef(domain, a.group.toLowerCase());
      return this.inGroup(ref.domain, ref.group, principal, now, a.includeSubgroups === true);
    }
    if (a.principal !== undefined) return globMatches(a.principal.toLowerCase(), principal);
    return false;
  }

  private holdsAll(
    domain: string,
    roles: readonly string[] | undefined,
    principal: string,
    now: number,
    rules: Rules,
  ): boolean {
    return (roles ?? []).every((r) =>
      this.holdsRole(domain, shortRoleName(domain, r.toLowerCase()), principal, now, rules, new Set()),
    );
  }

  // ---- who holds a role ----------------------------------------------------------------------

  private holdsRole(
    domain: string,
    role: string,
    principal: string,
    now: number,
    rules: Rules,
    seen: Set<string>,
  ): boolean {
    const key = `${domain}:role.${role}`;
    if (seen.has(key)) return false; // cycles are rejected when written; never loop here
    const d = this.domains.get(domain);
    const r = (d?.roles ?? []).find((x) => x.name.toLowerCase() === role);
    if (d === undefined || r === undefined) return false;
    if (r.trust !== undefined && r.trust !== null && r.trust !== '') {
      // Rule 4; trust is not transitive, so inside T only rules 1–3 count.
      return rules === 'all' && this.holdsByTrust(domain, role, r.trust.toLowerCase(), principal, now);
    }
    const inner = new Set(seen).add(key);
    return (r.members ?? []).some((e) => {
      if (!entryValid(e, now)) return false;
      const name = e.name.toLowerCase();
      const kind = memberKindOf(name);
      if (kind.kind === 'principal') return globMatches(name, principal); // rule 1
      if (kind.kind === 'group')
        return this.inGroup(kind.domain, kind.name, principal, now, e.includeSubgroups === true); // rule 2
      // Rule 3: a role of the same domain.
      return kind.domain === domain && this.holdsRole(domain, kind.name, principal, now, rules, inner);
    });
  }

  /**
   * Rule 4 as this project pins it down: an unconditional allow `assume_role` assertion of T on
   * R's full name whose subject (a role subject unless `trustAllowSubjects` is `any`) and
   * requires P satisfies in T by rules 1–3, and no deny (of any subject kind, conditional or not)
   * likewise. A missing or disabled T grants nothing.
   */
  private holdsByTrust(domain: string, role: string, trust: string, principal: string, now: number): boolean {
    const t = this.domains.get(trust);
    if (t === undefined || t.enabled === false) return false;
    const full = `${domain}:role.${role}`;
    let allowed = false;
    for (const policy of t.policies ?? []) {
      if (policy.active === false) continue;
      for (const a of policy.assertions) {
        if (!globMatches(a.action.toLowerCase(), 'assume_role') || !globMatches(a.resource.toLowerCase(), full))
          continue;
        if (!this.subjectMatches(trust, a, principal, now, 'no-trust')) continue;
        if (!this.holdsAll(trust, a.requires, principal, now, 'no-trust')) continue;
        if (a.effect === 'deny') return false;
        // Conditional allows never grant: there is no request to evaluate them against.
        if (a.condition === undefined && (a.role !== undefined || this.trustAllowSubjects === 'any')) allowed = true;
      }
    }
    return allowed;
  }

  /** P is a valid member of group G of domain D, or of a descendant of G when `subgroups`. */
  private inGroup(domain: string, group: string, principal: string, now: number, subgroups: boolean): boolean {
    const d = this.domains.get(domain);
    if (d === undefined || d.enabled === false) return false;
    const groups = d.groups ?? [];
    const reach = new Set<string>([group]);
    if (subgroups) {
      // Descendants: keep adding groups whose parent is already reached.
      let grew = true;
      while (grew) {
        grew = false;
        for (const g of groups) {
          const name = g.name.toLowerCase();
          const parent =
            g.parent === undefined || g.parent === null
              ? undefined
              : parseGroupRef(domain, g.parent.toLowerCase()).group;
          if (parent !== undefined && reach.has(parent) && !reach.has(name)) {
            reach.add(name);
            grew = true;
          }
        }
      }
    }
    return groups.some(
      (g) =>
        reach.has(g.name.toLowerCase()) &&
        (g.members ?? []).some(
          (e) =>
            entryValid(e, now) &&
            memberKindOf(e.name.toLowerCase()).kind === 'principal' &&
            globMatches(e.name.toLowerCase(), principal),
        ),
    );
  }
}

/** A deep copy of a JSON-like value with every map made a plain object (whatever its prototype). */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/** The same, for a map. */
function plainMap(value: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> {
  return plain(value ?? {}) as Record<string, unknown>;
}

/** Rule 1's validity of an entry: not disabled, not pending, not expired (`expires < now`). */
function entryValid(e: MemberEntry, now: number): boolean {
  if (e.disabled === true) return false;
  if (e.state === 'pending') return false;
  if (e.expires !== undefined) {
    const at = Date.parse(e.expires);
    if (Number.isNaN(at) || at < now) return false;
  }
  return true;
}

type MemberKindOf = { kind: 'principal' } | { kind: 'group' | 'role'; domain: string; name: string };

/** `D:group.G` and `D:role.R` are groups and roles; anything else is a principal pattern. */
function memberKindOf(name: string): MemberKindOf {
  const colon = name.indexOf(':');
  if (colon < 0) return { kind: 'principal' };
  const rest = name.slice(colon + 1);
  if (rest.startsWith('group.'))
    return { kind: 'group', domain: name.slice(0, colon), name: rest.slice('group.'.length) };
  if (rest.startsWith('role.')) return { kind: 'role', domain: name.slice(0, colon), name: rest.slice('role.'.length) };
  return { kind: 'principal' };
}

/** A role name (or glob) of `domain`: the short form of `D:role.X`, or the name itself. */
function shortRoleName(domain: string, name: string): string {
  const prefix = `${domain}:role.`;
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

/** A group reference: `D:group.G` (any domain), or a short name meaning `domain`'s group. */
function parseGroupRef(domain: string, name: string): { domain: string; group: string } {
  const colon = name.indexOf(':');
  if (colon < 0) return { domain, group: name };
  const rest = name.slice(colon + 1);
  return { domain: name.slice(0, colon), group: rest.startsWith('group.') ? rest.slice('group.'.length) : rest };
}

/**
 * semantics.md "Globs": `*` any run (possibly empty), `?` exactly one character, everything else
 * literal, matching the whole string. A plain dynamic-programming matcher, no regular expressions.
 */
export function globMatches(glob: string, text: string): boolean {
  // can[j]: glob[0..i) matches text[0..j)
  let can: boolean[] = new Array<boolean>(text.length + 1).fill(false);
  can[0] = true;
  for (let i = 0; i < glob.length; i++) {
    const g = glob[i];
    const next: boolean[] = new Array<boolean>(text.length + 1).fill(false);
    if (g === '*') {
      let any = false;
      for (let j = 0; j <= text.length; j++) {
        any = any || can[j] === true;
        next[j] = any;
      }
    } else {
      for (let j = 1; j <= text.length; j++) {
        next[j] = can[j - 1] === true && (g === '?' || text[j - 1] === g);
      }
    }
    can = next;
  }
  return can[text.length] === true;
}

/** One-shot form: builds a ReferenceWorld and decides `request` at `now` (epoch ms). */
export function referenceDecide(
  domains: readonly DomainModel[],
  principals: readonly PrincipalModel[],
  request: ReferenceRequest,
  now: number,
): ReferenceDecision {
  return new ReferenceWorld(domains, principals).decide(request, now);
}
