/**
 * The send path on the Graph transport, through the real pipeline (queue trigger semantics, ledger on Azurite,
 * budget, results) with tokens from the local identity provider and the Graph stand-in: the same queue, ledger and
 * limits as SMTP. Also transport `auto`: SMTP until the server says SMTP AUTH is disabled, then Graph, with one alert.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { startGraphStandIn, type GraphStandIn } from '../local/peers/graphStandIn';
import { startIdentityProvider, type IdentityProvider } from '../local/peers/identity/identityProvider';
import { deliverMessage } from '../shared/delivery/deliverMessage';
import { encodeQueueJson } from '../shared/message/queueJson';
import { authorizeViaCallback } from './support/authorizeDirect';
import { loadTestTls } from './support/certs';
import { PROVIDER_REPLIES } from './support/providerReplies';
import { startScriptedSmtp, type ScriptedSmtp } from './support/scriptedSmtp';
import { startSendHarness, testAccount, type SendHarness } from './support/sendHarness';

const TENANT = '5a0c9e21-3d7b-4f8a-b2e6-91c4d7a0e3f5';
const CLIENT_ID = 'outbox-pipeline';
const CLIENT_SECRET = 'pipeline-client-secret-7c2a';
const REDIRECT_URI = 'http://127.0.0.1:7071/api/oauth/callback';
const GRAPH_USER = { id: 'g', email: 'graph@contoso.test', name: 'Graph', password: 'pw-g', tenantId: TENANT };
const AUTO_USER = { id: 'a', email: 'auto@contoso.test', name: 'Auto', password: 'pw-a', tenantId: TENANT };

let azurite: Azurite;
let idp: IdentityProvider;
let standIn: GraphStandIn;
let smtp: ScriptedSmtp;
let harness: SendHarness;

before(async () => {
  azurite = await startAzurite();
  idp = await startIdentityProvider({
    clients: [
      { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, authMethod: 'client_secret_post', redirectUris: [REDIRECT_URI] },
    ],
    users: [GRAPH_USER, AUTO_USER],
  });
  standIn = await startGraphStandIn({ verifyAccessToken: (token) => idp.verifyAccessToken(token) });
  const tls = await loadTestTls();
  // Exchange with SMTP AUTH switched off for the tenant.
  smtp = await startScriptedSmtp({
    security: 'starttls',
    key: tls.key,
    cert: tls.cert,
    script: { auth: { reply: PROVIDER_REPLIES.exchangeSmtpAuthDisabled } },
  });
  const microsoft = (id: string, user: string, extra: Record<string, unknown>) =>
    testAccount({
      id,
      port: smtp.port,
      provider: 'microsoft',
      tenantId: TENANT,
      clientId: CLIENT_ID,
      clientAuth: { type: 'secret', secretName: 'pipeline-client-secret' },
      oauth: { issuer: idp.issuer },
      graph: { baseUrl: standIn.url },
      user,
      tokenMinLifetimeSeconds: 0,
      rateLimit: { messagesPerMinute: 1_000, concurrentConnections: 2 },
      ...extra,
    });
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    seedTokens: false,
    accounts: [
      microsoft('graph', GRAPH_USER.email, { transport: 'graph', default: true }),
      microsoft('auto', AUTO_USER.email, { transport: 'auto', alerts: ['it@contoso.test'] }),
    ],
  });
  await harness.runtime.secrets.set('pipeline-client-secret', CLIENT_SECRET);
  for (const [id, user] of [
    ['graph', GRAPH_USER],
    ['auto', AUTO_USER],
  ] as const) {
    const page = await authorizeViaCallback(harness.runtime, id, { login: user.email, password: user.password });
    assert.equal(page.status, 200, page.body);
  }
});

after(async () => {
  await harness?.stop();
  await smtp?.stop();
  await standIn?.stop();
  await idp?.stop();
  await azurite?.stop();
});

const mail = (id: string, account = 'graph', over: Record<string, unknown> = {}) => ({
  id,
  account,
  to: ['ann@example.com'],
  subject: `Graph ${id}`,
  text: `body of ${id}`,
  ...over,
});
const deliverOnce = (message: object) =>
  deliverMessage(harness.services, encodeQueueJson(message), {
    queueMessageId: `q-${Date.now()}-${Math.random()}`,
    dequeueCount: 1,
  });

test("a Graph account's message goes out through sendMail once; the ledger keeps Graph's request-id and the result event follows", async () => {
  const before = standIn.received.length;
  await harness.enqueue(mail('g-json'));
  await harness.drain();
  const taken = standIn.received.slice(before);
  assert.equal(taken.length, 1);
  assert.equal(taken[0]!.user, GRAPH_USER.email);
  const row = await harness.ledger('g-json');
  assert.equal(row?.status, 'sent');
  assert.match(row?.smtpReply ?? '', /^202 Accepted request-id=\S+ client-request-id=\S+/);
  const events = (await harness.results()).filter((e) => e.id === 'g-json');
  assert.deepEqual(
    events.map((e) => e.status),
    ['sent'],
  );
});

test('429 with Retry-After: the message is deferred until then as throttled, with no second request', async () => {
  const requests = standIn.requests;
  standIn.reply({ status: 429, retryAfterSeconds: 30 });
  const started = Date.now();
  assert.equal(await deliverOnce(mail('g-429')), 'deferred');
  assert.equal(standIn.requests - requests, 1, 'one request, then the message waits');
  const row = await harness.ledger('g-429');
  assert.equal(row?.status, 'deferred');
  assert.equal(row?.code, 'throttled');
  assert.equal(row?.attempts, 0, 'throttling is not an attempt');
  assert.ok(Date.parse(row!.nextAttemptAt!) >= started + 30_000, `back after Retry-After: ${row?.nextAttemptAt}`);
});

test('504 after Graph took the message: delivery_unconfirmed, and the id is never sent again', async () => {
  const before = standIn.taken;
  standIn.reply({ status: 504, deliver: true });
  assert.equal(await deliverOnce(mail('g-504')), 'failed');
  const row = await harness.ledger('g-504');
  assert.equal(row?.code, 'delivery_unconfirmed');
  assert.match(row?.smtpReply ?? '', /^504/);
  assert.equal(await deliverOnce(mail('g-504')), 'duplicate');
  assert.equal(standIn.taken - before, 1, 'one copy at Graph');
});

test('a message over Graph’s request size on a graph-only account fails with the limit and the way out', async () => {
  const big = 'x'.repeat(5 * 1024 * 1024);
  const requests = standIn.requests;
  // Too big for a queue message: the attachment goes by blob, as producers do.
  await harness.runtime.storage.container('mail-attachments').uploadBlockBlob('graph/big.txt', big, big.length);
  assert.equal(
    await deliverOnce(mail('g-big', 'graph', { attachments: [{ filename: 'big.txt', blob: 'mail-attachments/graph/big.txt' }] })),
    'failed',
  );
  const row = await harness.ledger('g-big');
  assert.equal(row?.code, 'too_large');
  assert.match(row?.reason ?? '', /4 MB|MB/);
  assert.equal(standIn.requests, requests, 'nothing was sent');
});

test('transport auto: SMTP AUTH disabled (5.7.139) switches the account to Graph, alerts once, and its messages go by Graph', async () => {
  const before = standIn.received.length;
  await harness.enqueue(mail('auto-1', 'auto'));
  await harness.enqueue(mail('auto-2', 'auto'));
  await harness.drain(30_000);
  const status = await harness.runtime.accountStatus.get('auto');
  assert.equal(status?.state, 'ready', 'the account keeps sending');
  assert.ok(status?.graphSince, 'it records since when it sends by Graph');
  assert.match(status?.graphReason ?? '', /5\.7\.139/);
  for (const id of ['auto-1', 'auto-2']) assert.equal((await harness.ledger(id))?.status, 'sent', id);
  const taken = standIn.received.slice(before);
  assert.equal(taken.filter((m) => m.user === AUTO_USER.email).length, 2, 'both by Graph');
  // Two messages may meet the refusal at once: the alert's id is the incident's, so its receivers get one mail.
  const alerts = taken.filter((m) => /now sends through Microsoft Graph/.test(String(m.json?.message.subject ?? '')));
  assert.equal(alerts.length, 1, 'one alert mail, through the other account');
  assert.ok(smtp.attempts('auth') >= 1);

  // Later messages go straight to Graph: no SMTP attempt.
  const auths = smtp.attempts('auth');
  await harness.enqueue(mail('auto-3', 'auto'));
  await harness.drain();
  assert.equal(smtp.attempts('auth'), auths);
  assert.equal((await harness.ledger('auto-3'))?.status, 'sent');
});
