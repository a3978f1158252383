import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { accountTest } from '../functions/accountTest';
import { admin } from '../functions/admin';
import { statusPage } from '../shared/admin/adminPage';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { type SmtpSink } from '../local/peers/smtpSink';
import { HttpRequest } from './support/azureFunctions';
import { startSendHarness, testAccount, type SendHarness, startTokenSink } from './support/sendHarness';

let azurite: Azurite;
let sink: SmtpSink;
let harness: SendHarness;
const BASE = 'http://127.0.0.1:7071';

before(async () => {
  azurite = await startAzurite();
  sink = await startTokenSink();
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: 'main', port: sink.port, default: true })],
    env: { TEST_EMAIL_WAIT_SECONDS: '15' },
  });
  const account = harness.accounts[0]!;
  await harness.runtime.accountStates.markAuthorized(account, {
    authorizedUser: account.user,
    scopes: 'smtp',
    tokenExpiresAt: Date.now() + 3_600_000,
  });
});
after(async () => {
  await harness?.stop();
  await sink?.stop();
  await azurite?.stop();
});

function post(to: string) {
  return new HttpRequest({
    method: 'POST',
    url: `${BASE}/api/accounts/main/test`,
    params: { id: 'main' },
    headers: { 'content-type': 'application/json', origin: BASE },
    body: { string: JSON.stringify({ to }) },
  });
}

test('the test email answers with the verdict: sent, with the server’s reply, on the page and in JSON', async () => {
  let answered = false;
  const answering = accountTest(post('admin@example.com')).finally(() => (answered = true));
  // The queue trigger runs while the request waits for its verdict.
  while (!answered) await harness.drain(1_000);
  const response = await answering;
  assert.equal(response.status, 200);
  const { id, verdict } = response.jsonBody as { id: string; verdict: { status: string; smtpReply: string } };
  assert.equal(verdict.status, 'sent');
  assert.match(verdict.smtpReply, /^250 /);

  const page = String((await admin(new HttpRequest({ method: 'GET', url: `${BASE}/api/status?sent=${id}` }))).body);
  assert.match(page, /data-verdict="sent"/);
  assert.match(page, new RegExp(`Test email <code>${id}</code> was sent\\. The server answered: <code>250 `));
});

test('a failed test email shows its reason and code on the page, escaped', () => {
  const page = String(
    statusPage({
      views: [],
      now: Date.now(),
      testVerdict: {
        id: 'test-main-1',
        status: 'failed',
        code: 'recipient_rejected',
        reason: 'A recipient was refused (550 5.1.1 <x@example.com> unknown).',
        smtpReply: '550 5.1.1',
        nextAttemptAt: null,
      },
    }),
  );
  assert.match(page, /data-verdict="failed"/);
  assert.match(
    page,
    /Test email <code>test-main-1<\/code> failed:\s+A recipient was refused \(550 5\.1\.1 &lt;x@example\.com&gt; unknown\)\. <code>recipient_rejected<\/code>/,
  );
});
