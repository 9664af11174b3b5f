import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { mintAccessToken } from '../../src/keys/access-tokens.js';
import { OPERATOR } from '../../src/management/management-service.js';
import { createGatehouse, type Gatehouse } from '../../src/runtime/create-gatehouse.js';
import { cheapHasher } from '../storage/store-fixtures.js';

/** An HTTP method the management API answers. */
export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The response of `app.inject`. */
export type Response = Awaited<ReturnType<Gatehouse['app']['inject']>>;

/** A node over a fresh SQLite file, with `user.root` a super admin and tokens for some principals. */
export interface ManagementFixture {
  gh: Gatehouse;
  /** Calls the API as `as` (a principal given to startManagementFixture; none: no token). */
  call(method: Method, url: string, as?: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Sends `payload` as is, with Content-Type application/json. */
  callRaw(method: Method, url: string, as: string, payload: string): Promise<Response>;
  /** Makes `principal` the (only) admin of `domain`, as the operator would. */
  makeAdmin(domain: string, principal: string): Promise<void>;
  close(): Promise<void>;
}

/** Starts a node with the cheap hasher; `principals` get management API tokens (`user.root` always). */
export async function startManagementFixture(principals: readonly string[]): Promise<ManagementFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-mgmt-'));
  const gh = await createGatehouse(loadConfig({ GATEHOUSE_DATABASE_URL: `sqlite:${join(dir, 'g.db')}` }), {
    logger: false,
    hasher: cheapHasher(),
  });
  const makeAdmin = async (domain: string, principal: string) => {
    await gh.management.replaceRole(
      { principal: OPERATOR },
      domain,
      'admin',
      { members: [{ name: principal }] },
      undefined,
    );
  };
  await makeAdmin('sys.auth', 'user.root');
  const tokens = new Map<string, string>();
  for (const p of new Set(['user.root', ...principals])) {
    tokens.set(
      p,
      await mintAccessToken(gh.keys, {
        issuer: gh.issuer,
        subject: p,
        audience: gh.managementAudience,
        ttlSeconds: 600,
      }),
    );
  }
  const bearer = (as: string | undefined): Record<string, string> => {
    if (as === undefined) return {};
    const token = tokens.get(as);
    if (token === undefined) throw new Error(`no token for ${as}: list it in startManagementFixture`);
    return { authorization: `Bearer ${token}` };
  };
  return {
    gh,
    makeAdmin,
    call: (method, url, as, body, headers = {}) =>
      gh.app.inject({
        method,
        url,
        headers: { ...bearer(as), ...headers },
        ...(body !== undefined ? { payload: body as object } : {}),
      }),
    callRaw: (method, url, as, payload) =>
      gh.app.inject({
        method,
        url,
        headers: { ...bearer(as), 'content-type': 'application/json' },
        payload,
      }),
    async close() {
      await gh.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Checks that `res` is a problem with this status and code; returns its body. */
export function expectProblem(res: Response, status: number, code: string): Record<string, unknown> {
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect({ statusCode: res.statusCode, status: body.status, code: body.code }).toEqual({
    statusCode: status,
    status,
    code,
  });
  return body;
}

/** Checks that `res` is a 400 validation problem naming exactly these `[pointer, code]` fields. */
export function expectFields(res: Response, fields: [string, string][]): void {
  expect(res.statusCode).toBe(400);
  const body = res.json() as { errors?: { pointer: string; code: string }[] };
  expect((body.errors ?? []).map((e) => [e.pointer, e.code])).toEqual(fields);
}
