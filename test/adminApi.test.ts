import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { HttpResponseInit } from '@azure/functions';
import { accountDetail } from '../functions/accountDetail';
import { accountList } from '../functions/accountList';
import { accountTest } from '../functions/accountTest';
import { messages } from '../functions/messages';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import type { AccountView } from '../shared/admin/accountView';
import { QUEUES, TABLES } from '../shared/names';
import { DeliveryLedger, type DeliveryStatus } from '../shared/storage/deliveryLedger';
import { decodeQueueJson } from '../shared/message/queueJson';
import { HttpRequest } from './support/azureFunctions';
import { startSendHarness, testAccount, tokenFor, type SendHarness } from './support/sendHarness';

const BASE = 'http://127.0.0.1:7071';
const HOUR = 3_600_000;
const iso = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();

let azurite: Azurite;
let harness: SendHarness;

before(async () => {
  azurite = await startAzurite();
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [
      testAccount({
        id: 'main',
        port: 9,
        default: true,
        displayName: 'Main mailbox',
        from: 'news@example.com',
        allowedFrom: ['news@example.com', 'main@example.com'],
      }),
      testAccount({ id: 'reauth', port: 9 }),
      testAccount({ id: 'stale', port: 9 }),
      testAccount({ id: 'app', port: 9, flow: 'client_credentials' }),
    ],
  });
  const status = harness.runtime.accountStatus;
  await status.patch('main', {
    state: 'ready',
    authorizedUser: 'main@example.com',
    authorizedAt: iso(-2 * HOUR),
    lastRefreshAt: iso(-HOUR),
    lastRefreshOkAt: iso(-HOUR),
    tokenExpiresAt: iso(HOUR),
  });
  await status.patch('reauth', {
    state: 'reauthorization_required',
    authorizedUser: 'reauth@example.com',
    lastRefreshAt: iso(-HOUR),
    lastErrorCode: 'invalid_grant',
    lastError: 'The refresh token expired because it was not used for 90 days. Authorize the mailbox again.',
    providerError: 'invalid_grant AADSTS700082',
  });
  await status.patch('stale', {
    state: 'ready',
    authorizedAt: iso(-40 * 24 * HOUR),
    lastRefreshOkAt: iso(-30 * HOUR),
    lastRefreshAt: iso(-HOUR),
  });

  const ledger = new DeliveryLedger(harness.runtime.storage.table(TABLES.deliveries));
  const rows: [string, string, DeliveryStatus][] = [
    ['m1', 'main', 'sent'],
    ['m2', 'main', 'sent'],
    ['m3', 'main', 'failed'],
    ['m4', 'main', 'deferred'],
    ['m5', 'main', 'sending'],
    ['r1', 'reauth', 'deferred'],
  ];
  for (const [id, account, status] of rows) {
    await ledger.write({ id, account, status, attempts: 1, deferrals: 0, firstSeenAt: iso(-HOUR) });
  }
  // Older than the 24-hour window: written directly, since the ledger stamps updatedAt itself.
  await ledger.table.upsertEntity({
    partitionKey: 'old',
    rowKey: 'd',
    messageKey: 'old',
    account: 'main',
    status: 'sent',
    attempts: 1,
    deferrals: 0,
    updatedAt: iso(-30 * HOUR),
  });
});

after(async () => {
  await harness?.stop();
  await azurite?.stop();
});

beforeEach(async () => {
  await harness.runtime.storage.queue(QUEUES.outbox).clearMessages();
});

function get(path: string, params: Record<string, string> = {}) {
  return new HttpRequest({ method: 'GET', url: `${BASE}${path}`, params });
}

function postJson(
  path: string,
  body: unknown,
  options: { params?: Record<string, string>; headers?: Record<string, string> } = {},
) {
  return new HttpRequest({
    method: 'POST',
    url: `${BASE}${path}`,
    params: options.params ?? {},
    headers: { 'content-type': 'application/json', ...options.headers },
    body: { string: typeof body === 'string' ? body : JSON.stringify(body) },
  });
}

function postForm(path: string, fields: Record<string, string>, headers: Record<string, string>, params: Record<string, string>) {
  return new HttpRequest({
    method: 'POST',
    url: `${BASE}${path}`,
    params,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: { string: new URLSearchParams(fields).toString() },
  });
}

function json<T = Record<string, unknown>>(response: HttpResponseInit): T {
  return response.jsonBody as T;
}

async function queued(): Promise<Record<string, unknown>[]> {
  const queue = harness.runtime.storage.queue(QUEUES.outbox);
  const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 5 });
  return receivedMessageItems.map((item) => decodeQueueJson<Record<string, unknown>>(item.messageText));
}

const VIEW_KEYS = [
  'id',
  'displayName',
  'provider',
  'flow',
  'isDefault',
  'user',
  'from',
  'allowedFrom',
  'appOnly',
  'status',
  'authorizedUser',
  'authorizedAt',
  'authorizedBy',
  'tokenExpiresAt',
  'lastRefreshAt',
  'lastRefreshOkAt',
  'lastError',
  'lastErrorCode',
  'providerError',
  'recentProblems',
  'pausedUntil',
  'counts',
  'links',
  'transport',
  'graphNotice',
  'graphSince',
].sort();

describe('GET /api/accounts and /api/accounts/{id}', () => {
  test('lists every configured account, in configuration order, with the same keys each', async () => {
    const response = await accountList(get('/api/accounts'));
    assert.equal(response.status, 200);
    assert.equal((response.headers as Record<string, string>)['Cache-Control'], 'no-store');
    const { accounts } = json<{ accounts: AccountView[] }>(response);
    assert.deepEqual(
      accounts.map((a) => a.id),
      ['main', 'reauth', 'stale', 'app'],
    );
    for (const view of accounts) {
      assert.deepEqual(Object.keys(view).sort(), VIEW_KEYS, view.id);
      assert.deepEqual(Object.keys(view.status).sort(), ['label', 'sentence', 'state', 'storedState', 'tone']);
      assert.deepEqual(Object.keys(view.counts).sort(), ['deferredNow', 'failed24h', 'sent24h']);
    }
  });

  test('a ready account shows its identity, token times, counts of the last 24 hours and its links', async () => {
    const view = json<AccountView>(await accountDetail(get('/api/accounts/main', { id: 'main' })));
    assert.equal(view.displayName, 'Main mailbox');
    assert.equal(view.provider, 'custom');
    assert.equal(view.flow, 'authorization_code');
    assert.equal(view.isDefault, true);
    assert.equal(view.user, 'main@example.com');
    assert.equal(view.from, 'news@example.com');
    assert.deepEqual(view.allowedFrom, ['news@example.com', 'main@example.com']);
    assert.deepEqual(view.status, {
      state: 'ready',
      storedState: 'ready',
      label: 'Ready',
      tone: 'ok',
      sentence: 'Ready to send as main@example.com.',
    });
    assert.equal(view.authorizedUser, 'main@example.com');
    const status = await harness.runtime.accountStatus.get('main');
    assert.equal(view.tokenExpiresAt, status?.tokenExpiresAt, 'the expiry the status table holds');
    assert.equal(view.lastError, null);
    assert.deepEqual(
      view.counts,
      { sent24h: 2, failed24h: 1, deferredNow: 1 },
      'the 30-hour-old row and the sending one are not counted',
    );
    assert.deepEqual(view.links, { authorize: `${BASE}/api/accounts/main/authorize`, test: `${BASE}/api/accounts/main/test` });
  });

  test('an account needing re-authorization says why, with the provider error code, and what to do', async () => {
    const view = json<AccountView>(await accountDetail(get('/api/accounts/reauth', { id: 'reauth' })));
    assert.equal(view.status.state, 'reauthorization_required');
    assert.equal(view.status.label, 'Needs re-authorization');
    assert.match(
      view.status.sentence,
      /^Needs re-authorization: The refresh token expired because it was not used for 90 days\. Authorize the mailbox again \(invalid_grant AADSTS700082\)\. Open Authorize and sign in as reauth@example\.com\./,
    );
    assert.equal(view.providerError, 'invalid_grant AADSTS700082');
    assert.equal(view.lastErrorCode, 'invalid_grant');
    assert.deepEqual(view.counts, { sent24h: 0, failed24h: 0, deferredNow: 1 });
  });

  test('an account whose grant was last proven over a day ago is stale, though its row still says ready', async () => {
    const view = json<AccountView>(await accountDetail(get('/api/accounts/stale', { id: 'stale' })));
    assert.equal(view.status.state, 'stale');
    assert.equal(view.status.storedState, 'ready');
    assert.equal(view.status.tone, 'bad');
    assert.match(
      view.status.sentence,
      /^Stale: no successful token refresh since \d{4}-\d\d-\d\d \d\d:\d\d UTC \(30 hours ago\), over a day\./,
    );
  });

  test('an app-only account has no Authorize link and no status row yet', async () => {
    const view = json<AccountView>(await accountDetail(get('/api/accounts/app', { id: 'app' })));
    assert.equal(view.appOnly, true);
    assert.equal(view.flow, 'client_credentials');
    assert.equal(view.links.authorize, null);
    assert.equal(view.status.state, 'not_authorized');
    assert.match(view.status.sentence, /^App-only, no sign-in needed/);
  });

  test('an unknown id is a 404 unknown_account that lists the known ids', async () => {
    const response = await accountDetail(get('/api/accounts/nope', { id: 'nope' }));
    assert.equal(response.status, 404);
    assert.deepEqual(response.jsonBody, { error: 'unknown_account', known: ['main', 'reauth', 'stale', 'app'] });
  });

  test('no token, refresh token, client id or secret name ever appears', async () => {
    const text = JSON.stringify(json(await accountList(get('/api/accounts'))));
    for (const account of ['main', 'reauth', 'stale', 'app']) {
      assert.ok(!text.includes(tokenFor(account)), 'access token');
      assert.ok(!text.includes(`refresh-${account}`), 'refresh token');
    }
    assert.doesNotMatch(text, /clientId|clientAuth|secretName|"outbox"/);
  });
});

describe('POST /api/messages', () => {
  const message = { id: 'invoice-1', to: ['a@example.com'], subject: 'Invoice', text: 'Hello' };

  test('accepts a valid message with 202 and its id, and puts it on the queue base64-encoded', async () => {
    const response = await messages(postJson('/api/messages', message));
    assert.equal(response.status, 202);
    assert.deepEqual(response.jsonBody, { id: 'invoice-1' });
    assert.deepEqual(await queued(), [message]);
  });

  test('gives a message without id a UUID and answers with it', async () => {
    const { id: _id, ...withoutId } = message;
    const response = await messages(postJson('/api/messages', { ...withoutId, account: 'reauth' }));
    assert.equal(response.status, 202);
    const { id } = json<{ id: string }>(response);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(await queued(), [{ ...withoutId, account: 'reauth', id }]);
  });

  const refused: [string, unknown, string, RegExp][] = [
    ['an unknown field', { ...message, priority: 'high' }, 'invalid_message', /unknown field\(s\) "priority"/],
    ['no recipient', { id: 'x', subject: 'Hi', text: 'Hi' }, 'invalid_message', /^to: at least one recipient is needed/],
    ['a bad address', { ...message, to: ['not-an-address'] }, 'invalid_message', /^to\[0\]: is not a valid email address/],
    [
      'CR/LF in the subject',
      { ...message, subject: 'Hi\r\nBcc: x@evil.test' },
      'invalid_message',
      /^subject: must not contain CR or LF/,
    ],
    [
      'an unknown account',
      { ...message, account: 'ghost' },
      'unknown_account',
      /^account: there is no account "ghost"; known: main, reauth, stale, app\./,
    ],
    [
      'a From the account may not use',
      { ...message, from: 'ceo@example.com' },
      'sender_not_allowed',
      /^from: ceo@example\.com is not allowed for account "main"/,
    ],
    ['a JSON array', [message], 'invalid_message', /must be a JSON object/],
  ];
  for (const [what, body, error, reasons] of refused) {
    test(`refuses ${what} with 400 and the reasons, and enqueues nothing`, async () => {
      const response = await messages(postJson('/api/messages', body));
      assert.equal(response.status, 400);
      const answer = json<{ error: string; reasons: string }>(response);
      assert.equal(answer.error, error);
      assert.match(answer.reasons, reasons);
      assert.deepEqual(await queued(), []);
    });
  }

  test('refuses a body that is not JSON with 400', async () => {
    const response = await messages(postJson('/api/messages', 'to=a@example.com&subject=Hi'));
    assert.equal(response.status, 400);
    assert.match(json<{ reasons: string }>(response).reasons, /^The body is not valid JSON/);
  });

  test('refuses a body over 64 KB with 413 and points to blob attachments', async () => {
    const big = { ...message, text: 'x'.repeat(70 * 1024) };
    const response = await messages(postJson('/api/messages', big));
    assert.equal(response.status, 413);
    assert.match(json<{ reasons: string }>(response).reasons, /mail-attachments\/<path>/);
    assert.deepEqual(await queued(), []);
  });

  test('refuses with 413 a message under 64 KB that would not fit the queue once base64-encoded', async () => {
    const response = await messages(postJson('/api/messages', { ...message, text: 'x'.repeat(55 * 1024) }));
    assert.equal(response.status, 413);
    assert.deepEqual(await queued(), []);
  });

  test('refuses a post from another site with 403', async () => {
    const response = await messages(
      postJson('/api/messages', message, { headers: { origin: 'https://evil.test', 'sec-fetch-site': 'cross-site' } }),
    );
    assert.equal(response.status, 403);
    assert.deepEqual(await queued(), []);
  });
});

describe('POST /api/accounts/{id}/test', () => {
  test('queues a test email through the normal path and answers 202 with its id and where to look', async () => {
    const response = await accountTest(
      postJson('/api/accounts/main/test', { to: 'admin@example.com' }, { params: { id: 'main' } }),
    );
    assert.equal(response.status, 202);
    const answer = json<{ id: string; account: string; accountState: string; note?: string; outcome: Record<string, string> }>(
      response,
    );
    assert.match(answer.id, /^test-main-\d{8}T\d{9}Z$/);
    assert.equal(answer.account, 'main');
    assert.equal(answer.accountState, 'ready');
    assert.equal(answer.note, undefined);
    assert.equal((answer as unknown as { verdict: { status: string } }).verdict.status, 'queued', 'nobody drains the queue here');
    assert.deepEqual(answer.outcome, {
      ledger: `table deliveries, message id ${answer.id}`,
      results: 'queue mail-results',
      statusPage: `${BASE}/api/status`,
    });
    const [mail, ...rest] = await queued();
    assert.deepEqual(rest, []);
    assert.equal(mail!.id, answer.id);
    assert.equal(mail!.account, 'main');
    assert.deepEqual(mail!.to, ['admin@example.com']);
    assert.equal(mail!.subject, 'oauth-outbox test from main');
  });

  test('on an account that cannot send, says why instead of queueing', async () => {
    const response = await accountTest(
      postJson('/api/accounts/reauth/test', { to: 'admin@example.com' }, { params: { id: 'reauth' } }),
    );
    assert.equal(response.status, 409);
    assert.equal(json(response).error, 'account_cannot_send');
    assert.match(String(json(response).reasons), /Needs re-authorization: .*Open Authorize and sign in as/);
    assert.deepEqual(await queued(), []);
  });

  test('refuses a bad address with 400 and the reasons', async () => {
    const response = await accountTest(postJson('/api/accounts/main/test', { to: 'nobody' }, { params: { id: 'main' } }));
    assert.equal(response.status, 400);
    assert.deepEqual(response.jsonBody, {
      error: 'invalid_message',
      reasons: 'The address is not usable: to[0]: is not a valid email address',
    });
    assert.deepEqual(await queued(), []);
  });

  test('refuses unknown fields and a missing address with 400', async () => {
    for (const body of [{ to: 'a@example.com', subject: 'mine' }, {}]) {
      const response = await accountTest(postJson('/api/accounts/main/test', body, { params: { id: 'main' } }));
      assert.equal(response.status, 400);
      assert.equal(json(response).error, 'invalid_request');
    }
  });

  test('an unknown account is a 404 unknown_account', async () => {
    const response = await accountTest(postJson('/api/accounts/nope/test', { to: 'a@example.com' }, { params: { id: 'nope' } }));
    assert.equal(response.status, 404);
    assert.equal(json(response).error, 'unknown_account');
  });

  test('a same-origin form post is answered with a redirect to the status page that keeps the function key', async () => {
    // Origin "null": what a browser sends for a form post from a page with Referrer-Policy no-referrer.
    const response = await accountTest(
      postForm(
        '/api/accounts/main/test?code=key-123',
        { to: 'admin@example.com' },
        { origin: 'null', 'sec-fetch-site': 'same-origin' },
        { id: 'main' },
      ),
    );
    assert.equal(response.status, 303);
    const location = (response.headers as Record<string, string>).Location!;
    const target = new URL(location, BASE);
    assert.equal(target.pathname, '/api/status');
    assert.equal(target.searchParams.get('code'), 'key-123');
    assert.match(target.searchParams.get('sent')!, /^test-main-/);
    assert.equal(target.hash, '#account-main');
    assert.equal((await queued())[0]!.id, target.searchParams.get('sent'));
  });

  test('a form post from another site is refused with 403 and queues nothing', async () => {
    const crossSite: Record<string, string>[] = [
      { origin: 'https://evil.test' },
      { origin: 'https://evil.test', 'sec-fetch-site': 'same-origin' },
      { origin: 'null', 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      // A browser without fetch metadata that hides the origin: cannot be told apart from another site.
      { origin: 'null' },
    ];
    for (const headers of crossSite) {
      const response = await accountTest(
        postForm('/api/accounts/main/test', { to: 'admin@example.com' }, headers, { id: 'main' }),
      );
      assert.equal(response.status, 403, JSON.stringify(headers));
      assert.match(String(response.body), /Request refused/);
    }
    assert.deepEqual(await queued(), []);
  });

  test('a post that says it comes from the public origin, or says nothing (a program), is let through', async () => {
    const allowed: Record<string, string>[] = [{ origin: BASE }, { origin: BASE, 'sec-fetch-site': 'same-origin' }, {}];
    for (const headers of allowed) {
      const response = await accountTest(
        postJson('/api/accounts/main/test', { to: 'admin@example.com' }, { params: { id: 'main' }, headers }),
      );
      assert.equal(response.status, 202, JSON.stringify(headers));
    }
  });

  test('a form post with a bad address gets an HTML page with the reason and a way back', async () => {
    const response = await accountTest(
      postForm(
        '/api/accounts/main/test?code=key-123',
        { to: '<b>x' },
        { origin: BASE, 'sec-fetch-site': 'same-origin' },
        { id: 'main' },
      ),
    );
    assert.equal(response.status, 400);
    const body = String(response.body);
    assert.match(body, /is not a valid email address/);
    assert.match(body, /href="\/api\/status\?code=key-123"/);
    assert.doesNotMatch(body, /<b>x/);
  });
});
