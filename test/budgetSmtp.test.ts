import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { peakInWindow, startBudgetSmtp, type BudgetSmtp, type BudgetSmtpOptions } from './support/budgetSmtp';
import { PROVIDER_REPLIES, formatReply } from './support/providerReplies';

const servers: BudgetSmtp[] = [];
after(() => Promise.all(servers.map((server) => server.stop())));

async function budget(options: BudgetSmtpOptions) {
  const server = await startBudgetSmtp(options);
  servers.push(server);
  return server;
}

function transport(smtp: BudgetSmtp, user = 'sender@contoso.test', pool = false) {
  return nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: false,
    ignoreTLS: true,
    pool,
    maxConnections: 1,
    auth: { type: 'OAuth2', user, accessToken: 'any-token' },
  });
}

const mail = { from: 'sender@contoso.test', to: 'rcpt@fabrikam.test', subject: 'budget', text: 'hello' };

describe('budget smtp', () => {
  it('accepts and counts messages', async () => {
    const smtp = await budget({});
    const sender = transport(smtp, undefined, true);
    const infos = await Promise.all(Array.from({ length: 20 }, () => sender.sendMail(mail)));
    sender.close();
    assert.match(infos[0]?.response ?? '', /^250 2\.0\.0 OK <\d+@budget\.smtp\.test>/);
    assert.equal(smtp.accepted, 20);
    assert.equal(smtp.acceptedAt.length, 20);
    assert.equal(smtp.throttleReplies, 0);
  });

  it('throttles connections beyond maxConnections at MAIL FROM, like Exchange', async () => {
    const smtp = await budget({ maxConnections: 3, latencyMs: 300 });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => transport(smtp).sendMail(mail)));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 2);
    for (const r of refused)
      assert.deepEqual(
        { code: (r.reason as { responseCode?: number }).responseCode, response: (r.reason as { response?: string }).response },
        { code: 432, response: formatReply(PROVIDER_REPLIES.exchangeConcurrentConnections) },
      );
    assert.equal(smtp.accepted, 3);
    assert.equal(smtp.connectionThrottles, 2);
    assert.equal(smtp.connectionsPeak, 5);
  });

  it('can refuse surplus connections with a 421 greeting instead', async () => {
    const smtp = await budget({ maxConnections: 1, connectionLimitAt: 'greeting', latencyMs: 300 });
    const results = await Promise.allSettled([transport(smtp).sendMail(mail), transport(smtp).sendMail(mail)]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.equal(smtp.throttleReplies, 1);
    const again = await transport(smtp).sendMail(mail);
    assert.match(again.response, /^250 /, 'the slot is free again once the first connection closed');
  });

  it('enforces a sliding window of accepted messages', async () => {
    const smtp = await budget({ messagesPerWindow: 5, windowMs: 1_000 });
    const sender = transport(smtp, undefined, true);
    const first = await Promise.allSettled(Array.from({ length: 8 }, () => sender.sendMail(mail)));
    assert.equal(first.filter((r) => r.status === 'fulfilled').length, 5);
    const refused = first.find((r) => r.status === 'rejected');
    assert.equal((refused?.reason as { response?: string }).response, formatReply(PROVIDER_REPLIES.exchangeSenderThreadLimit));
    assert.equal(smtp.rateThrottles, 3);
    await new Promise((resolve) => setTimeout(resolve, 1_050));
    await sender.sendMail(mail);
    sender.close();
    assert.equal(smtp.accepted, 6);
    assert.equal(smtp.peakInWindow(1_000), 5, 'the first five, and the sixth in a window of its own');
  });

  it('keeps one budget per mailbox with scope "user"', async () => {
    const smtp = await budget({ messagesPerWindow: 2, windowMs: 60_000, scope: 'user' });
    for (const user of ['a@contoso.test', 'b@contoso.test']) {
      const sender = transport(smtp, user, true);
      const results = await Promise.allSettled(Array.from({ length: 3 }, () => sender.sendMail({ ...mail, from: user })));
      sender.close();
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2, user);
    }
    assert.equal(smtp.accepted, 4);
    assert.equal(smtp.rateThrottles, 2);
  });

  it('rejects tokens its verifier refuses', async () => {
    const smtp = await budget({ verifyToken: (_user, token) => token === 'right' });
    await assert.rejects(transport(smtp).sendMail(mail), { code: 'EAUTH' });
    assert.ok(smtp.authFailures >= 1);
    assert.equal(smtp.accepted, 0);
  });

  it('computes the busiest window', () => {
    assert.equal(peakInWindow([0, 10, 20, 1000, 1005], 100), 3);
    assert.equal(peakInWindow([0, 100, 200], 100), 1);
    assert.equal(peakInWindow([], 100), 0);
  });
});
