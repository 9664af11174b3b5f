/**
 * What the token benchmark's servers hold and are asked, and the answers they must give. Used by
 * the Gatehouse child (the config it applies), the bare provider's child (the same client and
 * resource server, without policy) and the parent (the request and its checks).
 *
 * Domain `library`: 100 users, the service `library.indexer` (a secret, client_secret_basic), in
 * the group `robots` and the roles `readers` (through the group) and `writers`; the policy `books`
 * lets readers read, writers write and librarians (10 users) delete `library:book/*`; the API
 * `catalog` (audience RESOURCE) declares the scopes `book:read book:write book:delete` and wants
 * the permissions claim. The service asks for all three: policy grants read and write and
 * rejects delete, so every Gatehouse token response carries `scope` and `scope_rejected`. A deny
 * of write on `library:book/rare-*` gives the decisions and the claims a deny to weigh.
 */

export const DOMAIN = 'library';
export const SERVICE = 'indexer';
/** The service's principal, which is its client_id. */
export const CLIENT_ID = `${DOMAIN}.${SERVICE}`;
/** The API's audience, sent as the RFC 8707 `resource`. */
export const RESOURCE = 'https://catalog.library.example';
/** The scopes the API declares. */
export const API_SCOPES = ['book:read', 'book:write', 'book:delete'] as const;
/** What the service asks for. */
export const REQUESTED_SCOPE = API_SCOPES.join(' ');
/** What policy grants it, in the request's order. */
export const GRANTED_SCOPE = 'book:read book:write';
/** What policy refuses it. */
export const REJECTED_SCOPE = 'book:delete';
/** Access token lifetime in both servers (Gatehouse's default, GATEHOUSE_ACCESS_TOKEN_TTL_SECONDS). */
export const TOKEN_TTL_SECONDS = 3600;
/** The roles and groups the Gatehouse token carries for the service. */
export const EXPECTED_ROLES = [`${DOMAIN}:role.readers`, `${DOMAIN}:role.writers`];
export const EXPECTED_GROUPS = [`${DOMAIN}:group.robots`];
/**
 * The permissions claim: read only. The deny of write on `library:book/rare-*` keeps write on `*`
 * out of it (api.md §1: only allows no deny can override are listed), while the scope `book:write`
 * is granted (docs/oidc.md: the engine allows write on the literal resource `library:book/*`).
 */
export const EXPECTED_PERMISSIONS = [{ book: { '*': ['read'] } }];

const USERS = 100;
const LIBRARIANS = 10;

const userName = (i: number): string => `u${String(i).padStart(3, '0')}`;

/** The config file (JSON) the Gatehouse child applies; `secret` is the service's secret. */
export function domainConfig(secret: string): string {
  const users = Array.from({ length: USERS }, (_, i) => ({
    name: userName(i),
    email: `${userName(i)}@library.example`,
  }));
  return JSON.stringify({
    users,
    domains: [
      {
        name: DOMAIN,
        description: 'The token benchmark domain',
        groups: [{ name: 'robots', members: [CLIENT_ID] }],
        roles: [
          { name: 'readers', members: [`${DOMAIN}:group.robots`, ...users.map((u) => `user.${u.name}`)] },
          { name: 'writers', members: [CLIENT_ID, ...users.slice(0, 30).map((u) => `user.${u.name}`)] },
          { name: 'librarians', members: users.slice(0, LIBRARIANS).map((u) => `user.${u.name}`) },
        ],
        policies: [
          {
            name: 'books',
            assertions: [
              { effect: 'allow', action: 'read', resource: `${DOMAIN}:book/*`, role: 'readers' },
              { effect: 'allow', action: 'write', resource: `${DOMAIN}:book/*`, role: 'writers' },
              { effect: 'allow', action: 'delete', resource: `${DOMAIN}:book/*`, role: 'librarians' },
              { effect: 'deny', action: 'write', resource: `${DOMAIN}:book/rare-*`, role: 'writers' },
            ],
          },
        ],
        services: [{ name: SERVICE, secret }],
        apis: [{ name: 'catalog', audience: RESOURCE, scopes: [...API_SCOPES], permissionsClaim: true }],
      },
    ],
  });
}

/** The token request's form body (the same for both servers). */
export const TOKEN_REQUEST_BODY = new URLSearchParams({
  grant_type: 'client_credentials',
  scope: REQUESTED_SCOPE,
  resource: RESOURCE,
}).toString();

/** RFC 6749 §2.3.1: form-urlencoded, then Basic. */
export function basicAuthorization(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}
