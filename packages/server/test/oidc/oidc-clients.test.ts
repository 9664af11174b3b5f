import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClientLookup, oauthClientMetadata, serviceMetadata } from '../../src/oidc/oidc-clients.js';
import type { ClientRow, ServiceRow } from '../../src/oidc/token-plane-reads.js';
import { TEST_DATABASE_KINDS } from '../storage/test-databases.js';
import { operator, startOidcNode, type OidcNode } from './oidc-fixture.js';

const KEY = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', kid: 'k1' };

function service(overrides: Partial<ServiceRow> = {}): ServiceRow {
  return { domain: 'library', name: 'indexer', secretHash: '$argon2id$hash', publicKeys: [], ...overrides };
}

function oauthClient(overrides: Partial<ClientRow> = {}): ClientRow {
  return {
    clientId: 'library-web',
    domain: 'library',
    name: 'Library',
    type: 'confidential',
    secretHash: '$argon2id$hash',
    redirectUris: ['https://library.example/callback'],
    postLogoutRedirectUris: [],
    grantTypes: ['authorization_code', 'refresh_token'],
    firstParty: true,
    ...overrides,
  };
}

describe('client metadata (RFC 7591 §2)', () => {
  it('describes a service for client credentials only, by secret or by key', () => {
    expect(serviceMetadata(service(), false)).toEqual({
      client_id: 'library.indexer',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: '$argon2id$hash',
      gatehouse_kind: 'service',
      gatehouse_domain: 'library',
    });
    expect(serviceMetadata(service({ secretHash: null, publicKeys: [KEY] }), false)).toMatchObject({
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [KEY] },
    });
    // With both, the request decides: an assertion (RFC 7523) means private_key_jwt.
    const both = service({ publicKeys: [KEY] });
    expect(serviceMetadata(both, false)).toMatchObject({ token_endpoint_auth_method: 'client_secret_basic' });
    expect(serviceMetadata(both, true)).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt' });
    expect(serviceMetadata(both, true)).not.toHaveProperty('client_secret');
    expect(serviceMetadata(service({ secretHash: null }), false)).toBeUndefined();
  });

  it('describes OAuth clients: confidential by secret, public by none; loopback-only public apps as native', () => {
    expect(oauthClientMetadata(oauthClient())).toEqual({
      client_id: 'library-web',
      client_name: 'Library',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['https://library.example/callback'],
      post_logout_redirect_uris: [],
      application_type: 'web',
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: '$argon2id$hash',
      gatehouse_kind: 'client',
      gatehouse_domain: 'library',
      gatehouse_first_party: true,
    });
    const cli = oauthClientMetadata(
      oauthClient({
        clientId: 'gh-cli',
        type: 'public',
        secretHash: null,
        redirectUris: ['http://127.0.0.1/callback'],
      }),
    );
    expect(cli).toMatchObject({ application_type: 'native', token_endpoint_auth_method: 'none' });
    expect(cli).not.toHaveProperty('client_secret');
    const reporting = oauthClientMetadata(oauthClient({ grantTypes: ['client_credentials'], redirectUris: [] }));
    expect(reporting).toMatchObject({ grant_types: ['client_credentials'], response_types: [] });
  });

  it('never lets an OAuth client named like a user use client credentials (its sub would be that user)', () => {
    for (const clientId of ['user.root', 'User.Root']) {
      expect(oauthClientMetadata(oauthClient({ clientId, grantTypes: ['client_credentials'] })).grant_types).toEqual(
        [],
      );
    }
  });
});

describe.each(TEST_DATABASE_KINDS)('ClientLookup on $name', (kind) => {
  let node: OidcNode;
  let now: Date;
  let lookup: ClientLookup;
  beforeEach(async () => {
    node = await startOidcNode(kind);
    await node.apply(`
domains:
  - name: library
    services:
      - { name: indexer, secret: "indexer-secret-0123456789" }
`);
    now = new Date();
    lookup = new ClientLookup({
      db: node.database.open.db,
      catalog: () => node.catalog.catalog,
      clock: () => now,
      ttlMs: 1000,
    });
  });
  afterEach(async () => {
    await node.close();
  });

  async function hashOf(id: string): Promise<unknown> {
    return (await lookup.find(id, false))?.client_secret;
  }

  it('reads again as soon as the client’s domain changes, and after the TTL when a change is not seen', async () => {
    const first = await hashOf('library.indexer');
    expect(first).toMatch(/^\$argon2id\$/);
    // A rotation through the store (this node): the domain's revision moves, the entry is dropped.
    await node.management.rotateServiceSecret(operator, 'library', 'indexer', 'a-new-secret-0123456789', undefined);
    const second = await hashOf('library.indexer');
    expect(second).not.toBe(first);
    // A change this node's catalog has not seen (another node's, before its notice arrives):
    // the entry serves until its TTL ends, never longer.
    await node.database.open.db.updateTable('services').set({ secret_hash: 'changed-elsewhere' }).execute();
    now = new Date(now.getTime() + 999);
    expect(await hashOf('library.indexer')).toBe(second);
    now = new Date(now.getTime() + 1);
    expect(await hashOf('library.indexer')).toBe('changed-elsewhere');
  });

  it('finds nothing for unknown ids, the wrong case of a principal, and clients of disabled domains', async () => {
    expect(await lookup.find('library.nobody', false)).toBeUndefined();
    expect(await lookup.find('LIBRARY.INDEXER', false)).toBeUndefined();
    expect(await lookup.find('x'.repeat(5000), false)).toBeUndefined();
    expect(await lookup.find('a\0b', false)).toBeUndefined();
    expect(await lookup.find('library.indexer', false)).toBeDefined();
    await node.management.updateDomain(operator, 'library', { enabled: false }, undefined);
    expect(await lookup.find('library.indexer', false)).toBeUndefined();
  });
});
