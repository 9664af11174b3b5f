/**
 * The management API routes (`/v1`, api.md §3). Each handler parses (the schemas do it), calls one
 * ManagementService function, and maps the result: `ETag` = revision, `If-Match` → expected
 * revision (412 when stale), cursor-paginated lists, problem+json errors (one error handler).
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import type { GatehouseApp } from '../http/build-app.js';
import { badRequest, problemResponses, ProblemError } from '../http/problem.js';
import type { Caller, ManagementService } from './management-service.js';

/** Turns a request into its caller: verifies the bearer token (401 problem when it cannot). */
export type Authenticate = (request: FastifyRequest) => Promise<Caller>;

const name = (maxLength: number) => Type.String({ minLength: 1, maxLength });
const DomainName = name(256);
const ShortName = name(128);
const Description = Type.Union([Type.String({ maxLength: 1024 }), Type.Null()]);
const Attributes = Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), { maxProperties: 100 });

const MemberEntry = Type.Object(
  {
    name: name(384),
    expires: Type.Optional(Type.String({ format: 'date-time', maxLength: 64 })),
    disabled: Type.Optional(Type.Boolean()),
    state: Type.Optional(Type.Union([Type.Literal('approved'), Type.Literal('pending')])),
    includeSubgroups: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const Members = Type.Array(MemberEntry, { maxItems: 10_000 });

const Assertion = Type.Object(
  {
    effect: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
    action: name(128),
    resource: name(1024),
    role: Type.Optional(name(384)),
    group: Type.Optional(name(384)),
    principal: Type.Optional(name(384)),
    includeSubgroups: Type.Optional(Type.Boolean()),
    requires: Type.Optional(Type.Array(name(384), { maxItems: 16 })),
    condition: Type.Optional(Type.String({ maxLength: 4096 })),
  },
  { additionalProperties: false },
);

const Timestamps = { revision: Type.Integer(), createdAt: Type.String(), updatedAt: Type.String() };
const DomainRecord = Type.Object({
  name: Type.String(),
  description: Description,
  enabled: Type.Boolean(),
  attributes: Attributes,
  ...Timestamps,
});
const RoleRecord = Type.Object({
  domain: Type.String(),
  name: Type.String(),
  description: Description,
  trust: Type.Union([Type.String(), Type.Null()]),
  members: Members,
  ...Timestamps,
});
const GroupRecord = Type.Object({
  domain: Type.String(),
  name: Type.String(),
  description: Description,
  parent: Type.Union([Type.String(), Type.Null()]),
  members: Members,
  ...Timestamps,
});
const PolicyRecord = Type.Object({
  domain: Type.String(),
  name: Type.String(),
  version: Type.Union([Type.String(), Type.Null()]),
  active: Type.Boolean(),
  description: Description,
  assertions: Type.Array(Assertion),
  ...Timestamps,
});
const AuditEvent = Type.Object({
  seq: Type.Integer(),
  at: Type.String(),
  actor: Type.String(),
  action: Type.String(),
  domain: Type.Union([Type.String(), Type.Null()]),
  objectType: Type.String(),
  objectName: Type.String(),
  before: Type.Unknown(),
  after: Type.Unknown(),
  requestId: Type.Union([Type.String(), Type.Null()]),
  hash: Type.String(),
});

const page = <T extends Parameters<typeof Type.Array>[0]>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Optional(Type.String()) });
const ListQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ maxLength: 1024 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  },
  { additionalProperties: false },
);
const DomainParams = Type.Object({ domain: DomainName });
const NamedParams = Type.Object({ domain: DomainName, name: ShortName });
const MemberParams = Type.Object({ domain: DomainName, name: ShortName, member: name(384) });
const IfMatch = Type.Object({ 'if-match': Type.Optional(Type.String({ maxLength: 64 })) });

/** `If-Match: "3"` → 3; absent or `*` → undefined (RFC 9110 §13.1.1); anything else → 400. */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const m = /^\s*(?:W\/)?"(\d{1,15})"\s*$/.exec(header);
  if (!m)
    throw badRequest(
      'request.invalid_if_match',
      `If-Match must be an ETag this server handed out (like "3"), not ${JSON.stringify(header)}`,
    );
  return Number(m[1]);
}

function withEtag<T extends { revision: number }>(reply: FastifyReply, record: T): T {
  void reply.header('etag', `"${record.revision}"`);
  return record;
}

const TAGS = { domains: ['domains'], roles: ['roles'], groups: ['groups'], policies: ['policies'], audit: ['audit'] };
const errors = problemResponses(400, 401, 403, 404, 409, 412, 413);

/** Registers every management route under /v1. */
export function registerManagementRoutes(
  app: GatehouseApp,
  service: ManagementService,
  authenticate: Authenticate,
): void {
  // ---- domains ---------------------------------------------------------------------------------
  app.get(
    '/v1/domains',
    {
      schema: {
        tags: TAGS.domains,
        querystring: Type.Object(
          { ...ListQuery.properties, parent: Type.Optional(DomainName) },
          { additionalProperties: false },
        ),
        response: { 200: page(DomainRecord), ...errors },
      },
    },
    async (request) => service.listDomains(await authenticate(request), request.query),
  );
  const CreateDomain = Type.Object(
    {
      name: DomainName,
      description: Type.Optional(Description),
      enabled: Type.Optional(Type.Boolean()),
      attributes: Type.Optional(Attributes),
      admins: Type.Optional(Members),
    },
    { additionalProperties: false },
  );
  app.post(
    '/v1/domains',
    { schema: { tags: TAGS.domains, body: CreateDomain, response: { 201: DomainRecord, ...errors } } },
    async (request, reply) => {
      const record = await service.createDomain(await authenticate(request), request.body);
      return reply.code(201).header('location', `/v1/domains/${record.name}`).send(withEtag(reply, record));
    },
  );
  app.get(
    '/v1/domains/:domain',
    { schema: { tags: TAGS.domains, params: DomainParams, response: { 200: DomainRecord, ...errors } } },
    async (request, reply) =>
      withEtag(reply, await service.getDomain(await authenticate(request), request.params.domain)),
  );
  const PatchDomain = Type.Object(
    {
      description: Type.Optional(Description),
      enabled: Type.Optional(Type.Boolean()),
      attributes: Type.Optional(Attributes),
    },
    { additionalProperties: false },
  );
  app.patch(
    '/v1/domains/:domain',
    {
      schema: {
        tags: TAGS.domains,
        params: DomainParams,
        headers: IfMatch,
        body: PatchDomain,
        response: { 200: DomainRecord, ...errors },
      },
    },
    async (request, reply) =>
      withEtag(
        reply,
        await service.updateDomain(
          await authenticate(request),
          request.params.domain,
          request.body,
          parseIfMatch(request.headers['if-match']),
        ),
      ),
  );
  app.delete(
    '/v1/domains/:domain',
    {
      schema: { tags: TAGS.domains, params: DomainParams, headers: IfMatch, response: { 204: Type.Null(), ...errors } },
    },
    async (request, reply) => {
      await service.deleteDomain(
        await authenticate(request),
        request.params.domain,
        parseIfMatch(request.headers['if-match']),
      );
      return reply.code(204).send(null);
    },
  );

  // ---- roles and groups ------------------------------------------------------------------------
  for (const kind of ['role', 'group'] as const) {
    const plural = `${kind}s` as const;
    const Record = kind === 'role' ? RoleRecord : GroupRecord;
    const Body = Type.Object(
      kind === 'role'
        ? {
            description: Type.Optional(Description),
            trust: Type.Optional(Type.Union([DomainName, Type.Null()])),
            members: Type.Optional(Members),
          }
        : {
            description: Type.Optional(Description),
            parent: Type.Optional(Type.Union([ShortName, Type.Null()])),
            members: Type.Optional(Members),
          },
      { additionalProperties: false },
    );
    const Create = Type.Object({ name: ShortName, ...Body.properties }, { additionalProperties: false });
    type CreateBody = Static<typeof Create> & { name: string };
    app.get(
      `/v1/domains/:domain/${plural}`,
      {
        schema: {
          tags: TAGS[plural],
          params: DomainParams,
          querystring: ListQuery,
          response: { 200: page(Record), ...errors },
        },
      },
      async (request) => {
        const caller = await authenticate(request);
        return kind === 'role'
          ? service.listRoles(caller, request.params.domain, request.query)
          : service.listGroups(caller, request.params.domain, request.query);
      },
    );
    app.post(
      `/v1/domains/:domain/${plural}`,
      { schema: { tags: TAGS[plural], params: DomainParams, body: Create, response: { 201: Record, ...errors } } },
      async (request, reply) => {
        const caller = await authenticate(request);
        const body = request.body as CreateBody;
        const record =
          kind === 'role'
            ? await service.createRole(caller, request.params.domain, body)
            : await service.createGroup(caller, request.params.domain, body);
        return reply
          .code(201)
          .header('location', `/v1/domains/${record.domain}/${plural}/${record.name}`)
          .send(withEtag(reply, record));
      },
    );
    app.get(
      `/v1/domains/:domain/${plural}/:name`,
      { schema: { tags: TAGS[plural], params: NamedParams, response: { 200: Record, ...errors } } },
      async (request, reply) => {
        const caller = await authenticate(request);
        const { domain, name: n } = request.params;
        return withEtag(
          reply,
          kind === 'role' ? await service.getRole(caller, domain, n) : await service.getGroup(caller, domain, n),
        );
      },
    );
    app.put(
      `/v1/domains/:domain/${plural}/:name`,
      {
        schema: {
          tags: TAGS[plural],
          params: NamedParams,
          headers: IfMatch,
          body: Body,
          response: { 200: Record, ...errors },
        },
      },
      async (request, reply) => {
        const caller = await authenticate(request);
        const { domain, name: n } = request.params;
        const ifMatch = parseIfMatch(request.headers['if-match']);
        return withEtag(
          reply,
          kind === 'role'
            ? await service.replaceRole(caller, domain, n, request.body, ifMatch)
            : await service.replaceGroup(caller, domain, n, request.body, ifMatch),
        );
      },
    );
    app.delete(
      `/v1/domains/:domain/${plural}/:name`,
      {
        schema: {
          tags: TAGS[plural],
          params: NamedParams,
          headers: IfMatch,
          response: { 204: Type.Null(), ...errors },
        },
      },
      async (request, reply) => {
        const caller = await authenticate(request);
        const { domain, name: n } = request.params;
        const ifMatch = parseIfMatch(request.headers['if-match']);
        if (kind === 'role') await service.deleteRole(caller, domain, n, ifMatch);
        else await service.deleteGroup(caller, domain, n, ifMatch);
        return reply.code(204).send(null);
      },
    );
    app.post(
      `/v1/domains/:domain/${plural}/:name/members`,
      {
        schema: {
          tags: TAGS[plural],
          params: NamedParams,
          headers: IfMatch,
          body: MemberEntry,
          response: { 200: Record, ...errors },
        },
      },
      async (request, reply) => {
        const { domain, name: n } = request.params;
        const record = await service.putMember(
          await authenticate(request),
          kind,
          domain,
          n,
          request.body,
          parseIfMatch(request.headers['if-match']),
        );
        return withEtag(reply, record);
      },
    );
    app.delete(
      `/v1/domains/:domain/${plural}/:name/members/:member`,
      { schema: { tags: TAGS[plural], params: MemberParams, headers: IfMatch, response: { 200: Record, ...errors } } },
      async (request, reply) => {
        const { domain, name: n, member } = request.params;
        const record = await service.deleteMember(
          await authenticate(request),
          kind,
          domain,
          n,
          member,
          parseIfMatch(request.headers['if-match']),
        );
        return withEtag(reply, record);
      },
    );
  }

  // ---- policies --------------------------------------------------------------------------------
  app.get(
    '/v1/domains/:domain/policies',
    {
      schema: {
        tags: TAGS.policies,
        params: DomainParams,
        querystring: ListQuery,
        response: { 200: page(PolicyRecord), ...errors },
      },
    },
    async (request) => service.listPolicies(await authenticate(request), request.params.domain, request.query),
  );
  app.get(
    '/v1/domains/:domain/policies/:name',
    {
      schema: {
        tags: TAGS.policies,
        params: NamedParams,
        response: { 200: Type.Object({ versions: Type.Array(PolicyRecord) }), ...errors },
      },
    },
    async (request) => ({
      versions: await service.getPolicy(await authenticate(request), request.params.domain, request.params.name),
    }),
  );
  const PutPolicy = Type.Object(
    {
      version: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()])),
      active: Type.Optional(Type.Boolean()),
      description: Type.Optional(Description),
      assertions: Type.Array(Assertion, { maxItems: 10_000 }),
    },
    { additionalProperties: false },
  );
  app.put(
    '/v1/domains/:domain/policies/:name',
    {
      schema: {
        tags: TAGS.policies,
        params: NamedParams,
        headers: IfMatch,
        body: PutPolicy,
        response: { 200: PolicyRecord, ...errors },
      },
    },
    async (request, reply) => {
      const { domain, name: n } = request.params;
      const record = await service.putPolicy(
        await authenticate(request),
        domain,
        { ...request.body, name: n },
        parseIfMatch(request.headers['if-match']),
      );
      return withEtag(reply, record);
    },
  );
  app.delete(
    '/v1/domains/:domain/policies/:name',
    {
      schema: {
        tags: TAGS.policies,
        params: NamedParams,
        headers: IfMatch,
        querystring: Type.Object(
          { version: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) },
          { additionalProperties: false },
        ),
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const { domain, name: n } = request.params;
      await service.deletePolicy(
        await authenticate(request),
        domain,
        n,
        request.query.version ?? null,
        parseIfMatch(request.headers['if-match']),
      );
      return reply.code(204).send(null);
    },
  );

  // ---- audit -----------------------------------------------------------------------------------
  app.get(
    '/v1/audit',
    {
      schema: {
        tags: TAGS.audit,
        querystring: Type.Object(
          {
            domain: Type.Optional(DomainName),
            actor: Type.Optional(name(384)),
            since: Type.Optional(Type.String({ format: 'date-time' })),
            until: Type.Optional(Type.String({ format: 'date-time' })),
            cursor: Type.Optional(Type.String({ maxLength: 32 })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: page(AuditEvent), ...errors },
      },
    },
    async (request) => {
      const q = request.query;
      return service.listAudit(await authenticate(request), {
        ...(q.domain !== undefined ? { domain: q.domain } : {}),
        ...(q.actor !== undefined ? { actor: q.actor } : {}),
        ...(q.since !== undefined ? { since: new Date(q.since) } : {}),
        ...(q.until !== undefined ? { until: new Date(q.until) } : {}),
        ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
        limit: q.limit ?? 100,
      });
    },
  );

  // ---- export and import -----------------------------------------------------------------------
  app.get(
    '/v1/domains/:domain/export',
    { schema: { tags: TAGS.domains, params: DomainParams, response: { 200: Type.String(), ...errors } } },
    async (request, reply) => {
      const yaml = await service.exportDomain(await authenticate(request), request.params.domain);
      return reply.type('application/yaml').send(yaml);
    },
  );
  const Plan = Type.Object({
    applied: Type.Boolean(),
    changes: Type.Array(
      Type.Object({
        action: Type.String(),
        kind: Type.String(),
        domain: Type.Union([Type.String(), Type.Null()]),
        name: Type.String(),
        details: Type.Array(Type.String()),
      }),
    ),
  });
  app.post(
    '/v1/domains/:domain/import',
    {
      schema: {
        tags: TAGS.domains,
        params: DomainParams,
        querystring: Type.Object({ dryRun: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
        body: Type.Object(
          { config: Type.String({ minLength: 1, maxLength: 8 * 1024 * 1024 }) },
          { additionalProperties: false },
        ),
        response: { 200: Plan, ...errors },
      },
    },
    async (request) => {
      const result = await service.importDomain(
        await authenticate(request),
        request.params.domain,
        request.body.config,
        request.query.dryRun === true,
      );
      return { applied: result.applied, changes: result.plan.changes };
    },
  );
}

/** Throws 401 with the Bearer challenge (RFC 6750 §3). */
export function unauthenticated(detail: string, code = 'auth.required'): ProblemError {
  return new ProblemError({ status: 401, code, detail });
}
