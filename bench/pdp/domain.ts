/**
 * The domain the decision benchmark's server holds, and the AuthZEN requests it is asked, each
 * with the answer it must get. Everything is derived from indexes by fixed arithmetic (no
 * randomness), identically in the server child and in the parent.
 *
 * The expected answers come from the rules written here, not from the engine: a request whose
 * answer the server gets wrong stops the benchmark before anything is timed.
 *
 * Domain `acme`: 300 users in five department groups (plus an on-call subgroup of `eng`), 24
 * project roles with ~25 members each and a few cross-cutting roles, 29 policies (a CEL condition
 * on stored subject and resource properties, an owner check, a deny for contractors), 120
 * registered resources, and the PEP service `acme.gateway`, which holds `access.check` on
 * `acme:access` and asks about everyone.
 */

export const DOMAIN = 'acme';
/** The PEP's service name in the domain; its principal is `acme.gateway`. */
export const PEP_SERVICE = 'gateway';
export const PEP_PRINCIPAL = `${DOMAIN}.${PEP_SERVICE}`;

const USERS = 300;
const PROJECTS = 24;
const INVOICES = 60;
const DOCS = 60;
const DEPARTMENTS = ['eng', 'sales', 'ops', 'finance', 'support'] as const;

const pad = (n: number, width = 3): string => String(n).padStart(width, '0');

interface User {
  name: string;
  email: string;
  department: (typeof DEPARTMENTS)[number];
  /** 1–5, a stored attribute the invoice condition reads. */
  clearance: number;
  projects: number[];
  contractor: boolean;
  manager: boolean;
  auditor: boolean;
  /** In group `eng-oncall` (a subgroup of `eng`) instead of `eng` itself. */
  oncall: boolean;
}

function userAt(i: number): User {
  const name = `u${pad(i)}`;
  const department = DEPARTMENTS[i % DEPARTMENTS.length]!;
  const projects = [...new Set([i % PROJECTS, (i * 7 + 3) % PROJECTS])];
  return {
    name,
    email: `${name}@acme.example`,
    department,
    clearance: 1 + (Math.floor(i / 5) % 5),
    projects,
    contractor: i % 10 === 9,
    manager: i % 25 === 0,
    auditor: i % 50 === 1,
    oncall: department === 'eng' && i % 20 === 0,
  };
}

const users: User[] = Array.from({ length: USERS }, (_, i) => userAt(i));
const invoiceAmount = (k: number): number => (k * 2719) % 20_000;
const docOwner = (k: number): number => (k * 11) % USERS;
const projectId = (p: number): string => pad(p, 2);

/** The config file the server applies (JSON is YAML): users, then the domain with everything in it. */
export function domainConfig(pepSecret: string): string {
  const roles: object[] = [];
  for (let p = 0; p < PROJECTS; p++) {
    roles.push({
      name: `proj-${projectId(p)}`,
      members: users.filter((u) => u.projects.includes(p)).map((u) => `user.${u.name}`),
    });
  }
  const usersWhere = (f: (u: User) => boolean): string[] => users.filter(f).map((u) => `user.${u.name}`);
  roles.push(
    {
      name: 'staff',
      members: DEPARTMENTS.map((d) =>
        d === 'eng' ? { name: `${DOMAIN}:group.eng`, includeSubgroups: true } : `${DOMAIN}:group.${d}`,
      ),
    },
    { name: 'approvers', members: [`${DOMAIN}:group.finance`] },
    { name: 'auditors', members: usersWhere((u) => u.auditor) },
    { name: 'managers', members: usersWhere((u) => u.manager) },
    { name: 'contractors', members: usersWhere((u) => u.contractor) },
    { name: 'peps', members: [PEP_PRINCIPAL] },
  );
  const groups: object[] = DEPARTMENTS.map((d) => ({
    name: d,
    members: usersWhere((u) => u.department === d && !u.oncall),
  }));
  groups.push({ name: 'eng-oncall', parent: 'eng', members: usersWhere((u) => u.oncall) });

  const policies: object[] = [];
  for (let p = 0; p < PROJECTS; p++) {
    const resource = `${DOMAIN}:project/${projectId(p)}/*`;
    const role = `proj-${projectId(p)}`;
    const assertions: object[] = [
      { effect: 'allow', action: 'read', resource, role },
      { effect: 'allow', action: 'write', resource, role },
    ];
    if (p % 3 === 0) assertions.push({ effect: 'allow', action: 'comment', resource, role });
    policies.push({ name: `project-${projectId(p)}`, assertions });
  }
  policies.push(
    {
      name: 'handbook',
      assertions: [
        { effect: 'allow', action: 'read', resource: `${DOMAIN}:doc/*`, role: 'staff' },
        {
          effect: 'allow',
          action: 'update',
          resource: `${DOMAIN}:doc/*`,
          role: 'staff',
          condition: 'resource.properties.owner == subject.id',
        },
      ],
    },
    {
      name: 'finance',
      assertions: [
        {
          effect: 'allow',
          action: 'approve',
          resource: `${DOMAIN}:invoice/*`,
          role: 'approvers',
          condition: 'resource.properties.amount <= 10000 && subject.properties.clearance >= 3',
        },
        { effect: 'allow', action: 'read', resource: `${DOMAIN}:invoice/*`, role: 'auditors' },
        { effect: 'allow', action: 'read', resource: `${DOMAIN}:invoice/*`, role: 'managers' },
      ],
    },
    {
      name: 'contractors',
      assertions: [{ effect: 'deny', action: '*', resource: `${DOMAIN}:project/*/secret-*`, role: 'contractors' }],
    },
    {
      name: 'oncall',
      assertions: [{ effect: 'allow', action: 'restart', resource: `${DOMAIN}:service/*`, group: 'eng-oncall' }],
    },
    {
      name: 'pdp',
      assertions: [{ effect: 'allow', action: 'access.check', resource: `${DOMAIN}:access`, role: 'peps' }],
    },
  );

  const resources: object[] = [];
  for (let k = 0; k < INVOICES; k++) {
    resources.push({ type: 'invoice', id: `inv-${pad(k)}`, properties: { amount: invoiceAmount(k) } });
  }
  for (let k = 0; k < DOCS; k++) {
    resources.push({ type: 'doc', id: `doc-${pad(k)}`, properties: { owner: `user.${users[docOwner(k)]!.name}` } });
  }

  return JSON.stringify({
    users: users.map((u) => ({
      name: u.name,
      email: u.email,
      attributes: { department: u.department, clearance: u.clearance },
    })),
    domains: [
      {
        name: DOMAIN,
        description: 'The decision benchmark: a company with projects, documents and invoices',
        groups,
        roles,
        policies,
        resources,
        services: [{ name: PEP_SERVICE, secret: pepSecret }],
      },
    ],
  });
}

/** What the config holds, for the report. */
export const DOMAIN_SHAPE = {
  users: USERS,
  groups: DEPARTMENTS.length + 1,
  roles: PROJECTS + 6,
  policies: PROJECTS + 5,
  resources: INVOICES + DOCS,
};

// ---- requests ----------------------------------------------------------------------------------

export interface Entity {
  type: string;
  id: string;
  properties?: Record<string, unknown>;
}

/** One AuthZEN evaluation and the decision it must get. */
export interface Evaluation {
  subject: Entity;
  action: { name: string };
  resource: Entity;
  context?: Record<string, unknown>;
  expect: boolean;
  /** The subject is named by its email: the server looks it up in the store. */
  byEmail: boolean;
}

/** The decision API body of an evaluation (without the expectation). */
export function evaluationBody(e: Evaluation, extraContext?: Record<string, unknown>): Record<string, unknown> {
  const context = extraContext === undefined ? e.context : { ...e.context, ...extraContext };
  return {
    subject: e.subject,
    action: e.action,
    resource: e.resource,
    ...(context !== undefined ? { context } : {}),
  };
}

const subjectOf = (u: User, byEmail: boolean): Entity => ({ type: 'user', id: byEmail ? u.email : u.name });

/** A project the user is not in. */
const otherProject = (u: User, k: number): number => {
  for (let d = 1; ; d++) {
    const p = (u.projects[0]! + d + k) % PROJECTS;
    if (!u.projects.includes(p)) return p;
  }
};

type Kind = (u: User, k: number) => Omit<Evaluation, 'subject' | 'byEmail'> & { subject?: Entity };

/** The kinds of request, each answered by the rules of domainConfig. */
const KINDS: Kind[] = [
  // A member reads and writes a project's files.
  (u, k) => ({
    action: { name: 'read' },
    resource: { type: 'project', id: `${projectId(u.projects[k % u.projects.length]!)}/file-${k % 40}` },
    expect: true,
  }),
  (u, k) => ({
    action: { name: 'write' },
    resource: { type: 'project', id: `${projectId(u.projects[0]!)}/file-${k % 40}` },
    context: { ip: `10.0.${k % 256}.${(k * 7) % 256}` },
    expect: true,
  }),
  // Another project's file: no policy grants it.
  (u, k) => ({
    action: { name: 'read' },
    resource: { type: 'project', id: `${projectId(otherProject(u, k))}/file-${k % 40}` },
    expect: false,
  }),
  // A secret file of the user's own project: denied to contractors, allowed to the others.
  (u, k) => ({
    action: { name: 'read' },
    resource: { type: 'project', id: `${projectId(u.projects[0]!)}/secret-${k % 5}` },
    expect: !u.contractor,
  }),
  // Comments are allowed on every third project only.
  (u) => {
    const p = u.projects[u.projects.length - 1]!;
    return {
      action: { name: 'comment' },
      resource: { type: 'project', id: `${projectId(p)}/file-1` },
      expect: p % 3 === 0,
    };
  },
  // The handbook: every user is staff through a department group (on-call through the subgroup).
  (_u, k) => ({ action: { name: 'read' }, resource: { type: 'doc', id: `doc-${pad(k % DOCS)}` }, expect: true }),
  // Updating a registered document: only its owner (a condition on a stored property).
  (u, k) => {
    const doc = k % DOCS;
    const owner = users[docOwner(doc)]!;
    const mine = k % 2 === 0;
    return {
      subject: subjectOf(mine ? owner : u.name === owner.name ? users[(docOwner(doc) + 1) % USERS]! : u, false),
      action: { name: 'update' },
      resource: { type: 'doc', id: `doc-${pad(doc)}` },
      expect: mine,
    };
  },
  // Approving an invoice: finance, clearance ≥ 3 and amount ≤ 10,000 (CEL on both sides).
  (u, k) => {
    const inv = k % INVOICES;
    const approver = k % 3 !== 2;
    const who = approver ? users[3 + 5 * ((u.clearance + k) % (USERS / 5))]! : u;
    const expect = who.department === 'finance' && who.clearance >= 3 && invoiceAmount(inv) <= 10_000;
    return {
      subject: subjectOf(who, false),
      action: { name: 'approve' },
      resource: { type: 'invoice', id: `inv-${pad(inv)}` },
      expect,
    };
  },
  // Reading invoices: auditors and managers only.
  (u, k) => {
    const who = k % 2 === 0 ? users[(k % 6) * 50 + (k % 4 === 0 ? 0 : 1)]! : u;
    return {
      subject: subjectOf(who, false),
      action: { name: 'read' },
      resource: { type: 'invoice', id: `inv-${pad(k % INVOICES)}` },
      expect: who.auditor || who.manager,
    };
  },
  // Restarting a service: the on-call group only.
  (u, k) => {
    const who = k % 2 === 0 ? users[(k * 20) % USERS]! : u;
    return {
      subject: subjectOf(who, false),
      action: { name: 'restart' },
      resource: { type: 'service', id: `svc-${k % 12}` },
      expect: who.oncall,
    };
  },
];

/**
 * `count` evaluations cycling over the kinds of request with different users. Every `emailEvery`th
 * names its subject by email (0: none); every `unknownEvery`th asks about a subject the directory
 * does not know (0: none), which is also a store lookup.
 */
export function evaluations(count: number, emailEvery: number, unknownEvery: number, offset = 0): Evaluation[] {
  const out: Evaluation[] = [];
  for (let n = 0; n < count; n++) {
    const i = n + offset;
    const u = users[(i * 37 + 11) % USERS]!;
    const k = Math.floor(i / KINDS.length) + i;
    if (unknownEvery > 0 && i % unknownEvery === unknownEvery - 1) {
      out.push({
        subject: { type: 'user', id: `nobody-${i}` },
        action: { name: 'read' },
        resource: { type: 'doc', id: `doc-${pad(k % DOCS)}` },
        expect: false,
        byEmail: false,
      });
      continue;
    }
    const { subject, ...rest } = KINDS[i % KINDS.length]!(u, k);
    const byEmail = emailEvery > 0 && i % emailEvery === 0;
    const s = subject ?? subjectOf(u, false);
    const named = byEmail ? { type: 'user', id: users.find((x) => x.name === s.id)!.email } : s;
    out.push({ ...rest, subject: named, byEmail });
  }
  return out;
}

/** One evaluations request (a batch) and the decisions it must get, in order. */
export interface Batch {
  body: Record<string, unknown>;
  expect: boolean[];
}

/**
 * `count` batches of `size` items. Even batches filter a list for one subject (top-level
 * subject and action, items naming resources only; every fourth names the subject by email);
 * odd ones carry unrelated evaluations, each item complete (subjects by name).
 */
export function batches(count: number, size: number): Batch[] {
  const out: Batch[] = [];
  for (let b = 0; b < count; b++) {
    if (b % 2 === 0) {
      const u = users[(b * 53 + 7) % USERS]!;
      const items: Entity[] = [];
      const expect: boolean[] = [];
      for (let j = 0; j < size; j++) {
        const k = b * size + j;
        const pick = j % 5;
        if (pick === 0 || pick === 1) {
          items.push({ type: 'project', id: `${projectId(u.projects[j % u.projects.length]!)}/file-${k % 40}` });
          expect.push(true);
        } else if (pick === 2) {
          items.push({ type: 'project', id: `${projectId(otherProject(u, k))}/file-${k % 40}` });
          expect.push(false);
        } else if (pick === 3) {
          items.push({ type: 'project', id: `${projectId(u.projects[0]!)}/secret-${k % 5}` });
          expect.push(!u.contractor);
        } else {
          items.push({ type: 'doc', id: `doc-${pad(k % DOCS)}` });
          expect.push(true);
        }
      }
      out.push({
        body: {
          subject: subjectOf(u, b % 4 === 0),
          action: { name: 'read' },
          evaluations: items.map((resource) => ({ resource })),
        },
        expect,
      });
    } else {
      const items = evaluations(size, 0, 0, b * size);
      out.push({ body: { evaluations: items.map((e) => evaluationBody(e)) }, expect: items.map((e) => e.expect) });
    }
  }
  return out;
}
