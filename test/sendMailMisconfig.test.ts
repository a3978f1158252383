/**
 * A server that is set up differently from what the account expects is an account problem, not a message
 * failure: the message stays queued, the account becomes `configuration_error` with a reason saying what the
 * server did, one alert goes out, and the token never reaches a server that did not offer STARTTLS or XOAUTH2.
 * Against real servers: the scripted SMTP server configured to misbehave, with its own certificates.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { AccountAlerts } from '../shared/accounts/accountAlerts';
import type { Account } from '../shared/config';
import { QUEUES } from '../shared/names';
import type { TokenRefresher } from '../shared/tokens/tokenService';
import { TokenService } from '../shared/tokens/tokenService';
import type { AccessTokenRecord } from '../shared/tokens/tokenStore';
import { createTestCa, issueServerCert, loadTestTls } from './support/certs';
import { probeDelivery, type DeliveryProbe } from './support/deliveryProbe';
import { startScriptedSmtp, type ScriptedSecurity, type ScriptedSmtp, type SmtpScript } from './support/scriptedSmtp';
import { startSendHarness, testAccount, tokenFor, type SendHarness } from './support/sendHarness';

let azurite: Azurite;
let tls: Awaited<ReturnType<typeof loadTestTls>>;
const cleanups: Array<() => Promise<unknown>> = [];
const alerts: Array<{ account: string; incident: string }> = [];
const sendAlert = AccountAlerts.prototype.send;

before(async () => {
  [azurite, tls] = await Promise.all([startAzurite(), loadTestTls()]);
  // Counts alerts at the one place they leave from, whether or not an account can deliver them.
  AccountAlerts.prototype.send = function (account, problem, incident, previous) {
    alerts.push({ account: account.id, incident });
    return sendAlert.call(this, account, problem, incident, previous);
  };
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(async () => {
  AccountAlerts.prototype.send = sendAlert;
  await azurite?.stop();
});

class CountingRefresher implements TokenRefresher {
  calls = 0;
  constructor(private readonly harness: SendHarness) {}
  async refresh(account: Account): Promise<AccessTokenRecord> {
    this.calls++;
    const record = { accessToken: `fresh-${account.id}-${this.calls}`, expiresAt: Date.now() + 3_600_000 };
    await this.harness.runtime.tokenStore.save(account.id, record);
    return record;
  }
}

interface Bench {
  server: ScriptedSmtp;
  harness: SendHarness;
  probe: DeliveryProbe;
  refresher: CountingRefresher;
  /** Tokens that reached the server in an AUTH command. */
  tokensSeen: string[];
}

async function bench(
  account: string,
  options: {
    server: ScriptedSecurity;
    account?: ScriptedSecurity;
    script?: SmtpScript;
    cert?: { key: string; cert: string };
    host?: string;
  },
): Promise<Bench> {
  const tokensSeen: string[] = [];
  const { key, cert } = options.cert ?? tls;
  const server = await startScriptedSmtp({
    security: options.server,
    key,
    cert,
    ...(options.host ? { host: options.host } : {}),
    ...(options.script ? { script: options.script } : {}),
    verifyToken: (_user, token) => {
      tokensSeen.push(token);
      return true;
    },
  });
  cleanups.push(() => server.stop());
  const harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [
      testAccount({
        id: account,
        port: server.port,
        smtp: { security: options.account ?? options.server, ...(options.host ? { host: options.host } : {}) },
      }),
    ],
  });
  cleanups.push(() => harness.stop());
  const refresher = new CountingRefresher(harness);
  harness.services.tokens = new TokenService(harness.runtime.tokenStore, refresher);
  return { server, harness, probe: probeDelivery(harness, { maxDelaySeconds: 1 }), refresher, tokensSeen };
}

const mail = (id: string, account: string) => ({ id, account, to: ['rcpt@example.com'], subject: id, text: 'hello' });

/** The message waits (not failed, not counted), the account has a configuration problem, one alert. */
async function assertConfigProblem(b: Bench, account: string, id: string, reason: RegExp): Promise<void> {
  const row = await b.harness.ledger(id);
  assert.equal(row?.status, 'deferred', JSON.stringify(row));
  assert.equal(row?.code, 'config_error');
  assert.equal(row?.attempts, 0, 'a server set up wrong is not an attempt');
  assert.ok(row!.deferrals >= 2, 'came back and was held at the account gate');
  const status = await b.harness.runtime.accountStatus.get(account);
  assert.equal(status?.state, 'configuration_error');
  assert.equal(status?.lastErrorCode, 'config_error');
  assert.match(status?.lastError ?? '', reason);
  assert.equal(alerts.filter((a) => a.account === account).length, 1, 'one alert for the incident');
  const queued = (await b.harness.runtime.storage.queue(QUEUES.outbox).getProperties()).approximateMessagesCount;
  assert.equal(queued, 1, 'the message stays queued');
  assert.deepEqual(await b.harness.results(), [], 'no result: nothing failed');
  assert.equal(b.refresher.calls, 0, 'a new token cannot fix the server: not refreshed');
}

test('a starttls account on a server that does not offer STARTTLS: the token is not sent, the account has a configuration problem, the message waits', async () => {
  // The server speaks plaintext and answers STARTTLS with 502, as one would whose STARTTLS is stripped on the way.
  const b = await bench('no-starttls', { server: 'plain', account: 'starttls' });
  await b.harness.enqueue(mail('m-no-starttls', 'no-starttls'));
  await b.probe.runFor(2_200);
  await assertConfigProblem(b, 'no-starttls', 'm-no-starttls', /did not offer STARTTLS.*502 5\.5\.1.*token was not sent/);
  assert.ok(!b.server.commands.some((c) => /^AUTH/i.test(c.line)), b.server.transcript());
  assert.deepEqual(b.tokensSeen, []);
  assert.equal(b.server.connections, 1, 'then the account waits: no second connection');
});

test('a server that offers AUTH PLAIN LOGIN but not XOAUTH2 never gets the token, and is not answered with a refresh', async () => {
  const ehlo = { code: 250, lines: ['scripted Hello', 'STARTTLS', 'AUTH PLAIN LOGIN', 'ENHANCEDSTATUSCODES'] };
  const b = await bench('no-xoauth2', { server: 'starttls', script: { ehlo: { reply: ehlo } } });
  await b.harness.enqueue(mail('m-no-xoauth2', 'no-xoauth2'));
  await b.probe.runFor(2_200);
  await assertConfigProblem(
    b,
    'no-xoauth2',
    'm-no-xoauth2',
    /does not offer AUTH XOAUTH2 \(it offers PLAIN, LOGIN\).*token was not sent/,
  );
  assert.ok(
    b.server.commands.some((c) => c.line === 'STARTTLS'),
    'the session got as far as TLS',
  );
  assert.ok(!b.server.commands.some((c) => /^AUTH/i.test(c.line)), b.server.transcript());
  assert.deepEqual(b.tokensSeen, []);
  assert.equal(b.server.authFailures, 0);
});

test('a server that offers PLAIN and LOGIN besides XOAUTH2 gets the token over XOAUTH2 only', async () => {
  const ehlo = { code: 250, lines: ['scripted Hello', 'STARTTLS', 'AUTH PLAIN LOGIN XOAUTH2', 'ENHANCEDSTATUSCODES'] };
  const b = await bench('all-mechs', { server: 'starttls', script: { ehlo: { reply: ehlo } } });
  await b.harness.enqueue(mail('m-all-mechs', 'all-mechs'));
  await b.probe.drain();
  assert.equal((await b.harness.ledger('m-all-mechs'))?.status, 'sent');
  const auths = b.server.commands.filter((c) => /^AUTH/i.test(c.line)).map((c) => c.line);
  assert.deepEqual(auths, ['AUTH XOAUTH2 <redacted>']);
  assert.deepEqual(b.tokensSeen, [tokenFor('all-mechs')]);
});

test('a server that lists no AUTH at all never gets the token', async () => {
  const ehlo = { code: 250, lines: ['scripted Hello', 'STARTTLS', 'ENHANCEDSTATUSCODES'] };
  const b = await bench('no-auth', { server: 'starttls', script: { ehlo: { reply: ehlo } } });
  await b.harness.enqueue(mail('m-no-auth', 'no-auth'));
  await b.probe.runFor(2_200);
  await assertConfigProblem(b, 'no-auth', 'm-no-auth', /does not offer AUTH XOAUTH2 \(it offers no AUTH mechanism at all\)/);
  assert.ok(!b.server.commands.some((c) => /^(AUTH|MAIL)/i.test(c.line)), b.server.transcript());
});

test('a server that advertises XOAUTH2 and answers it with 504 is a configuration problem, not a refused token', async () => {
  const b = await bench('auth-504', {
    server: 'starttls',
    script: { auth: { reply: { code: 504, enhanced: '5.7.4', lines: ['Unrecognized authentication type'] } } },
  });
  await b.harness.enqueue(mail('m-auth-504', 'auth-504'));
  await b.probe.runFor(2_200);
  await assertConfigProblem(b, 'auth-504', 'm-auth-504', /did not accept the AUTH XOAUTH2 command.*504 5\.7\.4/);
  assert.equal(b.server.attempts('auth'), 1, 'one AUTH, no retry with a fresh token');
});

test('a certificate the account does not trust: the token is not sent, configuration problem naming the certificate', async () => {
  const stranger = await issueServerCert(await createTestCa({ commonName: 'Somebody else' }));
  const b = await bench('bad-cert', { server: 'starttls', cert: stranger });
  await b.harness.enqueue(mail('m-bad-cert', 'bad-cert'));
  await b.probe.runFor(2_200);
  await assertConfigProblem(b, 'bad-cert', 'm-bad-cert', /certificate is not trusted.*token was not sent/);
  assert.ok(!b.server.commands.some((c) => /^AUTH/i.test(c.line)), b.server.transcript());
  assert.deepEqual(b.tokensSeen, []);
});

test('implicit TLS with a certificate for another host: configuration problem', async () => {
  const otherHost = await issueServerCert(await createTestCa(), ['mail.example.com']);
  const b = await bench('wrong-host', { server: 'tls', cert: otherHost });
  await b.harness.enqueue(mail('m-wrong-host', 'wrong-host'));
  await b.probe.runFor(2_200);
  await assertConfigProblem(b, 'wrong-host', 'm-wrong-host', /certificate is not trusted/);
  assert.deepEqual(b.tokensSeen, []);
});

test('a server that refuses the session at the greeting (554) is a configuration problem', async () => {
  const b = await bench('greet-554', {
    server: 'starttls',
    script: { connect: { reply: { code: 554, enhanced: '5.7.1', lines: ['No SMTP service here'] } } },
  });
  await b.harness.enqueue(mail('m-greet-554', 'greet-554'));
  await b.probe.runFor(2_200);
  await assertConfigProblem(
    b,
    'greet-554',
    'm-greet-554',
    /refused the session before any message.*554 5\.7\.1 No SMTP service here/,
  );
});

test('a server that drops the connection at the greeting is passing trouble: tried again on a new connection, no account problem', async () => {
  const b = await bench('greet-close', { server: 'starttls', script: { connect: { attempt: 1, action: 'close' } } });
  await b.harness.enqueue(mail('m-greet-close', 'greet-close'));
  await b.probe.drain();
  const row = await b.harness.ledger('m-greet-close');
  assert.equal(row?.status, 'sent', JSON.stringify(b.probe.history('m-greet-close')));
  assert.equal(b.server.connections, 2, 'the pool opened a new connection');
  assert.equal(b.server.accepted.length, 1);
  assert.equal((await b.harness.runtime.accountStatus.get('greet-close'))?.lastErrorCode ?? undefined, undefined);
  assert.equal(alerts.filter((a) => a.account === 'greet-close').length, 0);
  assert.deepEqual(b.tokensSeen, [tokenFor('greet-close')]);
});
