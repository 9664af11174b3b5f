import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWSER_TESTS, launchChromium } from '../oidc/code-flow-fixture.js';
import { configEnv, runCli, startLoginNode, type LoginNode } from './login-fixture.js';

// issue 4 "The CLI and the management API use these tokens": `gatehouse login` through the real
// login and consent pages in Debian's chromium (JavaScript off), the loopback redirect back to the
// CLI, and a later server-mode command using the stored token.
const describeWithBrowser = BROWSER_TESTS ? describe : describe.skip;

let node: LoginNode;
let browser: Browser | undefined;
beforeAll(async () => {
  node = await startLoginNode();
  if (BROWSER_TESTS) browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await node?.close();
});

/** Signs alice in on the page the CLI opened, then presses `decision` on the consent page. */
async function signIn(page: Page, url: string, decision: 'Allow' | 'Deny'): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('alice-password-0123');
  await page.getByRole('button', { name: 'Sign in' }).click();
  // The CLI is a native app: RFC 8252 §8.6, consent is always asked (docs/cli.md).
  await page.getByRole('button', { name: decision }).click();
}

describeWithBrowser('gatehouse login in a browser', () => {
  it('signs in, stores the token with a refresh token, and a later export uses it', async () => {
    const context = await browser!.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      const env = configEnv(node.dir, 'browser-allow');
      const login = await runCli(['login', '--server', node.base], {
        env,
        openBrowser: (url) => signIn(page, url, 'Allow'),
        timeoutMs: 20_000,
      });
      expect(login.exitCode, login.stderr.join('\n')).toBe(0);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Signed in to Gatehouse');
      const file = JSON.parse(readFileSync(join(env.GATEHOUSE_CONFIG_DIR, 'credentials.json'), 'utf8')) as {
        servers: Record<string, { accessToken: string; refreshToken?: string }>;
      };
      const entry = file.servers[node.base]!;
      expect(decodeJwt(entry.accessToken)).toMatchObject({ sub: 'user.alice', aud: `${node.base}/v1` });
      expect(entry.refreshToken).toEqual(expect.any(String));
      const exported = await runCli(['export', 'library', '--server', node.base], { env });
      expect(exported.exitCode, exported.stderr.join('\n')).toBe(0);
      expect(exported.stdout.join('\n')).toContain('name: library');
    } finally {
      await context.close();
    }
  });

  it('says the sign-in was denied, exits 1 and stores nothing when the user presses Deny', async () => {
    const context = await browser!.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      const env = configEnv(node.dir, 'browser-deny');
      const login = await runCli(['login', '--server', node.base], {
        env,
        openBrowser: (url) => signIn(page, url, 'Deny'),
        timeoutMs: 20_000,
      });
      expect(login.exitCode).toBe(1);
      expect(login.stderr.join('\n')).toMatch(/denied \(access_denied/);
      expect(() => readFileSync(join(env.GATEHOUSE_CONFIG_DIR, 'credentials.json'))).toThrow();
    } finally {
      await context.close();
    }
  });
});
