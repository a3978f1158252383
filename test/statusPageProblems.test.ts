import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { accountDetail } from '../functions/accountDetail';
import { admin } from '../functions/admin';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import type { AccountView } from '../shared/admin/accountView';
import { HttpRequest } from './support/azureFunctions';
import { startSendHarness, testAccount, type SendHarness } from './support/sendHarness';

let azurite: Azurite;
let harness: SendHarness;

before(async () => {
  azurite = await startAzurite();
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    // Port 9 refuses connections, but no message gets that far: one is invalid, the other waits for an admin.
    accounts: [testAccount({ id: 'main', port: 9, default: true })],
    seedTokens: false,
  });
});
after(async () => {
  await harness?.stop();
  await azurite?.stop();
});

test('each account lists its recent failed and waiting messages with time, recipient count, code and reason', async () => {
  await harness.enqueue({ id: 'bad-address', account: 'main', to: ['not an address'], subject: 'x', text: 'x' });
  await harness.enqueue({ id: 'waits', account: 'main', to: ['a@example.com', 'b@example.com'], subject: 'y', text: 'y' });
  await harness.runFor(5_000);

  const reply = await accountDetail(
    new HttpRequest({ method: 'GET', url: 'http://127.0.0.1:7071/api/accounts/main', params: { id: 'main' } }),
  );
  const view = reply.jsonBody as AccountView;
  const byId = new Map(view.recentProblems.map((problem) => [problem.id, problem]));
  assert.equal(byId.get('bad-address')?.status, 'failed');
  assert.equal(byId.get('bad-address')?.code, 'invalid_message');
  assert.match(byId.get('bad-address')?.reason ?? '', /to\[0\]/);
  assert.equal(byId.get('waits')?.status, 'deferred');
  assert.equal(byId.get('waits')?.code, 'not_authorized');
  assert.equal(byId.get('waits')?.recipients, 2);
  assert.ok(byId.get('waits')?.nextAttemptAt, 'a waiting message says when it is tried again');

  const page = String((await admin(new HttpRequest({ method: 'GET', url: 'http://127.0.0.1:7071/api/status' }))).body);
  assert.match(page, /Recent failed and waiting messages \(2\)/);
  assert.match(page, /<tr data-message="waits" data-status="deferred">/);
  assert.match(page, /<code>not_authorized<\/code>/);
  assert.doesNotMatch(page, /a@example\.com/, 'recipients are counted, never listed');
});
