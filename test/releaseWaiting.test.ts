import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { type SmtpSink } from '../local/peers/smtpSink';
import { FAST_POLICY, startSendHarness, testAccount, tokenFor, type SendHarness, startTokenSink } from './support/sendHarness';

let azurite: Azurite;
let sink: SmtpSink;
let harness: SendHarness;

before(async () => {
  azurite = await startAzurite();
  sink = await startTokenSink();
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: 'late', port: sink.port, default: true })],
    // Messages of an account that cannot send come back after 5 minutes, as in production.
    policy: { ...FAST_POLICY, accountWaitMs: 5 * 60_000 },
    seedTokens: false,
  });
});
after(async () => {
  await harness?.stop();
  await sink?.stop();
  await azurite?.stop();
});

test('after the authorization, the messages that waited for it go out at once, not when their delay ends', async () => {
  for (const id of ['early-1', 'early-2']) await harness.enqueue({ id, to: ['a@example.com'], subject: id, text: id });
  assert.equal(await harness.runFor(1_500), 2, 'both wait on the queue');
  const waiting = await harness.ledger('early-1');
  assert.equal(waiting?.code, 'not_authorized');
  assert.ok(Date.parse(waiting?.nextAttemptAt ?? '') > Date.now() + 4 * 60_000, 'their next try is minutes away');

  const account = harness.accounts[0]!;
  await harness.runtime.tokenStore.save(account.id, {
    accessToken: tokenFor(account.id),
    expiresAt: Date.now() + 3_600_000,
    refreshToken: 'refresh-late',
  });
  await harness.runtime.accountStates.markAuthorized(account, {
    authorizedUser: account.user,
    scopes: 'smtp',
    tokenExpiresAt: Date.now() + 3_600_000,
  });

  await harness.drain(10_000);
  assert.equal((await harness.ledger('early-1'))?.status, 'sent');
  assert.equal((await harness.ledger('early-2'))?.status, 'sent');
  assert.equal(sink.received.length, 2);
});
