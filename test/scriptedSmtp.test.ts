import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { createTestCa, issueServerCert, type ServerCert, type TestCa } from './support/certs';
import { GMAIL_XOAUTH2_CHALLENGE, PROVIDER_REPLIES, formatReply, type ProviderReply } from './support/providerReplies';
import { startScriptedSmtp, type ScriptedSecurity, type ScriptedSmtp, type SmtpScript } from './support/scriptedSmtp';

const USER = 'sender@contoso.test';
let ca: TestCa;
let serverCert: ServerCert;
const servers: ScriptedSmtp[] = [];

before(async () => {
  ca = await createTestCa();
  serverCert = await issueServerCert(ca);
});
after(() => Promise.all(servers.map((server) => server.stop())));

async function server(
  script: SmtpScript = {},
  security: ScriptedSecurity = 'starttls',
  extra: { verifyToken?: (u: string, t: string) => boolean } = {},
) {
  const started = await startScriptedSmtp({ security, key: serverCert.key, cert: serverCert.cert, script, ...extra });
  servers.push(started);
  return started;
}

function send(
  smtp: ScriptedSmtp,
  mail: { to?: string | string[]; timeouts?: number } = {},
  security: ScriptedSecurity = 'starttls',
) {
  const timeout = mail.timeouts ?? 5_000;
  const transport = nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: security === 'tls',
    requireTLS: security === 'starttls',
    tls: { ca: ca.caPem },
    auth: { type: 'OAuth2', user: USER, accessToken: 'token' },
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  return transport.sendMail({ from: USER, to: mail.to ?? 'rcpt@fabrikam.test', subject: 'scripted', text: 'hello\n.\n..dots\n' });
}

/** nodemailer's `response` for a reply: the lines joined with "\n". */
const asResponse = (reply: ProviderReply) => formatReply(reply, '\n');

describe('scripted smtp', () => {
  it('behaves like a plain submission server when nothing is scripted', async () => {
    const smtp = await server();
    const info = await send(smtp);
    assert.match(info.response, /^250 2\.0\.0 OK <\w+@scripted\.smtp\.test>/);
    assert.equal(smtp.accepted.length, 1);
    const [message] = smtp.accepted;
    assert.equal(message?.authUser, USER);
    assert.deepEqual(message?.envelope, { from: USER, to: ['rcpt@fabrikam.test'] });
    assert.match(message?.raw.toString() ?? '', /\r\nhello\r\n\.\r\n\.\.dots\r\n$/, 'dot-unstuffed body');
    const verbs = smtp.commands.map((c) => c.line.split(/[ :]/)[0]);
    assert.deepEqual(verbs.slice(0, 7), ['EHLO', 'STARTTLS', 'EHLO', 'AUTH', 'MAIL', 'RCPT', 'DATA']);
    assert.ok(
      smtp.commands.some((c) => c.line === 'AUTH XOAUTH2 <redacted>'),
      'token not recorded',
    );
    assert.equal(smtp.connections, 1);
  });

  it('speaks implicit TLS', async () => {
    const smtp = await server({}, 'tls');
    await send(smtp, {}, 'tls');
    assert.equal(smtp.accepted.length, 1);
  });

  it('fails only the scripted attempt: Exchange sender thread limit, then success', async () => {
    const smtp = await server({ data: { attempt: 1, reply: PROVIDER_REPLIES.exchangeSenderThreadLimit } });
    await assert.rejects(send(smtp), {
      responseCode: 432,
      response:
        '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=DM5SPR00MB2471.namprd08.prod.outlook.com]',
    });
    await send(smtp);
    assert.equal(smtp.attempts('data'), 2);
    assert.equal(smtp.accepted.length, 1);
  });

  it('gives permanent submission failures verbatim', async () => {
    for (const reply of [
      PROVIDER_REPLIES.exchangeSubmissionQuota,
      PROVIDER_REPLIES.exchangeSendAsDenied,
      PROVIDER_REPLIES.gmailDailyLimit,
    ]) {
      const smtp = await server({ data: { reply } });
      await assert.rejects(send(smtp), { responseCode: reply.code, response: asResponse(reply) });
      assert.equal(smtp.accepted.length, 0);
    }
  });

  it('refuses the connection with a 421 greeting', async () => {
    const smtp = await server({ connect: { reply: PROVIDER_REPLIES.exchangeServiceNotAvailable } });
    await assert.rejects(send(smtp), { responseCode: 421 });
    assert.equal(smtp.attempts('ehlo'), 0);
  });

  it('closes after a 421 to EHLO, like Gmail shedding load', async () => {
    const smtp = await server({ ehlo: { attempt: 1, reply: PROVIDER_REPLIES.gmailTryAgainLater } });
    await assert.rejects(send(smtp), { responseCode: 421 });
    await send(smtp);
    assert.equal(smtp.connections, 2);
  });

  it('can hold back the greeting forever', async () => {
    const smtp = await server({ connect: { action: 'hang' } });
    await assert.rejects(send(smtp, { timeouts: 300 }), { code: 'ETIMEDOUT' });
    assert.equal(smtp.commands.length, 0);
  });

  it('can swallow the end of DATA without answering', async () => {
    const smtp = await server({ data: { action: 'hang' } });
    await assert.rejects(send(smtp, { timeouts: 300 }), { code: 'ETIMEDOUT' });
    assert.equal(smtp.attempts('data'), 1);
    assert.equal(smtp.accepted.length, 0);
  });

  it('can drop the socket at any stage', async () => {
    for (const stage of ['connect', 'auth', 'mail', 'rcpt', 'dataStart', 'data'] as const) {
      const smtp = await server({ [stage]: { action: 'close' } });
      await assert.rejects(send(smtp), (err: NodeJS.ErrnoException) => /ECONNECTION|ESOCKET|ECONNRESET/.test(String(err.code)));
      assert.equal(smtp.attempts(stage), 1, stage);
      assert.equal(smtp.accepted.length, 0);
    }
  });

  it('answers a rejected token like Gmail: 334 with the JSON error, then 535 5.7.8', async () => {
    const smtp = await server({}, 'starttls', { verifyToken: () => false });
    await assert.rejects(send(smtp), { code: 'EAUTH', response: asResponse(PROVIDER_REPLIES.gmailBadCredentials) });
    assert.ok(smtp.authFailures >= 1);
    assert.deepEqual(JSON.parse(Buffer.from(GMAIL_XOAUTH2_CHALLENGE, 'base64').toString()), {
      status: '400',
      schemes: 'Bearer',
      scope: 'https://mail.google.com/',
    });
    assert.match(smtp.transcript(), new RegExp(`S: 334 ${GMAIL_XOAUTH2_CHALLENGE}`));
  });

  it('answers AUTH with an Exchange refusal', async () => {
    const smtp = await server({ auth: { reply: PROVIDER_REPLIES.exchangeSmtpAuthDisabled } });
    await assert.rejects(send(smtp), { code: 'EAUTH', response: asResponse(PROVIDER_REPLIES.exchangeSmtpAuthDisabled) });
    assert.equal(smtp.accepted.length, 0);
  });

  it('rejects single recipients and keeps the others', async () => {
    const smtp = await server({ rcpt: { attempt: 2, reply: PROVIDER_REPLIES.gmailTooManyRecipients } });
    const info = await send(smtp, { to: ['a@fabrikam.test', 'b@fabrikam.test', 'c@fabrikam.test'] });
    assert.deepEqual(info.rejected, ['b@fabrikam.test']);
    assert.deepEqual(smtp.accepted[0]?.envelope.to, ['a@fabrikam.test', 'c@fabrikam.test']);
  });

  it('takes a function for replies that depend on the attempt', async () => {
    const smtp = await server({
      mail: ({ attempt }) => (attempt % 2 === 1 ? { reply: PROVIDER_REPLIES.exchangeConcurrentConnections } : undefined),
    });
    await assert.rejects(send(smtp), { responseCode: 432 });
    await send(smtp);
    await assert.rejects(send(smtp), { responseCode: 432 });
    assert.equal(smtp.accepted.length, 1);
  });

  it('delays replies', async () => {
    const smtp = await server({ data: { delayMs: 300 } });
    const started = Date.now();
    await send(smtp);
    assert.ok(Date.now() - started >= 300);
  });
});

describe('provider replies', () => {
  it('formats multi-line replies with the enhanced code on every line', () => {
    assert.equal(
      formatReply(PROVIDER_REPLIES.gmailBadCredentials),
      '535-5.7.8 Username and Password not accepted. Learn more at\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials o8sm3958210pjs.6 - gsmtp',
    );
    assert.equal(formatReply(PROVIDER_REPLIES.exchangeGreeting).slice(0, 4), '220 ');
  });

  it('has a source, a stage and a matching class for every entry', () => {
    for (const [name, reply] of Object.entries(PROVIDER_REPLIES)) {
      assert.ok(reply.source.length > 0, name);
      assert.ok(reply.lines.length > 0, name);
      if (reply.enhanced)
        assert.equal(reply.enhanced[0], String(reply.code)[0], `${name}: class of ${reply.enhanced} vs ${reply.code}`);
    }
  });
});
