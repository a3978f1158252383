/**
 * The send path against the replies Exchange Online and Gmail really give, one test per reply class: what
 * happens to the message (sent, failed with the server's reply, or deferred and retried), whether the try
 * counted as an attempt, and what happens to the account.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, afterEach, before, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { startSmtpSink } from '../local/peers/smtpSink';
import type { Account } from '../shared/config';
import { QUEUES } from '../shared/names';
import type { TokenRefresher } from '../shared/tokens/tokenService';
import { TokenService } from '../shared/tokens/tokenService';
import type { AccessTokenRecord } from '../shared/tokens/tokenStore';
import { loadTestTls } from './support/certs';
import { probeDelivery, type DeliveryProbe } from './support/deliveryProbe';
import { PROVIDER_REPLIES } from './support/providerReplies';
import {
  startScriptedSmtp,
  type ScriptStep,
  type ScriptedSecurity,
  type ScriptedSmtp,
  type SmtpScript,
} from './support/scriptedSmtp';
import { startSendHarness, testAccount, tokenFor, type SendHarness } from './support/sendHarness';

let azurite: Azurite;
let tls: Awaited<ReturnType<typeof loadTestTls>>;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  [azurite, tls] = await Promise.all([startAzurite(), loadTestTls()]);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(async () => {
  await azurite?.stop();
});

interface Bench {
  server: ScriptedSmtp;
  harness: SendHarness;
  probe: DeliveryProbe;
}

/** A scripted server, a harness with one account on it, and a probe on the send path. */
async function bench(
  account: string,
  options: {
    script?: SmtpScript;
    security?: ScriptedSecurity;
    verifyToken?: (user: string, token: string) => boolean;
    authFailure?: ScriptStep;
    /** Shorten deferrals to this (the asked-for delay is still recorded). */
    maxDelaySeconds?: number;
  } = {},
): Promise<Bench> {
  const security = options.security ?? 'starttls';
  const server = await startScriptedSmtp({
    security,
    key: tls.key,
    cert: tls.cert,
    ...(options.script ? { script: options.script } : {}),
    ...(options.verifyToken ? { verifyToken: options.verifyToken } : {}),
    ...(options.authFailure ? { authFailure: options.authFailure } : {}),
  });
  cleanups.push(() => server.stop());
  const harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: account, port: server.port, smtp: { security } })],
  });
  cleanups.push(() => harness.stop());
  const probe = probeDelivery(harness, options.maxDelaySeconds === undefined ? {} : { maxDelaySeconds: options.maxDelaySeconds });
  return { server, harness, probe };
}

const mail = (id: string, account: string) => ({
  id,
  account,
  to: ['rcpt@example.com'],
  subject: `reply test ${id}`,
  text: 'hello',
});

/** A refresher standing in for the provider: each call gives a new token (and stores it, as the real one does). */
class CountingRefresher implements TokenRefresher {
  readonly calls: Array<{ account: string; reason: string; rejectedToken?: string }> = [];
  constructor(private readonly harness: SendHarness) {}
  async refresh(account: Account, reason: 'expiring' | 'rejected', rejectedToken?: string): Promise<AccessTokenRecord> {
    this.calls.push({ account: account.id, reason, ...(rejectedToken ? { rejectedToken } : {}) });
    const record = { accessToken: `fresh-${account.id}-${this.calls.length}`, expiresAt: Date.now() + 3_600_000 };
    await this.harness.runtime.tokenStore.save(account.id, record);
    return record;
  }
}

function useRefresher(harness: SendHarness): CountingRefresher {
  const refresher = new CountingRefresher(harness);
  harness.services.tokens = new TokenService(harness.runtime.tokenStore, refresher);
  return refresher;
}

async function outboxCount(harness: SendHarness): Promise<number> {
  return (await harness.runtime.storage.queue(QUEUES.outbox).getProperties()).approximateMessagesCount ?? 0;
}

/** A port nothing listens on (taken from the OS and given back). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Checks that a provider throttle was deferred (not counted, about a minute) and the retry went out. */
async function assertThrottledThenSent(b: Bench, id: string, reply: RegExp): Promise<void> {
  const history = b.probe.history(id);
  const deferred = history.find((w) => w.status === 'deferred');
  assert.ok(deferred, `deferred first: ${JSON.stringify(history)}`);
  assert.equal(deferred.code, 'throttled');
  assert.equal(deferred.attempts, 0, 'a throttle is not an attempt');
  assert.match(deferred.reason ?? '', reply);
  assert.ok(
    b.probe.requeues[0]!.requestedSeconds >= 30,
    `throttle waits about a minute, asked ${b.probe.requeues[0]!.requestedSeconds} s`,
  );
  const row = await b.harness.ledger(id);
  assert.equal(row?.status, 'sent');
  assert.equal(row?.attempts, 1);
  assert.equal(row?.deferrals, 1);
  assert.equal(b.server.accepted.length, 1);
  assert.deepEqual(
    (await b.harness.results()).map((r) => [r.id, r.status]),
    [[id, 'sent']],
  );
}

test('421 4.7.0 from Gmail at EHLO defers the message as throttling without counting an attempt, then it goes out', async () => {
  const b = await bench('gmail-421', {
    script: { ehlo: { attempt: 1, reply: PROVIDER_REPLIES.gmailTryAgainLater } },
    maxDelaySeconds: 1,
  });
  await b.harness.enqueue(mail('r-421', 'gmail-421'));
  await b.probe.drain(10_000);
  await assertThrottledThenSent(b, 'r-421', /421 4\.7\.0 Try again later/);
});

test('432 4.3.2 sender thread limit defers the message without counting an attempt, then it goes out', async () => {
  const b = await bench('thread-432', {
    script: { data: { attempt: 1, reply: PROVIDER_REPLIES.exchangeSenderThreadLimit } },
    maxDelaySeconds: 1,
  });
  await b.harness.enqueue(mail('r-432-thread', 'thread-432'));
  await b.probe.drain(10_000);
  await assertThrottledThenSent(b, 'r-432-thread', /432 4\.3\.2 STOREDRV\.ClientSubmit; sender thread limit exceeded/);
});

test('432 4.3.2 concurrent connections limit defers the message without counting an attempt, then it goes out', async () => {
  const b = await bench('conn-432', {
    script: { data: { attempt: 1, reply: PROVIDER_REPLIES.exchangeConcurrentConnections } },
    maxDelaySeconds: 1,
  });
  await b.harness.enqueue(mail('r-432-conn', 'conn-432'));
  await b.probe.drain(10_000);
  await assertThrottledThenSent(b, 'r-432-conn', /432 4\.3\.2 Concurrent connections limit exceeded/);
});

for (const [name, stage, reply, pattern] of [
  [
    '451 4.3.111 temporary server error after DATA',
    'data',
    PROVIDER_REPLIES.exchangeTemporaryServerError,
    /451 4\.3\.111 Temporary server error/,
  ],
  [
    '452 4.5.3 too many recipients at RCPT',
    'rcpt',
    PROVIDER_REPLIES.gmailTooManyRecipients,
    /452 4\.5\.3 Your message has too many recipients/,
  ],
] as const) {
  test(`${name} defers the message with backoff, counted as an attempt, then it goes out`, async () => {
    const account = `temp-${stage}`;
    const id = `r-${stage}-${reply.code}`;
    const b = await bench(account, { script: { [stage]: { attempt: 1, reply } } });
    await b.harness.enqueue(mail(id, account));
    await b.probe.drain(10_000);
    const deferred = b.probe.history(id).find((w) => w.status === 'deferred');
    assert.ok(deferred, 'deferred first');
    assert.equal(deferred.code, 'transient');
    assert.equal(deferred.attempts, 1, 'a temporary failure counts as an attempt');
    assert.match(deferred.reason ?? '', pattern);
    assert.equal(b.probe.requeues[0]!.requestedSeconds, 1, "the policy's backoff");
    const row = await b.harness.ledger(id);
    assert.equal(row?.status, 'sent');
    assert.equal(row?.attempts, 2);
    assert.equal(b.server.accepted.length, 1);
    assert.deepEqual(
      (await b.harness.results()).map((r) => [r.id, r.status, r.attempts]),
      [[id, 'sent', 2]],
    );
  });
}

test('535 5.7.3 for a token we believed valid refreshes the token once and retries once', async () => {
  const b = await bench('exo-535-once', {
    verifyToken: (_user, token) => token.startsWith('fresh-'),
    authFailure: { reply: PROVIDER_REPLIES.exchangeAuthUnsuccessful },
  });
  const refresher = useRefresher(b.harness);
  await b.harness.enqueue(mail('r-535-once', 'exo-535-once'));
  await b.probe.drain();
  assert.deepEqual(refresher.calls, [{ account: 'exo-535-once', reason: 'rejected', rejectedToken: tokenFor('exo-535-once') }]);
  assert.equal(b.server.attempts('auth'), 2, 'one AUTH with the old token, one with the new');
  assert.equal(b.server.authFailures, 1);
  assert.equal(b.server.accepted.length, 1);
  const row = await b.harness.ledger('r-535-once');
  assert.equal(row?.status, 'sent');
  assert.equal(row?.attempts, 1, 'the retry with the new token is part of the same attempt');
  const state = (await b.harness.runtime.accountStatus.get('exo-535-once'))?.state;
  assert.ok(state !== 'reauthorization_required' && state !== 'configuration_error', `the account was not stopped: ${state}`);
});

test('535 5.7.3 twice defers the message and marks the account reauthorization_required', async () => {
  const b = await bench('exo-535-twice', {
    verifyToken: () => false,
    authFailure: { reply: PROVIDER_REPLIES.exchangeAuthUnsuccessful },
  });
  const refresher = useRefresher(b.harness);
  await b.harness.enqueue(mail('r-535-twice', 'exo-535-twice'));
  await b.probe.runFor(2_200);
  const status = await b.harness.runtime.accountStatus.get('exo-535-twice');
  assert.equal(status?.state, 'reauthorization_required');
  assert.equal(status?.lastErrorCode, 'smtp_auth_rejected');
  assert.match(status?.lastError ?? '', /535 5\.7\.3 Authentication unsuccessful/);
  assert.equal(refresher.calls.length, 1, 'refreshed once');
  assert.equal(b.server.attempts('auth'), 2, 'two AUTHs, then the account waits: no retry storm');
  const row = await b.harness.ledger('r-535-twice');
  assert.equal(row?.status, 'deferred');
  assert.equal(row?.code, 'needs_reauthorization');
  assert.equal(row?.attempts, 0, 'waiting for an admin is not an attempt');
  assert.ok(row!.deferrals >= 2, 'held at the account gate when it came back');
  assert.equal(await outboxCount(b.harness), 1, 'the message stays queued');
  assert.deepEqual(await b.harness.results(), []);
});

test('535 5.7.139 SMTP AUTH disabled gives the account configuration_error with the Set-CASMailbox fix, keeps the message queued, and does not retry', async () => {
  const b = await bench('exo-auth-off', {
    script: { auth: { reply: PROVIDER_REPLIES.exchangeSmtpAuthDisabled } },
    maxDelaySeconds: 1,
  });
  const refresher = useRefresher(b.harness);
  await b.harness.enqueue(mail('r-535-139', 'exo-auth-off'));
  await b.probe.runFor(2_200);
  const status = await b.harness.runtime.accountStatus.get('exo-auth-off');
  assert.equal(status?.state, 'configuration_error');
  assert.equal(status?.lastErrorCode, 'smtp_auth_disabled');
  assert.match(status?.lastError ?? '', /Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled \$false/);
  assert.match(status?.lastError ?? '', /535 5\.7\.139/);
  assert.equal(b.server.attempts('auth'), 1, 'exactly one AUTH');
  assert.equal(b.server.connections, 1);
  assert.equal(refresher.calls.length, 0, 'a fresh token cannot help: not refreshed');
  assert.ok(b.probe.requeues[0]!.requestedSeconds >= 3_000, 'the account waits for an admin');
  const row = await b.harness.ledger('r-535-139');
  assert.equal(row?.status, 'deferred');
  assert.equal(row?.attempts, 0);
  assert.match(row?.reason ?? '', /Set-CASMailbox/);
  assert.ok(row!.deferrals >= 2, 'came back and was held at the account gate');
  assert.equal(await outboxCount(b.harness), 1, 'the message stays queued');
  assert.deepEqual(await b.harness.results(), []);
});

test("550 5.1.1 unknown recipient fails the message for good, with the server's reply in the ledger and on the results queue", async () => {
  const b = await bench('exo-550', { script: { rcpt: { reply: PROVIDER_REPLIES.exchangeRecipientNotFound } } });
  await b.harness.enqueue(mail('r-550', 'exo-550'));
  await b.probe.drain();
  const row = await b.harness.ledger('r-550');
  assert.equal(row?.status, 'failed');
  assert.equal(row?.code, 'recipient_rejected');
  assert.equal(row?.attempts, 1);
  assert.match(row?.smtpReply ?? '', /550 5\.1\.1 RESOLVER\.ADR\.RecipNotFound; not found/);
  assert.match(row?.reason ?? '', /recipient was refused.*550 5\.1\.1/);
  const results = await b.harness.results();
  assert.equal(results.length, 1);
  assert.equal(results[0]!.status, 'failed');
  assert.equal(results[0]!.code, 'recipient_rejected');
  assert.match(results[0]!.smtpReply ?? '', /550 5\.1\.1 RESOLVER\.ADR\.RecipNotFound/);
  assert.equal(b.server.attempts('rcpt'), 1, 'not retried');
  assert.equal(b.probe.requeues.length, 0);
  assert.equal(await outboxCount(b.harness), 0);
});

for (const [name, reply, pattern] of [
  ['554 5.2.252 SendAsDenied', PROVIDER_REPLIES.exchangeSendAsDenied, /554 5\.2\.252 SendAsDenied/],
  [
    '550 5.7.60 no permission to send as',
    PROVIDER_REPLIES.exchangeSendAsPermission,
    /550 5\.7\.60 SMTP; Client does not have permissions to send as this sender/,
  ],
] as const) {
  test(`${name} fails the message for good as send_as_denied`, async () => {
    const account = `sendas-${reply.code}`;
    const id = `r-sendas-${reply.code}`;
    const b = await bench(account, { script: { data: { reply } } });
    await b.harness.enqueue(mail(id, account));
    await b.probe.drain();
    const row = await b.harness.ledger(id);
    assert.equal(row?.status, 'failed');
    assert.equal(row?.code, 'send_as_denied');
    assert.match(row?.smtpReply ?? '', pattern);
    assert.match(row?.reason ?? '', /Send As/);
    const results = await b.harness.results();
    assert.deepEqual(
      results.map((r) => [r.id, r.status, r.code]),
      [[id, 'failed', 'send_as_denied']],
    );
    assert.match(results[0]!.smtpReply ?? '', pattern);
    assert.equal(b.server.attempts('data'), 1, 'not retried');
  });
}

test('554 5.2.0 SubmissionQuotaExceeded pauses the account, and its messages wait without another connection', async () => {
  const b = await bench('exo-quota', {
    script: { data: { reply: PROVIDER_REPLIES.exchangeSubmissionQuota } },
    maxDelaySeconds: 1,
  });
  await b.harness.enqueue(mail('r-quota-1', 'exo-quota'));
  await b.probe.runFor(1_500);
  const status = await b.harness.runtime.accountStatus.get('exo-quota');
  assert.equal(status?.state, 'paused');
  assert.equal(status?.lastErrorCode, 'quota_exceeded');
  assert.ok(Date.parse(status?.pausedUntil ?? '') > Date.now() + 50 * 60_000, `paused for about an hour: ${status?.pausedUntil}`);

  await b.harness.enqueue(mail('r-quota-2', 'exo-quota'));
  await b.probe.runFor(1_500);
  assert.equal(b.server.connections, 1, 'no connection while paused');
  assert.equal(b.server.attempts('data'), 1);
  for (const id of ['r-quota-1', 'r-quota-2']) {
    const row = await b.harness.ledger(id);
    assert.equal(row?.status, 'deferred', id);
    assert.equal(row?.code, 'quota_exceeded', id);
    assert.equal(row?.attempts, 0, `${id}: a quota pause is not an attempt`);
  }
  const second = b.probe.requeues.filter((r) => r.id === 'r-quota-2');
  assert.ok(second.length >= 1 && second.every((r) => r.requestedSeconds > 50 * 60), 'held until the pause ends');
  assert.deepEqual(await b.harness.results(), []);
});

test("Gmail's 334 challenge and 535 5.7.8 for a token is an auth rejection: one refresh, one retry", async () => {
  const b = await bench('gmail-535', { security: 'tls', verifyToken: (_user, token) => token.startsWith('fresh-') });
  const refresher = useRefresher(b.harness);
  await b.harness.enqueue(mail('r-gmail-535', 'gmail-535'));
  await b.probe.drain();
  assert.match(b.server.transcript(), /S: 334 eyJzdGF0dXMiOiI0MDAi/, 'the challenge was given');
  assert.match(b.server.transcript(), /S: 535-5\.7\.8 Username and Password not accepted/);
  assert.equal(refresher.calls.length, 1);
  assert.equal(refresher.calls[0]!.rejectedToken, tokenFor('gmail-535'));
  assert.ok(
    b.harness.logs.some((line) => /mail\.auth_rejected/.test(line) && /5\.7\.8/.test(line)),
    'logged as an auth rejection',
  );
  assert.equal(b.server.accepted.length, 1);
  const row = await b.harness.ledger('r-gmail-535');
  assert.equal(row?.status, 'sent');
  assert.equal(row?.attempts, 1);
});

test('connection refused defers the message as transient, and it goes out once a server listens', async () => {
  const port = await closedPort();
  const harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: 'down', port })],
  });
  cleanups.push(() => harness.stop());
  const probe = probeDelivery(harness);
  await harness.enqueue(mail('r-down', 'down'));
  await probe.runFor(1_800);
  const deferred = probe.history('r-down').filter((w) => w.status === 'deferred');
  assert.ok(deferred.length >= 1, 'deferred while the server is down');
  assert.equal(deferred[0]!.code, 'transient');
  assert.equal(deferred[0]!.attempts, 1);
  assert.match(deferred[0]!.reason ?? '', /Could not talk to the SMTP server.*ECONNREFUSED/);

  const sink = await startSmtpSink({
    port,
    security: 'starttls',
    key: tls.key,
    cert: tls.cert,
    verifyToken: (_u, t) => t === tokenFor('down'),
  });
  cleanups.push(() => sink.stop());
  await probe.drain();
  const row = await harness.ledger('r-down');
  assert.equal(row?.status, 'sent');
  assert.equal(row?.attempts, deferred.length + 1);
  assert.equal(sink.received.length, 1);
});

test('a server that never greets is given up on within the greeting timeout, and the message goes out on the next try', async () => {
  const b = await bench('hang-greeting', { script: { connect: { attempt: 1, action: 'hang' } } });
  await b.harness.enqueue(mail('r-hang-greeting', 'hang-greeting'));
  await b.probe.drain();
  const history = b.probe.history('r-hang-greeting');
  const claim = history.find((w) => w.status === 'sending');
  const deferred = history.find((w) => w.status === 'deferred');
  assert.ok(claim && deferred, JSON.stringify(history));
  assert.equal(deferred.code, 'transient');
  // The cause, not the clock: the greeting timeout gave up (how soon is the benchmark's business).
  assert.match(deferred.reason ?? '', /Could not talk to the SMTP server \(ETIMEDOUT: Greeting never received\)/);
  const row = await b.harness.ledger('r-hang-greeting');
  assert.equal(row?.status, 'sent');
  assert.equal(b.server.connections, 2);
  assert.equal(b.server.accepted.length, 1);
});

for (const action of ['hang', 'close'] as const) {
  const what = action === 'hang' ? 'hangs' : 'drops the connection';
  test(`a server that ${what} after the message data is not sent a second copy`, async () => {
    // The server read the whole message and never answered: it may well have delivered it.
    let takenWithoutReply = 0;
    const account = `${action}-data`;
    const id = `r-${action}-data`;
    const b = await bench(account, {
      script: {
        data: (ctx) => {
          if (ctx.attempt !== 1) return undefined;
          takenWithoutReply++;
          return { action };
        },
      },
    });
    await b.harness.enqueue(mail(id, account));
    await b.probe.drain(8_000);
    assert.equal(takenWithoutReply, 1);
    assert.equal(b.server.accepted.length, 0, 'the one copy the server took was not sent again');
    const row = await b.harness.ledger(id);
    assert.equal(row?.status, 'failed');
    assert.equal(row?.code, 'delivery_unconfirmed');
    assert.equal(row?.attempts, 1);
    assert.match(row?.reason ?? '', /received the whole message but gave no reply .*may have been delivered/);
    // The cause, not the clock: the socket timeout gave up on the silent server; the closed one was noticed.
    assert.match(
      row?.reason ?? '',
      action === 'hang'
        ? /gave no reply \(ETIMEDOUT: Timeout\)/
        : /gave no reply \(ECONNECTION: Connection closed unexpectedly\)/,
    );
    const results = await b.harness.results();
    assert.deepEqual(
      results.map((r) => [r.id, r.status, r.code]),
      [[id, 'failed', 'delivery_unconfirmed']],
    );
    assert.equal(await outboxCount(b.harness), 0);
  });
}

test('a server that hangs at the DATA command, before it has the message, is tried again and the message goes out once', async () => {
  const b = await bench('hang-data-command', { script: { dataStart: { attempt: 1, action: 'hang' } } });
  await b.harness.enqueue(mail('r-hang-data-command', 'hang-data-command'));
  await b.probe.drain();
  const deferred = b.probe.history('r-hang-data-command').find((w) => w.status === 'deferred');
  assert.equal(deferred?.code, 'transient');
  assert.match(deferred?.reason ?? '', /ETIMEDOUT/);
  const row = await b.harness.ledger('r-hang-data-command');
  assert.equal(row?.status, 'sent');
  assert.equal(row?.attempts, 2);
  assert.equal(b.server.accepted.length, 1);
});

test('messages that must wait (throttled, account not authorized) are deferred again and again and never reach the poison queue', async () => {
  const server = await startScriptedSmtp({
    security: 'starttls',
    key: tls.key,
    cert: tls.cert,
    script: { data: { reply: PROVIDER_REPLIES.exchangeSenderThreadLimit } },
  });
  cleanups.push(() => server.stop());
  const harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [
      testAccount({ id: 'always-throttled', port: server.port }),
      testAccount({ id: 'never-authorized', port: server.port }),
    ],
    seedTokens: false,
  });
  cleanups.push(() => harness.stop());
  await harness.runtime.tokenStore.save('always-throttled', {
    accessToken: tokenFor('always-throttled'),
    expiresAt: Date.now() + 3_600_000,
  });
  const probe = probeDelivery(harness, { maxDelaySeconds: 1 });
  await harness.enqueue(mail('r-wait-throttled', 'always-throttled'));
  await harness.enqueue(mail('r-wait-auth', 'never-authorized'));

  const deadline = Date.now() + 14_000;
  const done = async () =>
    ((await harness.ledger('r-wait-throttled'))?.deferrals ?? 0) > 5 &&
    ((await harness.ledger('r-wait-auth'))?.deferrals ?? 0) > 5;
  while (Date.now() < deadline && !(await done())) await probe.runFor(1_000);

  for (const [id, code] of [
    ['r-wait-throttled', 'throttled'],
    ['r-wait-auth', 'not_authorized'],
  ] as const) {
    const row = await harness.ledger(id);
    assert.equal(row?.status, 'deferred', id);
    assert.equal(row?.code, code, id);
    assert.ok(row!.deferrals > 5, `${id}: ${row!.deferrals} deferrals`);
    assert.equal(row?.attempts, 0, `${id}: waiting is not an attempt`);
  }
  assert.ok(probe.invocations.length >= 12);
  assert.deepEqual([...new Set(probe.invocations.map((i) => i.dequeueCount))], [1], 'every copy was seen once');
  assert.equal(await probe.poisonCount(), 0);
  assert.equal(await outboxCount(harness), 2, 'both still queued');
  assert.equal(server.accepted.length, 0);
  assert.deepEqual(await harness.results(), []);
});
