import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigFile } from '@gatehouse/engine';
import { applyConfig } from '../../src/apply/apply-config.js';
import { loadConfig } from '../../src/config/load-config.js';
import { mintAccessToken } from '../../src/keys/access-tokens.js';
import { OPERATOR } from '../../src/management/management-service.js';
import { createGatehouse, type Gatehouse } from '../../src/runtime/create-gatehouse.js';
import { cheapHasher } from '../storage/store-fixtures.js';

/** The response of `app.inject`. */
export type Response = Awaited<ReturnType<Gatehouse['app']['inject']>>;

/**
 * The domains the decision API tests ask about. `library` has readers (alice, bob), a domain
 * admin (carol), a PEP service with access.check (library.gateway), an everyone role (`*`), and
 * conditions on every kind of property; `closed` is disabled.
 */
export const PDP_CONFIG = `
users:
  - name: alice
    email: alice@example.com
    externalIds: [idp|alice-17]
    attributes: { department: eng }
  - name: bob
  - name: carol
  - name: root
domains:
  - name: library
    admins: [user.carol]
    roles:
      - { name: readers, members: [user.alice, user.bob] }
      - { name: checkers, members: [library.gateway] }
      - { name: everyone, members: ["*"] }
    policies:
      - name: books
        assertions:
          - { effect: allow, action: read, resource: "library:book/*", role: readers }
          - { effect: deny, action: read, resource: "library:book/secret-*", role: readers }
          - { effect: allow, action: update, resource: "library:book/*", role: readers,
              condition: "resource.properties.owner == subject.id" }
          - { effect: allow, action: borrow, resource: "library:book/*", role: readers,
              condition: "subject.properties.department == 'eng'" }
          - { effect: allow, action: rate, resource: "library:book/*", role: readers,
              condition: "action.properties.stars <= 5" }
          - { effect: allow, action: view, resource: "library:doc/*", principal: "*",
              condition: "context.ip == '10.0.0.1'" }
          - { effect: allow, action: read, resource: "library:notice/*", role: everyone }
          - { effect: allow, action: pin, resource: "library:notice/welcome", role: readers }
          - { effect: allow, action: knock, resource: "library:door/*", principal: "*",
              condition: "subject.type == 'user'" }
          - { effect: allow, action: index, resource: "library:book/*", principal: library.gateway }
          - { effect: allow, action: access.check, resource: "library:access", role: checkers }
    resources:
      - { type: book, id: "42", properties: { owner: user.alice } }
      - { type: book, id: "7" }
      - { type: book, id: "secret-1" }
      - { type: map, id: "old-town" }
    services:
      - name: gateway
        secret: a-long-random-client-secret
  - name: closed
    enabled: false
`;

/** A node with PDP_CONFIG applied and decision API tokens for some principals. */
export interface PdpFixture {
  gh: Gatehouse;
  /** The revision of domain `library` after the config was applied. */
  revision: number;
  /** POSTs `body` as JSON to `url` as `as` (no token when undefined). */
  post(url: string, as: string | undefined, body: unknown, headers?: Record<string, string>): Promise<Response>;
  /** POSTs `payload` as is, with the given headers (and the token of `as`). */
  postRaw(url: string, as: string, payload: string | undefined, headers: Record<string, string>): Promise<Response>;
  token(principal: string, audience?: string): Promise<string>;
  close(): Promise<void>;
}

/** Starts a node over a fresh SQLite file, applies PDP_CONFIG, and makes user.root a super admin. */
export async function startPdpFixture(options: { followAudit?: boolean } = {}): Promise<PdpFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pdp-'));
  const gh = await createGatehouse(loadConfig({ GATEHOUSE_DATABASE_URL: `sqlite:${join(dir, 'g.db')}` }), {
    logger: false,
    hasher: cheapHasher(),
    // Tests that write behind the node's back (min_revision) must not see the audit poller pick
    // the write up first.
    ...(options.followAudit === false ? { auditPollIntervalMs: 0 } : {}),
  });
  const parsed = parseConfigFile('pdp.yaml', PDP_CONFIG);
  if (parsed.issues.length > 0) throw new Error(parsed.issues.map((i) => `${i.line}: ${i.message}`).join('\n'));
  await applyConfig(gh.store, parsed, { ctx: { actor: OPERATOR }, hasher: cheapHasher() });
  await gh.reload();
  await gh.management.replaceRole(
    { principal: OPERATOR },
    'sys.auth',
    'admin',
    { members: [{ name: 'user.root' }] },
    undefined,
  );
  const token = (principal: string, audience = gh.pdpAudience) =>
    mintAccessToken(gh.keys, { issuer: gh.issuer, subject: principal, audience, ttlSeconds: 600 });
  const tokens = new Map<string, string>();
  const bearer = async (as: string | undefined): Promise<Record<string, string>> => {
    if (as === undefined) return {};
    let t = tokens.get(as);
    if (t === undefined) {
      t = await token(as);
      tokens.set(as, t);
    }
    return { authorization: `Bearer ${t}` };
  };
  return {
    gh,
    revision: gh.catalog.catalog.domains.get('library')?.revision ?? -1,
    token,
    post: async (url, as, body, headers = {}) =>
      gh.app.inject({ method: 'POST', url, headers: { ...(await bearer(as)), ...headers }, payload: body as object }),
    postRaw: async (url, as, payload, headers) =>
      gh.app.inject({
        method: 'POST',
        url,
        headers: { ...(await bearer(as)), ...headers },
        ...(payload !== undefined ? { payload } : {}),
      }),
    async close() {
      await gh.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
