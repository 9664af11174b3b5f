/**
 * The authorizer (issue 6, first slice): fetches the signed bundles of some domains from a
 * Gatehouse node, verifies them (verify-bundle.ts), compiles them for the engine's token mode and
 * decides locally from an access token's (already verified) claims.
 *
 * - `ready()`: the initial fetch of both key sets and every domain's bundle. A domain the node
 *   cannot give (unreachable, an error, a bundle refused) is started from `cacheDir` when a cached
 *   bundle is there, re-verified (expiry included).
 * - `refresh()`: one refresh pass. A bundle replaces the held one only once it verified and is not
 *   older (no rollback); on any failure the held bundle stays. The catalog is swapped as a whole.
 * - `checkClaims()`: token mode on the held bundles; an expired bundle denies
 *   (`DENY_DOMAIN_EXPIRED`), a domain without a bundle denies (`DENY_DOMAIN_NOT_FOUND`).
 *
 * The cache holds each domain's verified JWS as sent (`<domain>.bundle.json`) and the key sets it
 * verified with (`keys.json`), each written to a temporary file and renamed over the old one.
 *
 * Not yet here: background refresh (timers, jitter, backoff), verification of the access token
 * itself (JWT, JWKS), middleware.
 */

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  compileBundle,
  createCatalog,
  decideToken,
  type Catalog,
  type CompiledDomain,
  type TokenClaims,
  type TokenStatus,
} from '@gatehouse/engine';
import type { JSONWebKeySet } from 'jose';
import { BundleError, verifyBundle, type BundleKeys } from './verify-bundle.js';

/** How the authorizer authenticates to the node (a management API token allowed `bundle.read`). */
export type AuthorizerCredentials = { accessToken: string } | { getAccessToken(): Promise<string> };

export interface AuthorizerOptions {
  /** The node's base URL, e.g. `https://gatehouse.example.com`. */
  server: string | URL;
  /** The domains whose bundles to hold. */
  domains: readonly string[];
  credentials: AuthorizerCredentials;
  /** Default: the global fetch. */
  fetch?: typeof fetch | undefined;
  /** Default: the system clock. */
  clock?: (() => Date) | undefined;
  /** Where the last good bundles are kept, to start from when the node cannot be reached. */
  cacheDir?: string | undefined;
  /** Allowed clock skew for the token's `exp` and `iat`; default 30. */
  clockSkewSeconds?: number | undefined;
}

/** A local decision. */
export interface AuthorizerDecision {
  allowed: boolean;
  status: TokenStatus;
  reason: string;
}

/** What is held for a domain. */
export interface HeldBundle {
  domain: string;
  revision: number;
  expiresAt: string;
  /** Where it came from: the node, or the cache at start. */
  source: 'server' | 'cache';
}

/** The outcome of a pass (ready or refresh): the domains updated and those that kept what they had. */
export interface RefreshResult {
  updated: string[];
  failed: { domain: string; error: BundleError }[];
}

export interface Authorizer {
  /** The initial load; rejects when some domain has no bundle at all (neither node nor cache). */
  ready(): Promise<RefreshResult>;
  /** One refresh pass. Never rejects: failures are in the result, and the old bundles stay. */
  refresh(): Promise<RefreshResult>;
  /** Decides with the claims of an already verified access token. Never throws. */
  checkClaims(
    claims: TokenClaims,
    action: string,
    resource: string,
    context?: Record<string, unknown>,
  ): AuthorizerDecision;
  /** What is held for `domain`, if anything. */
  held(domain: string): HeldBundle | undefined;
}

interface Entry {
  held: HeldBundle;
  compiled: CompiledDomain;
}

function asBundleError(err: unknown, domain: string): BundleError {
  if (err instanceof BundleError) return err;
  // compileBundle: a payload that is not a valid domain.
  return new BundleError('bundle.malformed', `the bundle of ${domain} does not compile: ${String(err)}`, {
    cause: err,
  });
}

/** Writes `text` to `path` atomically: a temporary file in the same directory, then a rename. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

export function createAuthorizer(options: AuthorizerOptions): Authorizer {
  const base = new URL(options.server);
  const domains = [...new Set(options.domains.map((d) => d.toLowerCase()))];
  const doFetch = options.fetch ?? globalThis.fetch;
  const clock = options.clock ?? (() => new Date());
  const skew = options.clockSkewSeconds ?? 30;
  const cacheDir = options.cacheDir;
  const entries = new Map<string, Entry>();
  let catalog: Catalog = createCatalog();
  let readying: Promise<RefreshResult> | undefined;
  let passing: Promise<RefreshResult> | undefined;

  const url = (path: string) => new URL(path.replace(/^\//, ''), base.href.endsWith('/') ? base : `${base.href}/`);

  async function token(): Promise<string> {
    const c = options.credentials;
    return 'accessToken' in c ? c.accessToken : c.getAccessToken();
  }

  async function getJson(path: string, bearer?: string): Promise<unknown> {
    let res: Response;
    try {
      res = await doFetch(url(path), {
        headers: {
          accept: 'application/json, application/jose+json',
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
      });
    } catch (err) {
      throw new BundleError('bundle.unavailable', `GET ${path}: ${String(err)}`, { cause: err });
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new BundleError('bundle.unavailable', `GET ${path} answered ${res.status}`);
    }
    try {
      return await res.json();
    } catch (err) {
      throw new BundleError('bundle.malformed', `GET ${path} did not answer JSON`, { cause: err });
    }
  }

  function isJwks(v: unknown): v is JSONWebKeySet {
    return typeof v === 'object' && v !== null && Array.isArray((v as { keys?: unknown }).keys);
  }

  async function fetchKeys(): Promise<BundleKeys> {
    const [control, tokenSet] = await Promise.all([getJson('/v1/keys/control'), getJson('/oidc/jwks')]);
    if (!isJwks(control) || !isJwks(tokenSet)) throw new BundleError('bundle.malformed', 'a key set is not a JWKS');
    return { control, token: tokenSet };
  }

  /** Verifies and compiles; returns the entry (does not hold it). */
  async function accept(domain: string, jws: unknown, keys: BundleKeys, source: HeldBundle['source']): Promise<Entry> {
    const minRevision = entries.get(domain)?.held.revision;
    const payload = await verifyBundle(jws, keys, { domain, minRevision, now: clock() });
    let compiled: CompiledDomain;
    try {
      compiled = compileBundle(payload);
    } catch (err) {
      throw asBundleError(err, domain);
    }
    return { held: { domain, revision: payload.revision, expiresAt: payload.expiresAt, source }, compiled };
  }

  /** Holds these entries: one new catalog, swapped in one assignment. */
  function swap(updated: Entry[]): void {
    if (updated.length === 0) return;
    for (const e of updated) entries.set(e.held.domain, e);
    catalog = createCatalog([...entries.values()].map((e) => e.compiled));
  }

  async function writeCache(keys: BundleKeys, bundles: { domain: string; jws: unknown }[]): Promise<void> {
    if (cacheDir === undefined || bundles.length === 0) return;
    await mkdir(cacheDir, { recursive: true });
    // The keys first: a cached bundle is only ever read with the keys written before it.
    await writeAtomically(join(cacheDir, 'keys.json'), JSON.stringify(keys));
    for (const b of bundles) await writeAtomically(join(cacheDir, `${b.domain}.bundle.json`), JSON.stringify(b.jws));
  }

  async function readCache(domain: string): Promise<Entry> {
    if (cacheDir === undefined) throw new BundleError('bundle.unavailable', 'no cacheDir');
    let keys: unknown;
    let jws: unknown;
    try {
      keys = JSON.parse(await readFile(join(cacheDir, 'keys.json'), 'utf8'));
      jws = JSON.parse(await readFile(join(cacheDir, `${domain}.bundle.json`), 'utf8'));
    } catch (err) {
      throw new BundleError('bundle.unavailable', `no cached bundle of ${domain}: ${String(err)}`, { cause: err });
    }
    const k = keys as Partial<BundleKeys> | null;
    if (k === null || !isJwks(k.control) || !isJwks(k.token)) {
      throw new BundleError('bundle.malformed', 'the cached key sets are not JWKS');
    }
    return accept(domain, jws, { control: k.control, token: k.token }, 'cache');
  }

  /** One pass over every domain; `fromCache`: fall back to the cache for a domain that fails. */
  async function pass(fromCache: boolean): Promise<RefreshResult> {
    const failed: RefreshResult['failed'] = [];
    const updated: Entry[] = [];
    const good: { domain: string; jws: unknown }[] = [];
    let keys: BundleKeys | undefined;
    let keysError: BundleError | undefined;
    let bearer: string | undefined;
    try {
      keys = await fetchKeys();
      bearer = await token();
    } catch (err) {
      keysError =
        err instanceof BundleError
          ? err
          : new BundleError('bundle.unavailable', `credentials: ${String(err)}`, { cause: err });
    }
    await Promise.all(
      domains.map(async (domain) => {
        let error: BundleError;
        if (keys !== undefined) {
          try {
            const jws = await getJson(`/v1/domains/${encodeURIComponent(domain)}/bundle`, bearer);
            updated.push(await accept(domain, jws, keys, 'server'));
            good.push({ domain, jws });
            return;
          } catch (err) {
            error = asBundleError(err, domain);
          }
        } else {
          error = keysError!;
        }
        if (fromCache && !entries.has(domain)) {
          try {
            updated.push(await readCache(domain));
            return;
          } catch {
            // The node's error is the one worth reporting.
          }
        }
        failed.push({ domain, error });
      }),
    );
    swap(updated);
    if (keys !== undefined) {
      try {
        await writeCache(keys, good);
      } catch {
        // A cache that cannot be written costs only the start from it.
      }
    }
    return { updated: updated.map((e) => e.held.domain).sort(), failed };
  }

  /** Passes never overlap: a pass asked for while one runs waits for it, then runs. */
  function serialized(fromCache: boolean): Promise<RefreshResult> {
    const run = (passing ?? Promise.resolve()).catch(() => undefined).then(() => pass(fromCache));
    passing = run;
    return run;
  }

  return {
    ready() {
      readying ??= serialized(true).then((r) => {
        const missing = domains.filter((d) => !entries.has(d));
        if (missing.length > 0) {
          const why = r.failed.map((f) => `${f.domain}: ${f.error.code} ${f.error.message}`).join('; ');
          readying = undefined;
          throw new Error(`no bundle for ${missing.join(', ')} (${why})`);
        }
        return r;
      });
      return readying;
    },
    refresh() {
      return serialized(false);
    },
    checkClaims(claims, action, resource, context) {
      const d = decideToken(catalog, claims, action, resource, {
        now: clock(),
        clockSkewSeconds: skew,
        ...(context !== undefined ? { context } : {}),
      });
      return { allowed: d.allowed, status: d.status, reason: d.reason };
    },
    held(domain) {
      const e = entries.get(domain.toLowerCase());
      return e === undefined ? undefined : { ...e.held };
    },
  };
}
