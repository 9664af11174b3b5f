/**
 * Loads oidc-provider once, without its Node.js 20 notice on the console.
 *
 * oidc-provider 9 prints "oidc-provider WARNING: Unsupported runtime. Use Node.js v22.x LTS, or a
 * later LTS release." with console.warn when its module is evaluated on a Node.js release whose
 * LTS codename sorts before "Jod" (lib/index.js). Gatehouse supports Node.js ≥ 20.19 (CI runs
 * 20.20, where the provider passes our tests), so on those nodes the line is noise in every
 * server's output and in every test run. The module is therefore imported here, dynamically,
 * with console.warn wrapped for the duration of the import so that exactly that one line is
 * caught and handed back (the caller logs it at debug level); every other warning, from
 * oidc-provider or anything else running meanwhile, passes through untouched.
 *
 * Limits: only the first importer in a process is covered (ES modules are evaluated once); code
 * that imports 'oidc-provider' statically before this runs prints the notice itself.
 */

import type * as OidcProviderModule from 'oidc-provider';

/** The module namespace of oidc-provider. */
export type OidcProviderExports = typeof OidcProviderModule;

/** The loaded module and the runtime notice it printed, if it printed one. */
export interface LoadedOidcProvider {
  readonly module: OidcProviderExports;
  /** The "Unsupported runtime" line oidc-provider wanted to print, undefined when it did not. */
  readonly runtimeNotice: string | undefined;
}

const RUNTIME_NOTICE = 'oidc-provider WARNING: Unsupported runtime.';

let loading: Promise<LoadedOidcProvider> | undefined;

/**
 * The oidc-provider module, imported once per process with its runtime notice caught (see the
 * module comment). Rejects when the import fails (the error is the cause).
 */
export function loadOidcProvider(): Promise<LoadedOidcProvider> {
  loading ??= importQuietly().catch((err: unknown) => {
    loading = undefined;
    throw new Error('oidc-provider could not be loaded', { cause: err });
  });
  return loading;
}

async function importQuietly(): Promise<LoadedOidcProvider> {
  const original = console.warn;
  let runtimeNotice: string | undefined;
  const filter = (...args: unknown[]): void => {
    // The notice is one string, wrapped in ANSI colour codes when stderr is a TTY.
    const [first] = args;
    if (args.length === 1 && typeof first === 'string' && first.includes(RUNTIME_NOTICE)) {
      runtimeNotice = first.slice(first.indexOf(RUNTIME_NOTICE)).replace(/[^\x20-\x7e]+\[?[0-9;]*m?$/, '');
      return;
    }
    original.apply(console, args);
  };
  console.warn = filter;
  try {
    const module = await import('oidc-provider');
    return { module, runtimeNotice };
  } finally {
    // Someone else may have replaced console.warn meanwhile: theirs stays.
    if (console.warn === filter) console.warn = original;
  }
}
