import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HttpHandler, HttpRequest as HttpRequestType, HttpResponseInit } from '@azure/functions';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Runner } from '../local/host/runner';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { parseReceived, type SmtpSink } from '../local/peers/smtpSink';
import type { AccountInput } from '../shared/config';
import { setApp } from '../shared/app';
import type { AccountStatus } from '../shared/accounts/accountStatus';
import { HttpRequest, InvocationContext } from './support/azureFunctions';
import { browserTestsSkipped, launchChromium } from './support/chromium';
import { serveFunctions } from './support/functionsHost';
import { startSendHarness, testAccount, type SendHarness, startTokenSink } from './support/sendHarness';

const skip = browserTestsSkipped();
const KEY = 'test-function-key_0123==';
const HOUR = 3_600_000;
const iso = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();

const HOSTILE_NAME = '<img src=x onerror=alert(1)>';
const HOSTILE_ERROR = '<script>alert(2)</script>';
const HOSTILE_PROVIDER_ERROR = '<svg onload=alert(3)>';
const HOSTILE_USER = '"><img src=x onerror=alert(4)>';

type Seed = { input: Partial<AccountInput> & { id: string }; status?: Omit<AccountStatus, 'accountId'> };

const ACCOUNTS: Record<string, Seed> = {
  ready: {
    input: { id: 'ready', displayName: 'Ready mailbox' },
    status: {
      state: 'ready',
      authorizedUser: 'ready@example.com',
      authorizedAt: iso(-2 * HOUR),
      lastRefreshAt: iso(-HOUR),
      lastRefreshOkAt: iso(-HOUR),
      tokenExpiresAt: iso(HOUR),
    },
  },
  reauth: {
    input: { id: 'reauth' },
    status: {
      state: 'reauthorization_required',
      authorizedUser: 'reauth@example.com',
      lastRefreshAt: iso(-HOUR),
      lastErrorCode: 'invalid_grant',
      lastError: 'The refresh token expired because it was not used for 90 days. Authorize the mailbox again.',
      providerError: 'invalid_grant AADSTS700082',
    },
  },
  config: {
    input: { id: 'config' },
    status: {
      state: 'configuration_error',
      lastErrorCode: 'smtp_auth_disabled',
      lastError: 'SMTP AUTH is disabled for this tenant or mailbox (535 5.7.139)',
    },
  },
  paused: {
    input: { id: 'paused' },
    status: {
      state: 'paused',
      pausedUntil: iso(2 * HOUR),
      lastErrorCode: 'mailbox_full',
      lastError: 'The sending mailbox is full',
    },
  },
  stale: {
    input: { id: 'stale' },
    status: { state: 'ready', authorizedAt: iso(-40 * 24 * HOUR), lastRefreshOkAt: iso(-30 * HOUR), lastRefreshAt: iso(-HOUR) },
  },
  fresh: { input: { id: 'fresh' } },
  hostile: {
    input: { id: 'hostile', displayName: HOSTILE_NAME },
    status: {
      state: 'reauthorization_required',
      authorizedUser: HOSTILE_USER,
      lastError: HOSTILE_ERROR,
      providerError: HOSTILE_PROVIDER_ERROR,
    },
  },
  app: { input: { id: 'app', flow: 'client_credentials' } },
};

let azurite: Azurite;
let sink: SmtpSink;
let harness: SendHarness;
let host: Runner;
let admin: HttpHandler;
let browser: Browser;
const authorizeHits: URL[] = [];

/** The OAuth flow has its own browser test: here it is enough to see the request arrive. */
async function authorizeStub(request: HttpRequestType): Promise<HttpResponseInit> {
  authorizeHits.push(new URL(request.url));
  return { status: 200, body: `authorize ${request.params.id}`, headers: { 'Content-Type': 'text/plain' } };
}

before(async () => {
  let served: Awaited<ReturnType<typeof serveFunctions>>;
  [azurite, sink, served] = await Promise.all([
    startAzurite(),
    startTokenSink(),
    // As registered, on the local Functions host with a key required, as in Azure: the page must carry it.
    serveFunctions({
      names: ['admin', 'authorize', 'accountTest'],
      replace: { authorize: authorizeStub },
      env: { LOCAL_FUNCTION_KEY: KEY },
    }),
  ]);
  host = served.runner;
  admin = served.handlers.admin!;
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: Object.values(ACCOUNTS).map(({ input }) => testAccount({ port: sink.port, ...input })),
  });
  // The page's same-origin check and its Authorize links use the public base URL: here, the host's.
  setApp({ ...harness.runtime, publicBaseUrl: host.url });
  for (const [id, { status }] of Object.entries(ACCOUNTS)) {
    if (status) await harness.runtime.accountStatus.patch(id, status);
  }
  if (!skip) browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await harness?.stop();
  await host?.stop();
  await sink?.stop();
  await azurite?.stop();
});

async function render(query = ''): Promise<HttpResponseInit> {
  const request = new HttpRequest({ method: 'GET', url: `${host.url}/api/status${query}` });
  return (await admin(request, new InvocationContext({ functionName: 'admin' }))) as HttpResponseInit;
}

describe('the status page as served', () => {
  test('carries the function key only into links and form actions', async () => {
    const served = String((await render(`?code=${encodeURIComponent(KEY)}`)).body);
    // The search is a GET form: a browser drops its action's query, so the key rides in one hidden field.
    const hidden = `<input type="hidden" name="code" value="${KEY}" />`;
    assert.equal(served.split(hidden).length - 1, 1, 'the search form carries the key once');
    const body = served.replace(hidden, '');
    const encoded = new URLSearchParams({ code: KEY }).toString();
    const everywhere = body.split(encoded).length - 1;
    const inAttributes = [...body.matchAll(/(?:href|action)="([^"]*)"/g)].filter(([, url]) => url!.includes(encoded)).length;
    const accounts = Object.keys(ACCOUNTS).length;
    const stateLinks = body.match(/data-state-count=/g)?.length ?? 0;
    assert.ok(stateLinks > 0);
    assert.equal(
      inAttributes,
      accounts - 1 + accounts + 1 + stateLinks + 1,
      'each Authorize link (none for app-only), each form, the JSON link, the counts by state, the create form',
    );
    assert.equal(everywhere, inAttributes, 'the key appears nowhere else');
    assert.ok(!body.includes(KEY), 'never unencoded');
  });

  test('without a key, no link carries one', async () => {
    assert.doesNotMatch(String((await render()).body), /code=/);
  });

  test('is refused without the function key, as in Azure', async () => {
    assert.equal((await fetch(`${host.url}/api/status`)).status, 401);
    assert.equal((await fetch(`${host.url}/api/status?code=${encodeURIComponent(KEY)}`)).status, 200);
  });

  test('is sent with the security headers of every HTML page', async () => {
    const headers = (await render()).headers as Record<string, string>;
    assert.equal(headers['Cache-Control'], 'no-store');
    assert.equal(headers['Referrer-Policy'], 'no-referrer');
    assert.equal(headers['X-Frame-Options'], 'DENY');
    assert.match(headers['Content-Security-Policy']!, /default-src 'none'/);
  });
});

describe('the status page in headless Chromium', { skip }, () => {
  let context: BrowserContext;
  let page: Page;
  const dialogs: string[] = [];

  before(async () => {
    context = await browser.newContext();
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.goto(`${host.url}/api/status?code=${encodeURIComponent(KEY)}`);
  });

  after(async () => {
    await context?.close();
  });

  const card = (id: string) => page.locator(`section[data-account="${id}"]`);

  const expected: [string, string, string, RegExp][] = [
    ['ready', 'ready', 'Ready', /Ready to send as ready@example\.com\./],
    [
      'reauth',
      'reauthorization_required',
      'Needs re-authorization',
      /Needs re-authorization: The refresh token expired because it was not used for 90 days\. Authorize the mailbox again \(invalid_grant AADSTS700082\)\. Open Authorize and sign in as reauth@example\.com\./,
    ],
    [
      'config',
      'configuration_error',
      'Configuration error',
      /Configuration problem: SMTP AUTH is disabled .*\(smtp_auth_disabled\)\. Fix: enable SMTP AUTH .*Set-CASMailbox/,
    ],
    [
      'paused',
      'paused',
      'Paused',
      /Paused until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 2 hours\): The sending mailbox is full \(mailbox_full\)\. Empty the mailbox's Sent Items/,
    ],
    ['stale', 'stale', 'Stale', /Stale: no successful token refresh since .* \(30 hours ago\), over a day\./],
    ['fresh', 'not_authorized', 'Not authorized', /Not authorized yet\. Open Authorize and sign in as fresh@example\.com\./],
    ['app', 'not_authorized', 'Not authorized', /App-only, no sign-in needed/],
  ];
  for (const [id, state, label, sentence] of expected) {
    test(`shows the "${label}" state of account ${id} in words`, async () => {
      assert.equal(await card(id).getAttribute('data-state'), state);
      assert.equal((await card(id).locator('.state').textContent())?.trim(), label);
      assert.match((await card(id).locator('.sentence').textContent()) ?? '', sentence);
    });
  }

  test('labels states with color and a sign, not color alone', async () => {
    const looks = await page.$$eval('.state', (labels) =>
      labels.map((label) => {
        const view = label.ownerDocument.defaultView!;
        return {
          text: label.textContent,
          color: view.getComputedStyle(label).color,
          sign: view.getComputedStyle(label, '::before').content,
        };
      }),
    );
    assert.equal(looks.length, Object.keys(ACCOUNTS).length);
    for (const look of looks) {
      assert.ok(look.text && look.text.length > 3);
      assert.notEqual(look.sign, 'none');
    }
    assert.ok(new Set(looks.map((look) => look.color)).size >= 3, 'ok, warning and problem states differ in color too');
  });

  test("shows the last day's counts and the app-only note instead of Authorize", async () => {
    assert.equal(await card('ready').locator('[data-count="sent"]').textContent(), '0');
    assert.equal(await card('app').locator('a:has-text("Authorize")').count(), 0);
    assert.match((await card('app').locator('.actions').textContent()) ?? '', /app-only, no sign-in needed/);
  });

  test('shows hostile account values as text: no script runs, nothing is injected', async () => {
    await page.waitForTimeout(300);
    assert.deepEqual(dialogs, []);
    assert.equal(await page.locator('img, script, svg, iframe').count(), 0);
    const text = (await card('hostile').textContent()) ?? '';
    for (const value of [HOSTILE_NAME, HOSTILE_ERROR, HOSTILE_PROVIDER_ERROR, HOSTILE_USER])
      assert.ok(text.includes(value), value);
    assert.equal(await card('hostile').locator('.state').textContent(), 'Needs re-authorization');
  });

  test('Authorize starts the flow: the request reaches the authorize route with the function key', async () => {
    await card('fresh').locator('a:has-text("Authorize")').click();
    await page.waitForURL(`${host.url}/api/accounts/fresh/authorize?**`);
    const hit = authorizeHits.at(-1);
    assert.equal(hit?.pathname, '/api/accounts/fresh/authorize');
    assert.equal(hit?.searchParams.get('code'), KEY);
    await page.goBack();
  });

  test('the send-test-email form queues a test email that reaches the SMTP sink through the queue trigger', async () => {
    const before = sink.received.length;
    await card('ready').locator('input[name="to"]').fill('admin@example.com');
    await card('ready').locator('button:has-text("Send test email")').click();
    // Either redirected back to the page, or left on the form's answer page: say which.
    await page.waitForURL((url) => url.searchParams.has('sent') || url.pathname.endsWith('/test'), { waitUntil: 'load' });
    assert.equal(new URL(page.url()).pathname, '/api/status', `the form was answered: ${await page.locator('body').innerText()}`);
    const id = new URL(page.url()).searchParams.get('sent')!;
    assert.equal(new URL(page.url()).searchParams.get('code'), KEY, 'the redirect keeps the key');
    assert.match((await page.locator('.notice').textContent()) ?? '', new RegExp(`Test email ${id} is queued`));

    await harness.drain();
    const mails = await sink.waitForMessages(before + 1, 10_000);
    const mail = mails.at(-1)!;
    assert.equal(mail.authUser, 'ready@example.com');
    assert.deepEqual([...mail.envelope.to], ['admin@example.com']);
    const parsed = await parseReceived(mail);
    assert.equal(parsed.subject, 'oauth-outbox test from ready');
    assert.match(parsed.text ?? '', new RegExp(`message id ${id}`));
    assert.equal((await harness.ledger(id))?.status, 'sent');

    await page.reload();
    assert.equal(await card('ready').locator('[data-count="sent"]').textContent(), '1');
    assert.equal(sink.received.length, before + 1, 'reloading the page sends nothing again');
  });
});
