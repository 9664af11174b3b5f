/**
 * The loopback redirect of a native app (RFC 8252 §7.3, §8.3): an HTTP listener on 127.0.0.1 on
 * a port the system picks, whose `/callback` receives the browser at the end of the sign-in. It
 * takes exactly one answer: the first GET of `/callback` is handled and answered with a small
 * page, then the listener closes. Other paths get 404 and do not count (a browser may ask for
 * `/favicon.ico`). When no answer comes in time, it closes and the wait fails.
 */

import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The path of the redirect URI. */
export const CALLBACK_PATH = '/callback';

/** Thrown by a handler to refuse the answer: `message` is shown on the page and to the caller. */
export class RedirectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedirectError';
  }
}

/** Thrown by wait() when no answer came in time. */
export class RedirectTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer from the browser within ${formatDuration(timeoutMs)}`);
    this.name = 'RedirectTimeoutError';
  }
}

/** A listening loopback redirect. */
export interface LoopbackRedirect {
  /** `http://127.0.0.1:<port>/callback`. */
  readonly redirectUri: string;
  /**
   * Waits for the browser's redirect and passes its query to `handle`, whose result it returns.
   * The browser is answered when `handle` has finished: a success page, or — when `handle`
   * throws — an error page with the message of a RedirectError (a generic one for other
   * errors), and the error is thrown on. Rejects with RedirectTimeoutError when nothing came in
   * `timeoutMs`. The listener is closed in every case.
   */
  wait<T>(handle: (query: URLSearchParams) => Promise<T>): Promise<T>;
  /** Closes the listener (when wait() was never called, or to give up). */
  close(): void;
}

/** Options of listenForRedirect. */
export interface LoopbackOptions {
  /** How long wait() waits for the browser (default 5 minutes). */
  timeoutMs?: number;
  /** The listener's address (default 127.0.0.1, as RFC 8252 §8.3 recommends over localhost). */
  host?: '127.0.0.1' | '::1';
}

/** Default LoopbackOptions.timeoutMs. */
export const DEFAULT_REDIRECT_TIMEOUT_MS = 5 * 60_000;

/** `5 minutes`, `1 minute`, `8 seconds`, `0.3 seconds`. */
export function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} minute${ms === 60_000 ? '' : 's'}`;
  return `${Math.round(ms / 100) / 10} seconds`;
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => escapes[c]!);
}

/** The page the browser gets: no scripts, nothing loaded from anywhere. */
export function redirectPage(title: string, paragraphs: string[]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Gatehouse</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#1f2328}h1{font-size:1.4rem}code{background:#f0f1f3;padding:0 .25rem}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${paragraphs.map((p) => `<p>${p}</p>`).join('\n')}
</body>
</html>
`;
}

function answer(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    connection: 'close',
  });
  res.end(html);
}

/** Starts listening; the redirect URI names the port the system chose. */
export async function listenForRedirect(options: LoopbackOptions = {}): Promise<LoopbackRedirect> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.timeoutMs ?? DEFAULT_REDIRECT_TIMEOUT_MS;
  let onCallback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let handled = false;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (path !== CALLBACK_PATH || req.method !== 'GET' || handled || onCallback === undefined) {
      answer(
        res,
        404,
        redirectPage('Not found', [
          handled ? 'This sign-in has been handled already. You can close this window.' : 'Nothing here.',
        ]),
      );
      return;
    }
    handled = true;
    onCallback(req, res);
  });
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const redirectUri = `http://${host === '::1' ? '[::1]' : host}:${port}${CALLBACK_PATH}`;
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    server.close();
    server.closeAllConnections();
  };

  return {
    redirectUri,
    close,
    wait<T>(handle: (query: URLSearchParams) => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          onCallback = undefined;
          close();
          reject(new RedirectTimeoutError(timeoutMs));
        }, timeoutMs);
        onCallback = (req, res) => {
          clearTimeout(timer);
          // No new connections from now on; this one is closed once answered.
          server.close();
          const query = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams;
          const finish = (status: number, html: string, settle: () => void): void => {
            res.on('close', close);
            answer(res, status, html);
            settle();
          };
          handle(query).then(
            (value) =>
              finish(
                200,
                redirectPage('Signed in to Gatehouse', ['You can close this window and go back to the terminal.']),
                () => resolve(value),
              ),
            (err: unknown) =>
              finish(
                400,
                redirectPage('Sign-in failed', [
                  escapeHtml(err instanceof RedirectError ? err.message : 'The sign-in could not be completed.'),
                  'Go back to the terminal for the details, and run <code>gatehouse login</code> again.',
                ]),
                () => reject(err),
              ),
          );
        };
      });
    },
  };
}
