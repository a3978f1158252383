/**
 * Waiting messages expire: after MESSAGE_EXPIRY_DAYS (default 7) unsent, a message fails `expired` with a reason,
 * in the ledger and on the results queue, instead of waiting for ever.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { closeApp, createApp } from '../shared/app';
import { ConfigError } from '../shared/errors';
import { DEFAULT_POLICY, describeMaxAge, policyFromSettings } from '../shared/delivery/policy';
import { FileSecretStore } from '../shared/storage/fileSecretStore';
import { FAST_POLICY, startSendHarness, testAccount } from './support/sendHarness';

let azurite: Azurite;
before(async () => {
  azurite = await startAzurite();
});
after(async () => {
  await azurite?.stop();
});

test('MESSAGE_EXPIRY_DAYS: 7 days unless set; fractions allowed; nonsense refused with the setting named', async () => {
  assert.equal(policyFromSettings({}).maxAgeMs, 7 * 24 * 3_600_000);
  assert.equal(DEFAULT_POLICY.maxAgeMs, 7 * 24 * 3_600_000);
  assert.equal(policyFromSettings({ MESSAGE_EXPIRY_DAYS: '14' }).maxAgeMs, 14 * 24 * 3_600_000);
  assert.equal(policyFromSettings({ MESSAGE_EXPIRY_DAYS: '0.5' }).maxAgeMs, 12 * 3_600_000);
  assert.equal(describeMaxAge(DEFAULT_POLICY.maxAgeMs), '7 days');
  assert.equal(describeMaxAge(12 * 3_600_000), '12 hours');
  assert.equal(describeMaxAge(1_000), '1 second');
  for (const bad of ['0', '-1', 'a week', '366'])
    assert.throws(
      () => policyFromSettings({ MESSAGE_EXPIRY_DAYS: bad }),
      (e: Error) => {
        assert.ok(e instanceof ConfigError);
        assert.match(
          e.message,
          new RegExp(`^MESSAGE_EXPIRY_DAYS must be a number of days above 0 and at most 365 \\(default 7\\); it is "${bad}"\\.$`),
        );
        return true;
      },
    );
  const app = createApp(
    { MailStorage: azurite.connectionString, MESSAGE_EXPIRY_DAYS: '3' },
    { accounts: [], secrets: new FileSecretStore('/nonexistent/secrets.json') },
  );
  try {
    assert.equal(app.delivery.policy.maxAgeMs, 3 * 24 * 3_600_000, 'the app reads the setting');
  } finally {
    await closeApp(app);
  }
});

test('a message that cannot be sent fails "expired" once it has waited longer than the setting', async () => {
  // Nothing listens on port 9: every attempt fails transiently and the message waits.
  const harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: 'main', port: 9 })],
    policy: policyFromSettings({ MESSAGE_EXPIRY_DAYS: String(3 / 86_400) }, FAST_POLICY),
  });
  try {
    await harness.enqueue({ id: 'waits-1', to: ['a@example.com'], subject: 'Never', text: 'x' });
    const left = await harness.runFor(12_000);
    assert.equal(left, 0, 'the message left the outbox');
    const row = await harness.ledger('waits-1');
    assert.equal(row?.status, 'failed');
    assert.equal(row?.code, 'expired');
    assert.match(
      row?.reason ?? '',
      /^The message waited more than 3 seconds without being sent \(MESSAGE_EXPIRY_DAYS\); last reason: /,
    );
    assert.doesNotMatch(row?.reason ?? '', /\.\.$/, 'one full stop at the end, though the last reason ends with one');
    const events = (await harness.results()).filter((r) => r.id === 'waits-1');
    assert.deepEqual(
      events.map((e) => [e.status, e.code]),
      [['failed', 'expired']],
    );
  } finally {
    await harness.stop();
  }
});
