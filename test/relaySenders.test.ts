/**
 * The relay answers in the dialogue what the app would refuse later: the app (a real one, on Azurite) publishes
 * each account's allowed senders and state to relay-senders, the relay reads them, and a device hears 550 or
 * 451 4.7.0 instead of a 250 for a message that would fail or wait. Then the device's name travels with its
 * message into the ledger, and the status page lists the device with its counts and its last refusal.
 */
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { HttpRequest } from './support/azureFunctions';
import { admin } from '../functions/admin';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { type SmtpSink } from '../local/peers/smtpSink';
import { RELAY_CONTAINERS } from '../shared/names';
import { ALLOWED_SENDERS_BLOB, parseAllowedSenders } from '../shared/relay/allowedSenders';
import { publishAllowedSenders } from '../shared/relay/publishAllowedSenders';
import { composeMime, deviceTransport, queuedId, sendMime, SmtpDialogue } from './support/relayDevice';
import { relayStorage, startTestRelay, type TestRelay } from './support/relayHarness';
import { startSendHarness, startTokenSink, testAccount, type SendHarness } from './support/sendHarness';

const PASSWORD = 'printer password 7';
/** The device may use both addresses; the account allows only the first (the docs' own example of the mistake). */
const SCANNER = {
  user: 'mfp-3rd-floor',
  password: PASSWORD,
  account: 'scans',
  allowedFrom: ['scanner@contoso.test', 'printer@contoso.test'],
};
const ORPHAN = { user: 'orphan', password: PASSWORD, account: 'gone', allowedFrom: ['scanner@contoso.test'] };

let azurite: Azurite;
let sink: SmtpSink;
let harness: SendHarness;
let relay: TestRelay;
let storage: ReturnType<typeof relayStorage>;

before(async () => {
  azurite = await startAzurite();
  sink = await startTokenSink();
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: 'scans', port: sink.port, from: 'scanner@contoso.test' })],
  });
  relay = await startTestRelay(azurite.connectionString, [SCANNER, ORPHAN]);
  storage = relayStorage(azurite.connectionString);
});

after(async () => {
  await relay?.close();
  await harness?.stop();
  await sink?.stop();
  await azurite?.stop();
});

type SmtpError = Error & { responseCode?: number; response?: string };

async function send(from: string, headerFrom = from, user = SCANNER.user) {
  const raw = await composeMime({ from: headerFrom, to: 'alice@example.com', subject: 'Scan', text: 'Scanned.' });
  const transport = await deviceTransport({ port: relay.port, user, pass: PASSWORD });
  try {
    return await sendMime(transport, raw, { from, to: ['alice@example.com'] });
  } finally {
    transport.close();
  }
}

/** The refusal of a send, as the device saw it. */
async function refusal(promise: Promise<unknown>): Promise<{ code: number; text: string }> {
  let caught: SmtpError | undefined;
  await assert.rejects(promise, (error: SmtpError) => {
    caught = error;
    return typeof error.responseCode === 'number';
  });
  return { code: caught!.responseCode!, text: caught!.response ?? '' };
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function published() {
  await harness.runtime.publishAllowedSenders();
  await relay.relay.refreshAllowedSenders();
}

describe('relay: the accounts as the app publishes them', () => {
  it('before anything is published, checks the device list only, and says so in its log', () => {
    assert.ok(
      relay.logs.some((l) => l.includes('"relay.allowed_senders_missing"')),
      'the missing document is logged',
    );
  });

  it('the app publishes every account with its allowed senders and a state, and nothing secret', async () => {
    // A deployment from before the relay has no container yet: the app creates it.
    await harness.runtime.storage.container(RELAY_CONTAINERS.senders).delete();
    await harness.runtime.publishAllowedSenders();
    const senders = harness.runtime.storage.container(RELAY_CONTAINERS.senders).getBlockBlobClient(ALLOWED_SENDERS_BLOB);
    const unauthorized = parseAllowedSenders((await senders.downloadToBuffer()).toString('utf8'));
    assert.ok(unauthorized.ok);
    assert.equal(
      unauthorized.document.accounts.scans?.state,
      'needs_reauthorization',
      'never authorized: waits for an administrator',
    );
    // The authorization publishes again by itself.
    await harness.runtime.accountStates.markAuthorized(harness.accounts[0]!, {
      authorizedUser: 'scans@example.com',
      scopes: 'smtp',
      tokenExpiresAt: Date.now() + 3_600_000,
    });
    const blob = await harness.runtime.storage
      .container(RELAY_CONTAINERS.senders)
      .getBlockBlobClient(ALLOWED_SENDERS_BLOB)
      .downloadToBuffer();
    const parsed = parseAllowedSenders(blob.toString('utf8'));
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.document.accounts, { scans: { allowedFrom: ['scanner@contoso.test'], state: 'ready' } });
    assert.doesNotMatch(blob.toString('utf8'), /token|secret|refresh/i);
  });

  it('a publication built earlier does not land over a newer one (instances publish concurrently)', async () => {
    const container = harness.runtime.storage.container(RELAY_CONTAINERS.senders);
    const sources = { accounts: [], accountStatus: harness.runtime.accountStatus, container };
    const read = async () =>
      parseAllowedSenders((await container.getBlockBlobClient(ALLOWED_SENDERS_BLOB).downloadToBuffer()).toString('utf8'));
    const later = new Date(Date.now() + 60_000);
    await publishAllowedSenders(sources, later);
    await publishAllowedSenders(sources, new Date(later.getTime() - 1_000));
    const kept = await read();
    assert.ok(kept.ok);
    assert.equal(kept.document.publishedAt, later.toISOString(), 'the older build was not written');
    // The app's own next publication (built now, earlier than `later`) would be skipped too: put the real one back.
    await container.getBlockBlobClient(ALLOWED_SENDERS_BLOB).delete();
    await harness.runtime.publishAllowedSenders();
    assert.ok((await read()).ok);
  });

  it('refuses at MAIL FROM (550) a sender the device may use but its account does not allow, and queues nothing', async () => {
    await published();
    const before = await storage.count();
    const reply = await refusal(send('printer@contoso.test'));
    assert.equal(reply.code, 550);
    assert.match(
      reply.text,
      /^550 5\.7\.1 Sender address \(MAIL FROM\) <printer@contoso\.test> is not allowed for account "scans" \(it allows scanner@contoso\.test\); add it to the account's allowedFrom \(in MAIL_ACCOUNTS or on the admin page\), or set the device to send as one of those$/,
    );
    assert.equal(await storage.count(), before, 'nothing queued');
  });

  it('refuses at the final dot (550) a From header its account does not allow, and queues nothing', async () => {
    const before = await storage.count();
    const reply = await refusal(send('scanner@contoso.test', 'printer@contoso.test'));
    assert.equal(reply.code, 550);
    assert.match(reply.text, /^550 5\.7\.1 From <printer@contoso\.test> is not allowed for account "scans"/);
    assert.equal(await storage.count(), before);
  });

  it('refuses a From whose display name is another address (550), as the JSON path does', async () => {
    const reply = await refusal(send('scanner@contoso.test', '"ceo@evil.test" <scanner@contoso.test>'));
    assert.equal(reply.code, 550);
    assert.match(reply.text, /^550 5\.7\.1 The From display name "ceo@evil\.test" looks like another address/);
    const encoded = await refusal(send('scanner@contoso.test', '=?utf-8?B?Y2VvQGV2aWwudGVzdA==?= <scanner@contoso.test>'));
    assert.equal(encoded.code, 550, 'an encoded display name is read as what the reader sees');
  });

  it('refuses a device whose account the app does not have (550)', async () => {
    const reply = await refusal(send('scanner@contoso.test', 'scanner@contoso.test', ORPHAN.user));
    assert.equal(reply.code, 550);
    assert.match(reply.text, /^550 5\.7\.1 This device sends for account "gone", which oauth-outbox does not have/);
  });

  it('answers 451 4.7.0 with the reason while the account is paused or waits for re-authorization, 250 once it is back', async () => {
    const [account] = harness.accounts;
    const until = new Date(Date.now() + 3_600_000).toISOString();
    // The state writer publishes on a stop: no timer run is needed.
    await harness.runtime.accountStates.markProblem(account!, {
      state: 'paused',
      code: 'quota_exceeded',
      reason: 'Daily sending quota exceeded',
      pausedUntil: until,
    });
    await relay.relay.refreshAllowedSenders();
    const paused = await refusal(send('scanner@contoso.test'));
    assert.equal(paused.code, 451);
    assert.match(paused.text, new RegExp(`^451 4\\.7\\.0 Account "scans" is paused until ${until.replace(/\./g, '\\.')}`));

    await harness.runtime.accountStates.markProblem(account!, {
      state: 'reauthorization_required',
      code: 'invalid_grant',
      reason: 'The grant was revoked',
    });
    await relay.relay.refreshAllowedSenders();
    const revoked = await refusal(send('scanner@contoso.test'));
    assert.equal(revoked.code, 451);
    assert.match(
      revoked.text,
      /^451 4\.7\.0 Account "scans" is not authorized \(not yet, or no longer\): an administrator must authorize it on the oauth-outbox status page/,
    );

    await harness.runtime.accountStates.markAuthorized(account!, {
      authorizedUser: 'scans@example.com',
      scopes: 'smtp',
      tokenExpiresAt: Date.now() + 3_600_000,
    });
    await relay.relay.refreshAllowedSenders();
    assert.match((await send('scanner@contoso.test')).response, /^250 2\.0\.0 queued as /);
  });
});

describe('relay: accounts managed on the admin page', () => {
  it('an account created, paused and deleted on the page reaches the relay at once: 451 while paused, 550 once gone', async () => {
    const admin = harness.runtime.accountAdmin;
    const config = testAccount({ id: ORPHAN.account, port: sink.port, from: 'scanner@contoso.test' });
    const created = await admin.create(ORPHAN.account, { config: { ...config, id: ORPHAN.account } }, 'admin@contoso.test');
    assert.ok(created.ok, JSON.stringify(created));
    await harness.runtime.accountStates.markAuthorized(created.entry!.account, {
      authorizedUser: 'gone@example.com',
      scopes: 'smtp',
      tokenExpiresAt: Date.now() + 3_600_000,
    });
    await relay.relay.refreshAllowedSenders();
    assert.match((await send('scanner@contoso.test', 'scanner@contoso.test', ORPHAN.user)).response, /^250 2\.0\.0 queued as /);

    // Paused on the page (not by the provider): no status row changes, the admin change itself publishes.
    assert.ok((await admin.update(ORPHAN.account, { state: 'paused' }, 'admin@contoso.test')).ok);
    await relay.relay.refreshAllowedSenders();
    const paused = await refusal(send('scanner@contoso.test', 'scanner@contoso.test', ORPHAN.user));
    assert.equal(paused.code, 451);
    assert.match(paused.text, /^451 4\.7\.0 Account "gone" is paused/);

    assert.ok((await admin.delete(ORPHAN.account, 'admin@contoso.test')).ok);
    await relay.relay.refreshAllowedSenders();
    const gone = await refusal(send('scanner@contoso.test', 'scanner@contoso.test', ORPHAN.user));
    assert.equal(gone.code, 550);
    assert.match(gone.text, /which oauth-outbox does not have/);
  });
});

describe('relay: what the administrator sees', () => {
  it('the device name travels into the ledger, and the status page lists the device with its counts and last refusal', async () => {
    await published();
    await harness.drain(15_000);
    const info = await send('scanner@contoso.test');
    const id = queuedId(info.response);
    assert.equal((await storage.message(id))?.device, SCANNER.user);
    await harness.drain(15_000);
    const row = await harness.ledger(id);
    assert.equal(row?.status, 'sent');
    assert.equal(row?.device, SCANNER.user);

    await refusal(send('printer@contoso.test'));
    await relay.relay.flushActivity();
    const response = await admin(new HttpRequest({ method: 'GET', url: 'http://127.0.0.1:7071/api/status' }));
    const page = String(response.body);
    const row$ = new RegExp(`<tr data-device="${SCANNER.user}">([\\s\\S]*?)</tr>`).exec(page)?.[1] ?? '';
    assert.ok(row$, 'the device has a row');
    assert.match(row$, /<td data-count="queued">[1-9]\d*<\/td>/);
    assert.match(row$, /<td data-count="refused">[1-9]\d*<\/td>/);
    assert.match(row$, /data-refusal="sender_not_allowed"/);
    assert.match(row$, /550 5\.7\.1 Sender address \(MAIL FROM\) &lt;printer@contoso\.test&gt; is not allowed for account/);
    assert.match(row$, /from <code>127\.0\.0\.1<\/code>/);
    assert.match(row$, new RegExp(id));
  });

  it('a device that starts TLS at once on the STARTTLS port leaves a trace with its address', async () => {
    const { connect } = await import('node:tls');
    await new Promise<void>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: relay.port, rejectUnauthorized: false });
      socket.once('error', () => resolve());
      socket.once('close', () => resolve());
      socket.once('secureConnect', () => socket.destroy());
      setTimeout(() => socket.destroy(), 1_000).unref();
    });
    const line = relay.logs.find((l) => l.includes('"relay.tls_on_smtp_port"'));
    assert.ok(line, 'logged');
    assert.match(line, /"remote":"127\.0\.0\.1".*choose STARTTLS on this port, or SSL\/TLS on port 465/);
  });

  it('a device that offers only TLS 1.0/1.1 leaves one log line per attempt with its address and what to do', async () => {
    const old = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0', rejectUnauthorized: false } as const;
    const handshakeFails = (socket: ReturnType<typeof tlsConnect>) =>
      new Promise<void>((resolve) => {
        socket.once('error', () => resolve());
        socket.once('secureConnect', () => assert.fail('a TLS 1.1 handshake succeeded'));
      });
    const before = relay.logs.length;
    await handshakeFails(tlsConnect({ host: '127.0.0.1', port: relay.tlsPort!, ...old }));
    // STARTTLS, then the same old handshake: smtp-server reports this one twice.
    const smtp = await SmtpDialogue.connect({ port: relay.port });
    await smtp.command('EHLO device.test');
    await assert.rejects(smtp.startTls(old), /alert protocol version|unsupported protocol/i);
    const lines = () => relay.logs.slice(before).filter((l) => l.includes('"relay.connection_error"'));
    await waitFor(() => relay.logs.slice(before).some((l) => l.includes('"relay.session"')));
    assert.deepEqual(
      lines().map((l) => (JSON.parse(l) as { listener: string }).listener),
      ['tls', 'starttls'],
    );
    for (const line of lines()) {
      assert.match(line, /"remote":"127\.0\.0\.1"/);
      assert.match(
        line,
        /"hint":"the device offers only TLS 1\.0\/1\.1; the relay needs TLS 1\.2 or later \(see the plain port for old devices\)"/,
      );
    }
  });

  it('a client that tries PLAIN then LOGIN on one connection spends one of its tries, and the log names the user', async () => {
    const strict = await startTestRelay(azurite.connectionString, [SCANNER], {
      loginFailures: { maxFailures: 2, windowSeconds: 60, blockSeconds: 60, delayStepMs: 0, maxDelayMs: 0 },
    });
    try {
      const smtp = await SmtpDialogue.connect({ port: strict.port, localAddress: '127.0.0.61' });
      try {
        assert.equal((await smtp.openAndLogin(SCANNER.user, 'guess-A1')).code, 535);
        assert.equal((await smtp.command('AUTH LOGIN')).code, 334);
        assert.equal((await smtp.command(Buffer.from(SCANNER.user).toString('base64'))).code, 334);
        assert.equal((await smtp.command(Buffer.from('guess-A2').toString('base64'))).code, 535);
      } finally {
        smtp.end();
      }
      const again = await SmtpDialogue.connect({ port: strict.port, localAddress: '127.0.0.61' });
      try {
        assert.equal((await again.openAndLogin(SCANNER.user, PASSWORD)).code, 235, 'one try of two spent: not blocked');
      } finally {
        again.end();
      }
      const failed = strict.logs.filter((l) => l.includes('"relay.login_failed"'));
      assert.equal(failed.length, 2);
      assert.match(failed[0]!, new RegExp(`"user":"${SCANNER.user}"`));
      assert.match(failed[0]!, /"remote":"127\.0\.0\.61"/);
      assert.doesNotMatch(strict.logs.join('\n'), /guess-A/, 'no password in the log');
    } finally {
      await strict.close();
    }
  });
});
