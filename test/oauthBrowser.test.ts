import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HttpHandler, HttpResponseInit } from '@azure/functions';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Runner } from '../local/host/runner';
import { openVerifier } from '../shared/authorization/authRequests';
import { authRequestTable } from '../shared/authorization/startAuthorization';
import { refreshTokenSecretName } from '../shared/tokens/tokenStore';
import { ALICE, searchableParts, startAuthorizationBench, type AuthorizationBench } from './support/authorizationBench';
import { browserTestsSkipped, launchChromium } from './support/chromium';
import { serveFunctions } from './support/functionsHost';

const skip = browserTestsSkipped();

let host: Runner;
let bench: AuthorizationBench;
let browser: Browser;
/**
 * Answers instead of the function when it returns a response (a test holding a browser back). Needed because
 * Playwright's page.route does not see requests reached through a redirect, as the OAuth callback is.
 */
let intercept: ((url: URL) => HttpResponseInit | undefined) | undefined;

/** Every page body the functions answer goes to the leak check, and `intercept` may answer first. */
function watched(handler: HttpHandler): HttpHandler {
  return async (request, context) => {
    const held = intercept?.(new URL(request.url));
    if (held) return held;
    const response = (await handler(request, context)) as HttpResponseInit;
    const body = typeof response.body === 'string' ? response.body : JSON.stringify(response.jsonBody ?? '');
    bench.outputs.push(body);
    return response;
  };
}

before(async () => {
  if (skip) return;
  // The functions as registered, on the local Functions host: the same routes, auth levels and HTTP handling as npm start.
  ({ runner: host } = await serveFunctions({
    names: ['authorize', 'oauthCallback'],
    wrap: watched,
    log: (line) => bench?.outputs.push(line),
  }));
  [bench, browser] = await Promise.all([startAuthorizationBench(host.url), launchChromium()]);
});

after(async () => {
  await browser?.close();
  await bench?.stop();
  await host?.stop();
});

/** The visible text of an element, whitespace collapsed. */
async function textIn(page: Page, selector: string): Promise<string> {
  return ((await page.textContent(selector)) ?? '').replace(/\s+/g, ' ').trim();
}

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  page.on('dialog', () => assert.fail('a dialog opened: script ran'));
  return { context, page };
}

/** Records what the browser holds (binding cookie, code, verifier) for the leak check. */
async function recordSecrets(context: BrowserContext, callbackUrl: string) {
  const url = new URL(callbackUrl);
  const code = url.searchParams.get('code');
  if (code) bench.secrets.add(code);
  const cookie = (await context.cookies(host.url)).find((c) => c.name === 'oauth-outbox-auth');
  if (!cookie) return;
  bench.secrets.add(cookie.value);
  const row = await authRequestTable(bench.runtime).find(url.searchParams.get('state') ?? '');
  const verifier = row && openVerifier(row, cookie.value);
  if (verifier) bench.secrets.add(verifier);
}

/** From the app's authorize URL through the provider's sign-in page; stops on the consent page. */
async function signIn(page: Page, accountId = 'mailbox') {
  await page.goto(`${host.url}/api/accounts/${accountId}/authorize`);
  await page.waitForURL(`${bench.idp.issuer}/interaction/**`);
  assert.equal(await page.inputValue('#login'), ALICE.email, 'the login hint names the mailbox');
  await page.fill('#password', ALICE.password);
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('h1:has-text("Permissions requested")');
}

/**
 * Runs the steps, holding the browser back when it reaches the app's callback (it sees a blank page);
 * returns the callback URL it was sent to.
 */
async function holdBackCallback(steps: () => Promise<void>): Promise<string> {
  let arrived: (url: string) => void = () => {};
  const held = new Promise<string>((resolve) => (arrived = resolve));
  const stopTimer = new AbortController();
  intercept = (url) => {
    if (url.pathname !== '/api/oauth/callback') return undefined;
    intercept = undefined;
    arrived(url.href);
    return { status: 200, headers: { 'content-type': 'text/plain' }, body: 'held back by the test' };
  };
  try {
    await steps();
    const timeout = sleep(15_000, undefined, { signal: stopTimer.signal }).then(() => {
      throw new Error('the browser never reached the callback');
    });
    timeout.catch(() => {});
    return await Promise.race([held, timeout]);
  } finally {
    stopTimer.abort();
    intercept = undefined;
  }
}

describe('authorization in headless Chromium', { skip }, () => {
  test("authorizes a mailbox by clicking through the provider's sign-in and consent pages", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page);
      assert.match((await page.textContent('ul')) ?? '', /https:\/\/outlook\.office\.com\/SMTP\.Send/);
      await page.click('button:has-text("Continue")');
      await page.waitForURL(`${host.url}/api/oauth/callback?**`);
      await recordSecrets(context, page.url());

      assert.equal(await page.textContent('h1'), 'Mailbox authorized');
      assert.match(await textIn(page, 'main'), /can now send mail as alice@contoso\.test/);
      const cookie = (await context.cookies(host.url)).find((c) => c.name === 'oauth-outbox-auth');
      assert.equal(cookie?.httpOnly, true);
      assert.equal(cookie?.sameSite, 'Lax');
      assert.equal(cookie?.path, '/');
      assert.ok(bench.vault.secret(refreshTokenSecretName('mailbox')));
      assert.equal((await bench.runtime.accountStatus.get('mailbox'))?.state, 'ready');
    } finally {
      await context.close();
    }
  });

  test('refuses the callback in another browser, then finishes in the browser that started it', async () => {
    const started = await newPage();
    const stranger = await newPage();
    try {
      const callbackUrl = await holdBackCallback(async () => {
        await signIn(started.page);
        await started.page.click('button:has-text("Continue")');
      });
      await recordSecrets(started.context, callbackUrl);

      await stranger.page.goto(callbackUrl);
      assert.equal(await stranger.page.textContent('h1'), 'Started in another browser');

      await started.page.goto(callbackUrl);
      assert.equal(await started.page.textContent('h1'), 'Mailbox authorized');
    } finally {
      await Promise.all([started.context.close(), stranger.context.close()]);
    }
  });

  test('shows a hostile error_description as text, and no script runs', async () => {
    const { context, page } = await newPage();
    try {
      const hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';
      const declined = new URL(
        await holdBackCallback(async () => {
          await signIn(page);
          await page.click('button:has-text("Cancel")');
        }),
      );
      assert.equal(declined.searchParams.get('error'), 'access_denied');
      await recordSecrets(context, declined.href);
      declined.searchParams.set('error_description', hostile);
      await page.goto(declined.href);

      assert.equal(await page.textContent('h1'), 'The provider refused the authorization');
      assert.match(await textIn(page, 'main'), /permission to send mail was not granted/);
      assert.equal(await page.textContent('dd.mono'), hostile);
      assert.equal(await page.locator('main img, main script').count(), 0);
      assert.equal(await page.evaluate(() => (globalThis as { pwned?: number }).pwned), undefined);
    } finally {
      await context.close();
    }
  });

  test('no token, code, verifier, cookie value or client secret appears in any log line or page', () => {
    const leaks: string[] = [];
    for (const secret of bench.secrets) {
      for (const part of searchableParts(secret)) {
        if (part.length < 8) continue;
        for (const output of bench.outputs)
          if (output.includes(part)) leaks.push(`${part.slice(0, 12)}… in ${output.slice(0, 120)}`);
      }
    }
    assert.ok(bench.outputs.length > 5);
    assert.deepEqual(leaks, []);
  });
});
