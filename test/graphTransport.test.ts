/**
 * Microsoft Graph sendMail on real components: the local identity provider issues the tokens (a Microsoft-shaped
 * sign-in through the app's own authorize and callback, then a Graph token from the same refresh token in a
 * request of its own), the Graph stand-in checks them and keeps what it takes, and GraphSender holds real slots in
 * Azurite. Covers what issue 19 asks of the transport's building blocks: JSON and MIME arrive, envelope-only
 * recipients arrive, 429 and 504 and a dropped connection are reported as they must be, and a token without
 * Mail.Send is refused before any request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { startGraphStandIn, type GraphStandIn } from '../local/peers/graphStandIn';
import { startIdentityProvider, type IdentityProvider } from '../local/peers/identity/identityProvider';
import type { Account } from '../shared/config';
import { graphConsentMissing } from '../shared/accounts/graphConsent';
import { composeMail } from '../shared/delivery/composeMail';
import { AccountError, MessageError } from '../shared/errors';
import { classifyGraphFailure } from '../shared/graph/classifyGraphFailure';
import { clientRequestIdOf } from '../shared/graph/clientRequestId';
import { GraphFailure } from '../shared/graph/graphFailure';
import { buildGraphRequest, GraphRequestError } from '../shared/graph/graphRequest';
import type { GraphLane, GraphSender, GraphToken } from '../shared/graph/graphSender';
import { GraphSenderPool } from '../shared/graph/graphSenderPool';
import { TABLES } from '../shared/names';
import { authorizeViaCallback } from './support/authorizeDirect';
import { startSendHarness, testAccount, type SendHarness } from './support/sendHarness';

const TENANT = '3f1c2a9e-7b4d-4e21-9a6c-0d5e8b7f2c41';
const CLIENT_ID = 'outbox-graph';
const CLIENT_SECRET = 'graph-client-secret-5d1e';
const APP_ID = 'outbox-graph-daemon';
const APP_SECRET = 'graph-daemon-secret-93b0';
const REDIRECT_URI = 'http://127.0.0.1:7071/api/oauth/callback';
const SENDER = { id: 'sender', email: 'sender@contoso.test', name: 'Sender', password: 'pw-sender', tenantId: TENANT };
const GRAPH = 'https://graph.microsoft.com';

let azurite: Azurite;
let idp: IdentityProvider;
/** Issues app-only Graph tokens without Mail.Send: an app that was given another permission. */
let wrongRoleIdp: IdentityProvider;
let standIn: GraphStandIn;
let harness: SendHarness;
/** One sender per account, as the pipeline keeps them: each holds the mailbox's slots while they are idle. */
let pool: GraphSenderPool;

const account = (id: string): Account => {
  const found = harness.accounts.find((a) => a.id === id);
  if (!found) throw new Error(`no account ${id}`);
  return found;
};

function senderFor(target: Account): GraphSender {
  return pool.senderFor(target);
}

async function withLane<T>(sender: GraphSender, use: (lane: GraphLane) => Promise<T>): Promise<T> {
  const lane = await sender.acquire(5_000);
  assert.ok(lane, 'a Graph slot within 5 s');
  try {
    return await use(lane);
  } finally {
    lane.release();
  }
}

const jsonMail = (over: Record<string, unknown> = {}) => ({
  to: ['Ann Example <ann@example.com>'],
  cc: ['cc@example.com'],
  bcc: ['hidden@example.com'],
  subject: 'Graph JSON ✓',
  html: '<p>Hello <b>Graph</b></p>',
  headers: { 'X-Ticket': 'T-19' },
  ...over,
});

before(async () => {
  azurite = await startAzurite();
  idp = await startIdentityProvider({
    clients: [
      { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, authMethod: 'client_secret_post', redirectUris: [REDIRECT_URI] },
      { clientId: APP_ID, clientSecret: APP_SECRET, authMethod: 'client_secret_post', grantTypes: ['client_credentials'] },
    ],
    users: [SENDER],
    appRolesByAudience: { [GRAPH]: ['Mail.Send'] },
  });
  wrongRoleIdp = await startIdentityProvider({
    clients: [
      { clientId: APP_ID, clientSecret: APP_SECRET, authMethod: 'client_secret_post', grantTypes: ['client_credentials'] },
    ],
    users: [],
    appRolesByAudience: { [GRAPH]: ['Mail.ReadBasic.All'] },
  });
  standIn = await startGraphStandIn({ verifyAccessToken: (token) => idp.verifyAccessToken(token) });
  const microsoft = (id: string, issuer: string, extra: Record<string, unknown>) =>
    testAccount({
      id,
      port: 9,
      provider: 'microsoft',
      tenantId: TENANT,
      clientAuth: { type: 'secret', secretName: 'graph-client-secret' },
      oauth: { issuer },
      graph: { baseUrl: standIn.url },
      tokenMinLifetimeSeconds: 0,
      ...extra,
    });
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    seedTokens: false,
    accounts: [
      microsoft('graph', idp.issuer, { clientId: CLIENT_ID, user: SENDER.email, transport: 'graph', default: true }),
      microsoft('graph-large', idp.issuer, { clientId: CLIENT_ID, user: SENDER.email, transport: 'auto' }),
      microsoft('daemon', idp.issuer, {
        clientId: APP_ID,
        flow: 'client_credentials',
        clientAuth: { type: 'secret', secretName: 'graph-app-secret' },
        user: 'reports@contoso.test',
        transport: 'graph',
        saveToSentItems: false,
      }),
      microsoft('daemon-wrong-role', wrongRoleIdp.issuer, {
        clientId: APP_ID,
        flow: 'client_credentials',
        clientAuth: { type: 'secret', secretName: 'graph-app-secret' },
        user: 'reports@contoso.test',
        transport: 'graph',
      }),
    ],
  });
  pool = new GraphSenderPool(harness.runtime.storage.table(TABLES.leases), 'graph-test', { timeoutMs: 5_000, idleMs: 60_000 });
  await harness.runtime.secrets.set('graph-client-secret', CLIENT_SECRET);
  await harness.runtime.secrets.set('graph-app-secret', APP_SECRET);
  const page = await authorizeViaCallback(harness.runtime, 'graph', { login: SENDER.email, password: SENDER.password });
  assert.equal(page.status, 200, page.body);
});

after(async () => {
  await pool?.close();
  await harness?.stop();
  await standIn?.stop();
  await wrongRoleIdp?.stop();
  await idp?.stop();
  await azurite?.stop();
});

async function graphToken(id: string): Promise<GraphToken> {
  return harness.runtime.tokens.get(account(id), { audience: 'graph' });
}

describe('Graph tokens from the same refresh token', () => {
  test('sign-in consents to Graph Mail.Send; the Graph token comes from a request of its own, for Graph only', async () => {
    const status = await harness.runtime.accountStatus.get('graph');
    assert.equal(graphConsentMissing(account('graph'), status), undefined);
    const refreshesBefore = idp.counters.tokenRequestsByGrant.refresh_token ?? 0;
    const token = await graphToken('graph');
    assert.equal((idp.counters.tokenRequestsByGrant.refresh_token ?? 0) - refreshesBefore, 1);
    const claims = decodeJwt(token.accessToken);
    assert.equal(claims.aud, GRAPH);
    assert.equal(claims.scp, 'Mail.Send');
    const smtp = await harness.runtime.tokens.get(account('graph'));
    assert.notEqual(smtp.accessToken, token.accessToken);
    assert.deepEqual([(await idp.verifyAccessToken(smtp.accessToken))?.aud].flat(), ['https://outlook.office.com']);
    // Asked again, the stored Graph token is handed out: no second request.
    await graphToken('graph');
    assert.equal((idp.counters.tokenRequestsByGrant.refresh_token ?? 0) - refreshesBefore, 1);
  });

  test('an account authorized with SMTP scopes only shows "Re-authorize to enable Graph"', async () => {
    const status = await harness.runtime.accountStatus.get('graph');
    const smtpOnly = { ...status!, scopes: 'https://outlook.office.com/SMTP.Send offline_access openid' };
    assert.match(graphConsentMissing(account('graph'), smtpOnly) ?? '', /^Re-authorize to enable Graph: .*Mail\.Send/);
    assert.equal(graphConsentMissing({ ...account('graph'), transport: 'smtp' }, smtpOnly), undefined);
  });
});

describe('sendMail through the stand-in', () => {
  test('a JSON message arrives with its fields: recipients, Bcc, body, header, attachment, saveToSentItems', async () => {
    const sender = senderFor(account('graph'));
    const attachment = Buffer.from([0, 1, 2, 250, 251, 252]);
    const composed = composeMail(account('graph'), 'json-1', jsonMail(), [
      { filename: 'data.bin', contentType: 'application/octet-stream', content: attachment },
    ]);
    const request = await buildGraphRequest(account('graph'), 'json-1', composed);
    const before = standIn.received.length;
    const sent = await withLane(sender, async (lane) => lane.send(request, await graphToken('graph')));
    assert.match(
      sent.response,
      new RegExp(`^202 Accepted request-id=[0-9a-f-]{36} client-request-id=${clientRequestIdOf('json-1')}$`),
    );
    assert.deepEqual(sent.accepted.sort(), ['ann@example.com', 'cc@example.com', 'hidden@example.com']);
    const [got] = standIn.received.slice(before);
    assert.equal(got?.format, 'json');
    assert.equal(got.clientRequestId, clientRequestIdOf('json-1'));
    const message = got.json!.message as Record<string, unknown>;
    assert.equal(got.json!.saveToSentItems, true);
    assert.equal(message.subject, 'Graph JSON ✓');
    assert.deepEqual(message.body, { contentType: 'HTML', content: '<p>Hello <b>Graph</b></p>' });
    assert.deepEqual(message.toRecipients, [{ emailAddress: { address: 'ann@example.com', name: 'Ann Example' } }]);
    assert.deepEqual(message.bccRecipients, [{ emailAddress: { address: 'hidden@example.com' } }]);
    assert.deepEqual(message.internetMessageHeaders, [{ name: 'X-Ticket', value: 'T-19' }]);
    const [file] = message.attachments as Array<{ name: string; contentBytes: string }>;
    assert.equal(file?.name, 'data.bin');
    assert.deepEqual(Buffer.from(file.contentBytes, 'base64'), attachment);
    assert.deepEqual(got.recipients.sort(), ['ann@example.com', 'cc@example.com', 'hidden@example.com']);
    assert.doesNotMatch(got.raw.toString('latin1'), /^Bcc:/im, 'the kept copy shows no Bcc');
  });

  test('a MIME message arrives byte for byte, and its envelope-only recipients arrive through a Bcc header', async () => {
    const sender = senderFor(account('graph'));
    const raw = Buffer.from(
      [
        'From: Sender <sender@contoso.test>',
        'To: visible@example.com',
        'Subject: MIME through Graph',
        'Message-ID: <mime-1@contoso.test>',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
        '',
        'Grüße, line one.',
        'Line two.',
        '',
      ].join('\r\n'),
    );
    const composed = {
      options: { raw, envelope: { from: SENDER.email, to: ['visible@example.com', 'Envelope.Only@example.com'] } },
    };
    const request = await buildGraphRequest(account('graph'), 'mime-1', composed);
    assert.equal(request.contentType, 'text/plain');
    const before = standIn.received.length;
    await withLane(sender, async (lane) => lane.send(request, await graphToken('graph')));
    const [got] = standIn.received.slice(before);
    assert.equal(got?.format, 'mime');
    assert.ok(got.raw.equals(raw), 'the message kept is the one sent, byte for byte');
    assert.deepEqual(got.recipients.sort(), ['envelope.only@example.com', 'visible@example.com']);
  });

  test('a JSON message with a header that Graph JSON cannot carry goes as MIME, its Bcc still a recipient', async () => {
    const sender = senderFor(account('graph'));
    const headers = { 'List-Unsubscribe': '<mailto:leave@contoso.test>' };
    const composed = composeMail(account('graph'), 'json-mime-1', jsonMail({ headers }), []);
    const request = await buildGraphRequest(account('graph'), 'json-mime-1', composed);
    assert.equal(request.format, 'mime');
    const before = standIn.received.length;
    await withLane(sender, async (lane) => lane.send(request, await graphToken('graph')));
    const [got] = standIn.received.slice(before);
    assert.deepEqual(got?.recipients.sort(), ['ann@example.com', 'cc@example.com', 'hidden@example.com']);
    const kept = got.raw.toString('utf8');
    assert.match(kept, /^List-Unsubscribe: <mailto:leave@contoso\.test>\r$/m);
    assert.doesNotMatch(kept, /^Bcc:/im);
  });

  test('an app-only token (roles Mail.Send) sends for its mailbox, with saveToSentItems false from the account', async () => {
    const daemon = account('daemon');
    const sender = senderFor(daemon);
    const composed = composeMail(daemon, 'app-1', jsonMail({ bcc: [] }), []);
    const request = await buildGraphRequest(daemon, 'app-1', composed);
    const token = await graphToken('daemon');
    assert.deepEqual(decodeJwt(token.accessToken).roles, ['Mail.Send']);
    const before = standIn.received.length;
    await withLane(sender, (lane) => lane.send(request, token));
    const [got] = standIn.received.slice(before);
    assert.equal(got?.tokenKind, 'app');
    assert.equal(got.user, 'reports@contoso.test');
    assert.equal(got.json?.saveToSentItems, false);
  });
});

describe('4 requests at a time per app and mailbox, across instances', () => {
  test('a second instance gets no lane while the first holds all 4, and gets one once a slot is given back', async () => {
    const leases = harness.runtime.storage.table(TABLES.leases);
    const first = new GraphSenderPool(leases, 'instance-a', { timeoutMs: 5_000, idleMs: 60_000 });
    const second = new GraphSenderPool(leases, 'instance-b', { timeoutMs: 5_000, idleMs: 60_000 });
    // A mailbox of its own, whose slots no other test holds.
    const target: Account = { ...account('daemon'), id: 'slots', user: 'slots@contoso.test' };
    try {
      const lanes = await Promise.all([1, 2, 3, 4].map(() => first.senderFor(target).acquire(5_000)));
      assert.equal(lanes.filter(Boolean).length, 4);
      assert.equal(await second.senderFor(target).acquire(300), undefined);
      await first.close();
      const lane = await second.senderFor(target).acquire(5_000);
      assert.ok(lane, 'a slot given back is taken by the other instance');
      lane.release();
    } finally {
      await first.close();
      await second.close();
    }
  });
});

describe('what Graph answers, and what it means', () => {
  async function sendExpectingFailure(id: string): Promise<{ failure: GraphFailure; requests: number; received: number }> {
    const sender = senderFor(account('graph'));
    const request = await buildGraphRequest(account('graph'), id, composeMail(account('graph'), id, jsonMail(), []));
    const token = await graphToken('graph');
    const requests = standIn.requests;
    const received = standIn.received.length;
    let failure: GraphFailure | undefined;
    await withLane(sender, (lane) =>
      assert.rejects(lane.send(request, token), (error: unknown) => {
        failure = error as GraphFailure;
        return error instanceof GraphFailure;
      }),
    );
    return { failure: failure!, requests: standIn.requests - requests, received: standIn.received.length - received };
  }

  test('429 with Retry-After: throttled for exactly that long, after one request and no other', async () => {
    standIn.reply({ status: 429, retryAfterSeconds: 7 });
    const { failure, requests, received } = await sendExpectingFailure('throttled-1');
    assert.equal(requests, 1);
    assert.equal(received, 0);
    assert.equal(failure.status, 429);
    assert.equal(failure.maybeDelivered, false);
    const verdict = classifyGraphFailure(failure);
    assert.equal(verdict.kind, 'throttled');
    assert.equal(verdict.kind === 'throttled' && verdict.retryAfterMs, 7_000);
  });

  test('503 with Retry-After: throttled, never "may have been delivered"', async () => {
    standIn.reply({ status: 503, retryAfterSeconds: 3 });
    const { failure } = await sendExpectingFailure('busy-1');
    assert.deepEqual(
      { kind: classifyGraphFailure(failure).kind, maybe: failure.maybeDelivered, after: failure.retryAfterMs },
      { kind: 'throttled', maybe: false, after: 3_000 },
    );
  });

  test('504 after Graph took the message: delivery_unconfirmed, and the message was indeed delivered once', async () => {
    standIn.reply({ status: 504 });
    const { failure, requests, received } = await sendExpectingFailure('gateway-1');
    assert.equal(requests, 1);
    assert.equal(received, 1);
    assert.equal(failure.maybeDelivered, true);
    const verdict = classifyGraphFailure(failure);
    assert.equal(verdict.kind === 'permanent' && verdict.code, 'delivery_unconfirmed');
    assert.match(verdict.kind === 'permanent' ? verdict.reason : '', /may have been delivered/);
  });

  test('a connection closed mid-request: no answer, so delivery_unconfirmed', async () => {
    standIn.reply({ close: true, deliver: true });
    const { failure, received } = await sendExpectingFailure('closed-1');
    assert.equal(received, 1);
    assert.equal(failure.kind, 'no_answer');
    assert.equal(classifyGraphFailure(failure).kind === 'permanent' && failure.maybeDelivered, true);
  });

  test('401: refresh once (auth_rejected); the refused token is not presented again by requests waiting for a lane', async () => {
    const own = new GraphSenderPool(harness.runtime.storage.table(TABLES.leases), 'graph-test-401', {
      timeoutMs: 5_000,
      idleMs: 60_000,
    });
    try {
      const sender = own.senderFor(account('graph'));
      const request = await buildGraphRequest(
        account('graph'),
        'refused-1',
        composeMail(account('graph'), 'refused-1', jsonMail(), []),
      );
      const token = await graphToken('graph');
      standIn.reply({
        status: 401,
        code: 'InvalidAuthenticationToken',
        message: 'Lifetime validation failed, the token is expired.',
      });
      const requests = standIn.requests;
      const verdicts: string[] = [];
      for (let i = 0; i < 2; i++) {
        await withLane(sender, (lane) =>
          assert.rejects(lane.send(request, token), (error: unknown) => {
            verdicts.push(classifyGraphFailure(error).kind);
            return error instanceof GraphFailure && error.status === 401;
          }),
        );
      }
      assert.deepEqual(verdicts, ['auth_rejected', 'auth_rejected']);
      assert.equal(standIn.requests - requests, 1, 'the second send did not reach Graph');
    } finally {
      await own.close();
    }
  });

  test('403 ErrorAccessDenied: the account waits for an admin (config_error), with Graph request-id kept', async () => {
    standIn.reply({ status: 403, code: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.' });
    const { failure } = await sendExpectingFailure('denied-1');
    assert.match(failure.reply, /^403 ErrorAccessDenied: Access is denied\. .* request-id=[0-9a-f-]{36} client-request-id=/);
    const verdict = classifyGraphFailure(failure);
    assert.equal(verdict.kind === 'account' && verdict.code, 'config_error');
  });
});

describe('refused before any request', () => {
  test('a delegated token without Mail.Send (scp Mail.Read) is refused by the preflight: no request reaches Graph', async () => {
    const sender = senderFor(account('graph'));
    const request = await buildGraphRequest(
      account('graph'),
      'scope-1',
      composeMail(account('graph'), 'scope-1', jsonMail(), []),
    );
    const accessToken = await idp.signJwt({ aud: GRAPH, sub: SENDER.id, client_id: CLIENT_ID, scp: 'Mail.Read User.Read' });
    const requests = standIn.requests;
    await withLane(sender, (lane) =>
      assert.rejects(
        lane.send(request, { accessToken, expiresAt: Date.now() + 300_000 }),
        (error: unknown) =>
          error instanceof GraphFailure &&
          error.kind === 'preflight' &&
          /does not carry the delegated permission Mail\.Send/.test(error.message),
      ),
    );
    assert.equal(standIn.requests, requests);
  });

  test('an app-only Graph token without the Mail.Send role is refused when it is obtained, naming the fix', async () => {
    const requests = standIn.requests;
    await assert.rejects(
      graphToken('daemon-wrong-role'),
      (error: unknown) =>
        error instanceof AccountError &&
        error.code === 'config_error' &&
        /no Mail\.Send role \(roles: Mail\.ReadBasic\.All\)/.test(error.message),
    );
    assert.equal(standIn.requests, requests);
  });

  test('an SMTP token handed to Graph is refused by the preflight, saying it is an Exchange token', async () => {
    const sender = senderFor(account('graph'));
    const request = await buildGraphRequest(account('graph'), 'aud-1', composeMail(account('graph'), 'aud-1', jsonMail(), []));
    const accessToken = await idp.signJwt({
      aud: 'https://outlook.office.com',
      sub: SENDER.id,
      client_id: CLIENT_ID,
      scp: 'SMTP.Send',
    });
    await withLane(sender, (lane) =>
      assert.rejects(lane.send(request, { accessToken, expiresAt: Date.now() + 300_000 }), /Exchange \(SMTP\) token/),
    );
  });

  test('a message over about 4 MB is refused with the limit and the way out (SMTP when the account can use it)', async () => {
    const big = [{ filename: 'big.bin', content: Buffer.alloc(3_200_000, 7) }];
    for (const [id, smtpCanCarry, wayOut] of [
      ['graph', false, /set transport "auto" or "smtp"/],
      ['graph-large', true, /can send it by SMTP instead/],
    ] as const) {
      const composed = composeMail(account(id), 'big-1', jsonMail(), big);
      await assert.rejects(
        buildGraphRequest(account(id), 'big-1', composed),
        (error: unknown) =>
          error instanceof GraphRequestError &&
          error.code === 'too_large' &&
          error.smtpCanCarry === smtpCanCarry &&
          /about 4\.0 MB per request/.test(error.message) &&
          wayOut.test(error.message),
      );
    }
  });

  test('a From display name with "@" is refused before sending (Graph would answer ErrorSendAsDenied)', async () => {
    const composed = composeMail(account('graph'), 'name-1', jsonMail({ from: '"ops@contoso" <sender@contoso.test>' }), []);
    await assert.rejects(
      buildGraphRequest(account('graph'), 'name-1', composed),
      (error: unknown) =>
        error instanceof MessageError && error.code === 'invalid_message' && /ErrorSendAsDenied/.test(error.message),
    );
  });
});
