/**
 * The management API routes (`/v1`, api.md §3). Each handler parses (the schemas do it), calls one
 * ManagementService function, and maps the result: `ETag` = revision, `If-Match` → expected
 * revision (412 when stale), cursor-paginated lists, problem+json errors (one error handler).
 * Secrets (generated service and client secrets) appear only in the response of the call that
 * made them: the record schemas have no secret field, so the serializer cannot send one.
 */

import { NAME_LIMITS } from '@gatehouse/engine';
import type { FastifyReply, FastifyRequest, preValidationHookHandler } from 'fastify';
import { Type, type Static, type TSchema } from 'typebox';
import { BUNDLE_MEDIA_TYPE } from '../bundles/bundle-service.js';
import type { GatehouseApp } from '../http/build-app.js';
import { badRequest, problemResponses, ProblemError } from '../http/problem.js';
import { API_LIMITS } from '../storage/api-store.js';
import { CLIENT_GRANT_TYPES, CLIENT_LIMITS } from '../storage/client-store.js';
import { RESOURCE_LIMITS } from '../storage/resource-store.js';
import { ARGON2_IMPORT_LIMITS, SECRET_LIMITS } from '../storage/secret-hasher.js';
import { SERVICE_LIMITS } from '../storage/service-store.js';
import { USER_LIMITS } from '../storage/user-store.js';
import type { Caller, ManagementService, WithSecret } from './management-service.js';

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

/** A date-time query parameter as a Date; 400 for one JavaScript cannot represent (`…:60Z`). */
function parseInstantParam(text: string, name: string): Date {
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) {
    throw badRequest('request.invalid_date', `${name} is not an instant this server can use: ${JSON.stringify(text)}`, [
      { pointer: `/query/${name}`, code: 'request.invalid_date', message: 'not a representable RFC 3339 instant' },
    ]);
  }
  return d;
}

/** `If-Match: "3"` → 3; absent or `*` → undefined (RFC 9110 §13.1.1); anything else → 400. */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const m = /^\s*(?:W\/)?"(\d{1,15})"\s*$/.exec(header);
  if (!m)
    throw badRequest(
      'request.invalid_if_match',
      `If-Match must be an ETag this server handed out (like "3"), not ${JSON.stringify(header)}`,
    );
  // A revision past what the database can hold was never handed out: it can only be stale.
  const n = Number(m[1]);
  return n > 2_147_483_647 ? -1 : n;
}

/**
 * True when `If-None-Match` (RFC 9110 §13.1.2) matches `etag`: `*`, or a list naming it (weak
 * comparison, so `W/"3"` matches `"3"`).
 */
export function ifNoneMatchMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

function withEtag<T extends { revision: number }>(reply: FastifyReply, record: T): T {
  void reply.header('etag', `"${record.revision}"`);
  return record;
}

const TAGS = {
  domains: ['domains'],
  roles: ['roles'],
  groups: ['groups'],
  policies: ['policies'],
  audit: ['audit'],
  users: ['users'],
  services: ['services'],
  clients: ['clients'],
  apis: ['apis'],
  resources: ['resources'],
  keys: ['keys'],
};
const errors = problemResponses(400, 401, 403, 404, 409, 412, 413);

// ---- users, services, clients, APIs, resources, keys: schemas ------------------------------------

const nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
/** A JSON object of bounded size (the stores bound its JSON length too). */
const JsonObject = (maxProperties: number) =>
  Type.Record(Type.String(), Type.Unknown(), { maxProperties, propertyNames: { maxLength: 256 } });

/** The `<name>` of `user.<name>`: a principal name without its `user.` prefix. */
const UserName = name(NAME_LIMITS.principal - 'user.'.length);
const Email = Type.String({ minLength: 1, maxLength: USER_LIMITS.email });
const DisplayName = Type.String({ minLength: 1, maxLength: USER_LIMITS.displayName });
const Password = Type.String({
  minLength: USER_LIMITS.passwordMin,
  maxLength: USER_LIMITS.passwordMax,
  description: 'hashed with argon2id; never returned',
});
const PasswordHash = Type.String({
  minLength: 1,
  maxLength: ARGON2_IMPORT_LIMITS.length,
  description: 'an argon2id hash in PHC form, stored as is (migration from another system)',
});
const ExternalIds = Type.Array(Type.String({ minLength: 1, maxLength: USER_LIMITS.externalId }), {
  maxItems: USER_LIMITS.externalIds,
});
const UserRecord = Type.Object({
  name: Type.String(),
  email: nullable(Type.String()),
  displayName: nullable(Type.String()),
  externalIds: Type.Array(Type.String()),
  attributes: Attributes,
  hasPassword: Type.Boolean(),
  ...Timestamps,
});

const Label = name(NAME_LIMITS.label);
const Secret = Type.String({
  minLength: SECRET_LIMITS.min,
  maxLength: SECRET_LIMITS.max,
  description: 'a secret of your choosing; when absent one is generated and returned once',
});
/** Returned once, by the call that generated it; stored only as an argon2id hash. */
const ShownSecret = Type.Optional(
  Type.String({ description: 'the generated secret: returned by this response only, never again' }),
);
const ServiceDescription = nullable(Type.String({ maxLength: SERVICE_LIMITS.description }));
const Jwk = Type.Record(Type.String(), Type.Unknown(), {
  maxProperties: 32,
  propertyNames: { maxLength: 64 },
  description: 'a public JWK (RFC 7517); private members are refused',
});
const PublicKeys = Type.Array(Jwk, { maxItems: SERVICE_LIMITS.publicKeys });
const ServiceRecord = Type.Object({
  domain: Type.String(),
  name: Type.String(),
  principal: Type.String({ description: '<domain>.<name>: the principal name and the OAuth client_id' }),
  description: nullable(Type.String()),
  publicKeys: Type.Array(Type.Record(Type.String(), Type.Unknown())),
  hasSecret: Type.Boolean(),
  ...Timestamps,
});
const ServiceWithSecret = Type.Object({ ...ServiceRecord.properties, secret: ShownSecret });

const ClientId = Type.String({ minLength: 1, maxLength: CLIENT_LIMITS.clientId, pattern: '^[A-Za-z0-9._~-]+$' });
const Uris = Type.Array(Type.String({ minLength: 1, maxLength: CLIENT_LIMITS.uri }), { maxItems: CLIENT_LIMITS.uris });
const GrantTypes = Type.Array(Type.Enum([...CLIENT_GRANT_TYPES]), { maxItems: CLIENT_GRANT_TYPES.length });
const ClientName = nullable(Type.String({ maxLength: CLIENT_LIMITS.name }));
const ClientRecord = Type.Object({
  clientId: Type.String(),
  domain: Type.String(),
  name: nullable(Type.String()),
  type: Type.Enum(['public', 'confidential']),
  hasSecret: Type.Boolean(),
  redirectUris: Type.Array(Type.String()),
  postLogoutRedirectUris: Type.Array(Type.String()),
  grantTypes: Type.Array(Type.String()),
  firstParty: Type.Boolean(),
  ...Timestamps,
});
const ClientWithSecret = Type.Object({ ...ClientRecord.properties, secret: ShownSecret });

const Audience = Type.String({ minLength: 1, maxLength: API_LIMITS.audience });
const Scopes = Type.Array(Type.String({ minLength: 1, maxLength: API_LIMITS.scope }), {
  maxItems: API_LIMITS.scopes,
});
const ApiRecord = Type.Object({
  domain: Type.String(),
  name: Type.String(),
  audience: Type.String(),
  scopes: Type.Array(Type.String()),
  permissionsClaim: Type.Boolean(),
  ...Timestamps,
});

// The stores lower-case both; a glob character in an id would make it a pattern.
const ResourceType = Type.String({
  minLength: 1,
  maxLength: RESOURCE_LIMITS.type,
  pattern: '^[A-Za-z0-9_][A-Za-z0-9_-]*$',
});
const ResourceId = Type.String({
  minLength: 1,
  maxLength: RESOURCE_LIMITS.name,
  pattern: '^[^*?\\s\\u0000-\\u001f\\u007f]+$',
});
const ResourceRecord = Type.Object({
  domain: Type.String(),
  type: Type.String(),
  id: Type.String(),
  properties: Type.Record(Type.String(), Type.Unknown()),
  ...Timestamps,
});

/**
 * A published public key. Only these members are serialized, so a private member (`d`) could
 * never leave the server even if one reached this far.
 */
const PublicJwk = Type.Object({
  kty: Type.Optional(Type.String()),
  kid: Type.Optional(Type.String()),
  alg: Type.Optional(Type.String()),
  use: Type.Optional(Type.String()),
  crv: Type.Optional(Type.String()),
  x: Type.Optional(Type.String()),
  y: Type.Optional(Type.String()),
  n: Type.Optional(Type.String()),
  e: Type.Optional(Type.String()),
});
const Jwks = Type.Object({ keys: Type.Array(PublicJwk) }, { description: 'a JWK Set (RFC 7517 §5)' });

/** Lets a POST take no body at all, as if it were `{}`. */
const emptyBodyIsObject: preValidationHookHandler = (request, _reply, done) => {
  if (request.body === undefined || request.body === null) request.body = {};
  done();
};

/** A write's record with its once-shown secret, and the record's ETag. */
function withSecret<T extends { revision: number }>(reply: FastifyReply, w: WithSecret<T>): T & { secret?: string } {
  withEtag(reply, w.record);
  return w.secret === undefined ? w.record : { ...w.record, secret: w.secret };
}

/** Registers every management route under /v1. */
export function registerManagementRoutes(
  app: GatehouseApp,
  service: ManagementService,
  verifyCaller: Authenticate,
): void {
  // Authenticate before anything else looks at the request (body parsing, validation): an
  // unauthenticated caller always gets 401, never details about its request. Handlers read the
  // caller the hook found.
  const callers = new WeakMap<FastifyRequest, Caller>();
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?', 1)[0] ?? '';
    if (!path.startsWith('/v1/') || path === '/v1/openapi.json' || path.startsWith('/v1/keys')) return;
    if (request.routeOptions.url === undefined) return; // unknown routes answer 404
    callers.set(request, await verifyCaller(request));
  });
  const authenticate = async (request: FastifyRequest): Promise<Caller> =>
    callers.get(request) ?? verifyCaller(request);
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

  registerUserRoutes(app, service, authenticate);
  registerServiceRoutes(app, service, authenticate);
  registerClientRoutes(app, service, authenticate);
  registerApiRoutes(app, service, authenticate);
  registerResourceRoutes(app, service, authenticate);
  registerKeyRoutes(app, service);

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
        ...(q.since !== undefined ? { since: parseInstantParam(q.since, 'since') } : {}),
        ...(q.until !== undefined ? { until: parseInstantParam(q.until, 'until') } : {}),
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

  // ---- signed policy bundles (api.md §4, docs/bundles.md) --------------------------------------
  app.get(
    '/v1/domains/:domain/bundle',
    {
      schema: {
        tags: TAGS.domains,
        summary: 'The domain’s signed policy bundle: a JWS (General JSON Serialization), application/jose+json',
        params: DomainParams,
        headers: Type.Object({ 'if-none-match': Type.Optional(Type.String({ maxLength: 1024 })) }),
        response: { 200: Type.String(), 304: Type.Null(), ...errors, ...problemResponses(500, 503) },
      },
    },
    async (request, reply) => {
      const bundle = await service.getBundle(await authenticate(request), request.params.domain);
      const etag = `"${bundle.revision}"`;
      void reply.header('etag', etag).header('cache-control', 'private, no-cache');
      if (ifNoneMatchMatches(request.headers['if-none-match'], etag)) return reply.code(304).send(null);
      return reply.type(BUNDLE_MEDIA_TYPE).send(bundle.body);
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

// ---- users -----------------------------------------------------------------------------------------

function registerUserRoutes(app: GatehouseApp, service: ManagementService, authenticate: Authenticate): void {
  const Params = Type.Object({ name: UserName });
  app.get(
    '/v1/users',
    { schema: { tags: TAGS.users, querystring: ListQuery, response: { 200: page(UserRecord), ...errors } } },
    async (request) => service.listUsers(await authenticate(request), request.query),
  );
  const CreateUser = Type.Object(
    {
      name: UserName,
      email: Type.Optional(Email),
      displayName: Type.Optional(DisplayName),
      password: Type.Optional(Password),
      passwordHash: Type.Optional(PasswordHash),
      externalIds: Type.Optional(ExternalIds),
      attributes: Type.Optional(Attributes),
    },
    { additionalProperties: false },
  );
  app.post(
    '/v1/users',
    { schema: { tags: TAGS.users, body: CreateUser, response: { 201: UserRecord, ...errors } } },
    async (request, reply) => {
      const record = await service.createUser(await authenticate(request), request.body);
      return reply.code(201).header('location', `/v1/users/${record.name}`).send(withEtag(reply, record));
    },
  );
  app.get(
    '/v1/users/:name',
    { schema: { tags: TAGS.users, params: Params, response: { 200: UserRecord, ...errors } } },
    async (request, reply) => withEtag(reply, await service.getUser(await authenticate(request), request.params.name)),
  );
  const PatchUser = Type.Object(
    {
      email: Type.Optional(nullable(Email)),
      displayName: Type.Optional(nullable(DisplayName)),
      password: Type.Optional(nullable(Password)),
      passwordHash: Type.Optional(PasswordHash),
      externalIds: Type.Optional(ExternalIds),
      attributes: Type.Optional(Attributes),
      currentPassword: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: USER_LIMITS.passwordMax,
          description: 'needed to change your own password without admin rights; checked whenever sent',
        }),
      ),
    },
    { additionalProperties: false },
  );
  app.patch(
    '/v1/users/:name',
    {
      schema: {
        tags: TAGS.users,
        params: Params,
        headers: IfMatch,
        body: PatchUser,
        response: { 200: UserRecord, ...errors },
      },
    },
    async (request, reply) =>
      withEtag(
        reply,
        await service.updateUser(
          await authenticate(request),
          request.params.name,
          request.body,
          parseIfMatch(request.headers['if-match']),
        ),
      ),
  );
  app.delete(
    '/v1/users/:name',
    { schema: { tags: TAGS.users, params: Params, headers: IfMatch, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await service.deleteUser(
        await authenticate(request),
        request.params.name,
        parseIfMatch(request.headers['if-match']),
      );
      return reply.code(204).send(null);
    },
  );
}

// ---- services --------------------------------------------------------------------------------------

function registerServiceRoutes(app: GatehouseApp, service: ManagementService, authenticate: Authenticate): void {
  const Params = Type.Object({ domain: DomainName, name: Label });
  app.get(
    '/v1/domains/:domain/services',
    {
      schema: {
        tags: TAGS.services,
        params: DomainParams,
        querystring: ListQuery,
        response: { 200: page(ServiceRecord), ...errors },
      },
    },
    async (request) => service.listServices(await authenticate(request), request.params.domain, request.query),
  );
  const CreateService = Type.Object(
    {
      name: Label,
      description: Type.Optional(Type.String({ maxLength: SERVICE_LIMITS.description })),
      secret: Type.Optional(
        nullable({ ...Secret, description: 'a secret of your choosing; null: none; absent: one is generated' }),
      ),
      publicKeys: Type.Optional(PublicKeys),
    },
    { additionalProperties: false },
  );
  app.post(
    '/v1/domains/:domain/services',
    {
      schema: {
        tags: TAGS.services,
        params: DomainParams,
        body: CreateService,
        response: { 201: ServiceWithSecret, ...errors },
      },
    },
    async (request, reply) => {
      const w = await service.createService(await authenticate(request), request.params.domain, request.body);
      return reply
        .code(201)
        .header('location', `/v1/domains/${w.record.domain}/services/${w.record.name}`)
        .send(withSecret(reply, w));
    },
  );
  app.get(
    '/v1/domains/:domain/services/:name',
    { schema: { tags: TAGS.services, params: Params, response: { 200: ServiceRecord, ...errors } } },
    async (request, reply) =>
      withEtag(
        reply,
        await service.getService(await authenticate(request), request.params.domain, request.params.name),
      ),
  );
  const PatchService = Type.Object(
    { description: Type.Optional(ServiceDescription), publicKeys: Type.Optional(PublicKeys) },
    { additionalProperties: false },
  );
  app.patch(
    '/v1/domains/:domain/services/:name',
    {
      schema: {
        tags: TAGS.services,
        params: Params,
        headers: IfMatch,
        body: PatchService,
        response: { 200: ServiceRecord, ...errors },
      },
    },
    async (request, reply) => {
      const { domain, name: n } = request.params;
      const record = await service.updateService(
        await authenticate(request),
        domain,
        n,
        request.body,
        parseIfMatch(request.headers['if-match']),
      );
      return withEtag(reply, record);
    },
  );
  app.post(
    '/v1/domains/:domain/services/:name/secret',
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: TAGS.services,
        params: Params,
        headers: IfMatch,
        body: Type.Object({ secret: Type.Optional(Secret) }, { additionalProperties: false }),
        response: { 200: ServiceWithSecret, ...errors },
      },
    },
    async (request, reply) => {
      const { domain, name: n } = request.params;
      const w = await service.rotateServiceSecret(
        await authenticate(request),
        domain,
        n,
        request.body.secret,
        parseIfMatch(request.headers['if-match']),
      );
      return withSecret(reply, w);
    },
  );
  app.delete(
    '/v1/domains/:domain/services/:name',
    { schema: { tags: TAGS.services, params: Params, headers: IfMatch, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { domain, name: n } = request.params;
      await service.deleteService(await authenticate(request), domain, n, parseIfMatch(request.headers['if-match']));
      return reply.code(204).send(null);
    },
  );
}

// ---- OAuth clients ---------------------------------------------------------------------------------

function registerClientRoutes(app: GatehouseApp, service: ManagementService, authenticate: Authenticate): void {
  const Params = Type.Object({ domain: DomainName, clientId: ClientId });
  app.get(
    '/v1/domains/:domain/clients',
    {
      schema: {
        tags: TAGS.clients,
        params: DomainParams,
        querystring: ListQuery,
        response: { 200: page(ClientRecord), ...errors },
      },
    },
    async (request) => service.listClients(await authenticate(request), request.params.domain, request.query),
  );
  const CreateClient = Type.Object(
    {
      clientId: ClientId,
      name: Type.Optional(Type.String({ minLength: 1, maxLength: CLIENT_LIMITS.name })),
      type: Type.Enum(['public', 'confidential']),
      secret: Type.Optional({ ...Secret, description: 'confidential clients only; absent: one is generated' }),
      redirectUris: Type.Optional(Uris),
      postLogoutRedirectUris: Type.Optional(Uris),
      grantTypes: Type.Optional(GrantTypes),
      firstParty: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  );
  app.post(
    '/v1/domains/:domain/clients',
    {
      schema: {
        tags: TAGS.clients,
        params: DomainParams,
        body: CreateClient,
        response: { 201: ClientWithSecret, ...errors },
      },
    },
    async (request, reply) => {
      const w = await service.createClient(await authenticate(request), request.params.domain, request.body);
      return reply
        .code(201)
        .header('location', `/v1/domains/${w.record.domain}/clients/${encodeURIComponent(w.record.clientId)}`)
        .send(withSecret(reply, w));
    },
  );
  app.get(
    '/v1/domains/:domain/clients/:clientId',
    { schema: { tags: TAGS.clients, params: Params, response: { 200: ClientRecord, ...errors } } },
    async (request, reply) =>
      withEtag(
        reply,
        await service.getClient(await authenticate(request), request.params.domain, request.params.clientId),
      ),
  );
  const PatchClient = Type.Object(
    {
      name: Type.Optional(ClientName),
      redirectUris: Type.Optional(Uris),
      postLogoutRedirectUris: Type.Optional(Uris),
      grantTypes: Type.Optional(GrantTypes),
      firstParty: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  );
  app.patch(
    '/v1/domains/:domain/clients/:clientId',
    {
      schema: {
        tags: TAGS.clients,
        params: Params,
        headers: IfMatch,
        body: PatchClient,
        response: { 200: ClientRecord, ...errors },
      },
    },
    async (request, reply) => {
      const { domain, clientId } = request.params;
      const record = await service.updateClient(
        await authenticate(request),
        domain,
        clientId,
        request.body,
        parseIfMatch(request.headers['if-match']),
      );
      return withEtag(reply, record);
    },
  );
  app.post(
    '/v1/domains/:domain/clients/:clientId/secret',
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: TAGS.clients,
        params: Params,
        headers: IfMatch,
        body: Type.Object({ secret: Type.Optional(Secret) }, { additionalProperties: false }),
        response: { 200: ClientWithSecret, ...errors },
      },
    },
    async (request, reply) => {
      const { domain, clientId } = request.params;
      const w = await service.rotateClientSecret(
        await authenticate(request),
        domain,
        clientId,
        request.body.secret,
        parseIfMatch(request.headers['if-match']),
      );
      return withSecret(reply, w);
    },
  );
  app.delete(
    '/v1/domains/:domain/clients/:clientId',
    { schema: { tags: TAGS.clients, params: Params, headers: IfMatch, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { domain, clientId } = request.params;
      await service.deleteClient(
        await authenticate(request),
        domain,
        clientId,
        parseIfMatch(request.headers['if-match']),
      );
      return reply.code(204).send(null);
    },
  );
}

// ---- APIs ------------------------------------------------------------------------------------------

function registerApiRoutes(app: GatehouseApp, service: ManagementService, authenticate: Authenticate): void {
  const Params = Type.Object({ domain: DomainName, name: Label });
  app.get(
    '/v1/domains/:domain/apis',
    {
      schema: {
        tags: TAGS.apis,
        params: DomainParams,
        querystring: ListQuery,
        response: { 200: page(ApiRecord), ...errors },
      },
    },
    async (request) => service.listApis(await authenticate(request), request.params.domain, request.query),
  );
  const CreateApi = Type.Object(
    {
      name: Label,
      audience: Audience,
      scopes: Type.Optional(Scopes),
      permissionsClaim: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  );
  app.post(
    '/v1/domains/:domain/apis',
    { schema: { tags: TAGS.apis, params: DomainParams, body: CreateApi, response: { 201: ApiRecord, ...errors } } },
    async (request, reply) => {
      const record = await service.createApi(await authenticate(request), request.params.domain, request.body);
      return reply
        .code(201)
        .header('location', `/v1/domains/${record.domain}/apis/${record.name}`)
        .send(withEtag(reply, record));
    },
  );
  app.get(
    '/v1/domains/:domain/apis/:name',
    { schema: { tags: TAGS.apis, params: Params, response: { 200: ApiRecord, ...errors } } },
    async (request, reply) =>
      withEtag(reply, await service.getApi(await authenticate(request), request.params.domain, request.params.name)),
  );
  const PatchApi = Type.Object(
    {
      audience: Type.Optional(Audience),
      scopes: Type.Optional(Scopes),
      permissionsClaim: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  );
  app.patch(
    '/v1/domains/:domain/apis/:name',
    {
      schema: {
        tags: TAGS.apis,
        params: Params,
        headers: IfMatch,
        body: PatchApi,
        response: { 200: ApiRecord, ...errors },
      },
    },
    async (request, reply) => {
      const { domain, name: n } = request.params;
      const record = await service.updateApi(
        await authenticate(request),
        domain,
        n,
        request.body,
        parseIfMatch(request.headers['if-match']),
      );
      return withEtag(reply, record);
    },
  );
  app.delete(
    '/v1/domains/:domain/apis/:name',
    { schema: { tags: TAGS.apis, params: Params, headers: IfMatch, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { domain, name: n } = request.params;
      await service.deleteApi(await authenticate(request), domain, n, parseIfMatch(request.headers['if-match']));
      return reply.code(204).send(null);
    },
  );
}

// ---- registered resources --------------------------------------------------------------------------

function registerResourceRoutes(app: GatehouseApp, service: ManagementService, authenticate: Authenticate): void {
  const Params = Type.Object({ domain: DomainName, type: ResourceType, id: ResourceId });
  app.get(
    '/v1/domains/:domain/resources',
    {
      schema: {
        tags: TAGS.resources,
        params: DomainParams,
        querystring: Type.Object(
          { ...ListQuery.properties, type: Type.Optional(ResourceType) },
          { additionalProperties: false },
        ),
        response: { 200: page(ResourceRecord), ...errors },
      },
    },
    async (request) => service.listResources(await authenticate(request), request.params.domain, request.query),
  );
  app.get(
    '/v1/domains/:domain/resources/:type/:id',
    { schema: { tags: TAGS.resources, params: Params, response: { 200: ResourceRecord, ...errors } } },
    async (request, reply) => {
      const { domain, type, id } = request.params;
      return withEtag(reply, await service.getResource(await authenticate(request), domain, type, id));
    },
  );
  const PutResource = Type.Object({ properties: Type.Optional(JsonObject(1000)) }, { additionalProperties: false });
  app.put(
    '/v1/domains/:domain/resources/:type/:id',
    {
      schema: {
        tags: TAGS.resources,
        params: Params,
        headers: IfMatch,
        body: PutResource,
        response: { 200: ResourceRecord, 201: ResourceRecord, ...errors },
      },
    },
    async (request, reply) => {
      const { domain, type, id } = request.params;
      const { record, created } = await service.putResource(
        await authenticate(request),
        domain,
        type,
        id,
        request.body.properties,
        parseIfMatch(request.headers['if-match']),
      );
      if (!created) return withEtag(reply, record);
      return reply
        .code(201)
        .header('location', `/v1/domains/${record.domain}/resources/${record.type}/${encodeURIComponent(record.id)}`)
        .send(withEtag(reply, record));
    },
  );
  app.delete(
    '/v1/domains/:domain/resources/:type/:id',
    { schema: { tags: TAGS.resources, params: Params, headers: IfMatch, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const { domain, type, id } = request.params;
      await service.deleteResource(
        await authenticate(request),
        domain,
        type,
        id,
        parseIfMatch(request.headers['if-match']),
      );
      return reply.code(204).send(null);
    },
  );
}

// ---- public keys -----------------------------------------------------------------------------------

/** The public keys: no authentication, they are public (api.md §4 names `/v1/keys/control`). */
function registerKeyRoutes(app: GatehouseApp, service: ManagementService): void {
  const keyErrors = problemResponses(500, 503);
  app.get(
    '/v1/keys',
    {
      schema: {
        tags: TAGS.keys,
        summary: 'The public keys of both key holders: token (access tokens) and control (bundles)',
        response: { 200: Type.Object({ token: Jwks, control: Jwks }), ...keyErrors },
      },
    },
    async () => {
      const [token, control] = await Promise.all([service.getPublicJwks('token'), service.getPublicJwks('control')]);
      return { token, control };
    },
  );
  app.get(
    '/v1/keys/control',
    {
      schema: {
        tags: TAGS.keys,
        summary: 'The control plane’s JWKS: verifies the control signature of policy bundles',
        response: { 200: Jwks, ...keyErrors },
      },
    },
    async () => service.getPublicJwks('control'),
  );
}

/** Throws 401 with the Bearer challenge (RFC 6750 §3). */
export function unauthenticated(detail: string, code = 'auth.required'): ProblemError {
  return new ProblemError({ status: 401, code, detail });
}
