import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { parseReceived, startSmtpSink, type SmtpSink, type SmtpSinkSecurity } from '../local/peers/smtpSink';
import { createTestCa, issueServerCert, type ServerCert, type TestCa } from './support/certs';

const USER = 'sender@contoso.test';
const GOOD_TOKEN = 'good-access-token';
const verifyToken = (user: string, token: string) => user === USER && token === GOOD_TOKEN;

let ca: TestCa;
let serverCert: ServerCert;

before(async () => {
  ca = await createTestCa();
  serverCert = await issueServerCert(ca);
});

function transport(sink: SmtpSink, security: SmtpSinkSecurity, accessToken: string) {
  return nodemailer.createTransport({
    host: sink.host,
    port: sink.port,
    secure: security === 'tls',
    requireTLS: security === 'starttls',
    tls: { ca: ca.caPem },
    auth: { type: 'OAuth2', user: USER, accessToken },
  });
}

for (const security of ['starttls', 'tls'] as const) {
  describe(`smtp sink over ${security}`, () => {
    let sink: SmtpSink;
    let mailDir: string;

    before(async () => {
      mailDir = await mkdtemp(path.join(os.tmpdir(), 'smtp-sink-'));
      sink = await startSmtpSink({ security, key: serverCert.key, cert: serverCert.cert, verifyToken, mailDir });
    });
    after(async () => {
      await sink.stop();
      await rm(mailDir, { recursive: true, force: true });
    });

    it('accepts a valid token and keeps the message', async () => {
      const info = await transport(sink, security, GOOD_TOKEN).sendMail({
        from: USER,
        to: ['one@fabrikam.test', 'two@fabrikam.test'],
        subject: `Hello over ${security}`,
        text: 'Body line\n.leading dot survives\n',
      });
      const [mail] = await sink.waitForMessages(1, 5_000);
      assert.ok(mail);
      assert.match(info.response, new RegExp(`^250 2\\.0\\.0 OK ${mail.id}\\b`));
      assert.equal(mail.authUser, USER);
      assert.deepEqual(mail.envelope, { from: USER, to: ['one@fabrikam.test', 'two@fabrikam.test'] });

      const parsed = await parseReceived(mail);
      assert.equal(parsed.subject, `Hello over ${security}`);
      assert.equal(parsed.text, 'Body line\n.leading dot survives\n');

      const files = await readdir(mailDir);
      assert.deepEqual(files.length, 1);
      assert.match(files[0] ?? '', new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d-]+Z-${mail.id}\\.eml$`));
      assert.deepEqual(await readFile(path.join(mailDir, files[0] ?? '')), mail.raw);
    });

    it('rejects a bad token like Gmail: 334 challenge, then 535 5.7.8', async () => {
      const before = sink.authFailures;
      await assert.rejects(
        transport(sink, security, 'expired-token').sendMail({ from: USER, to: 'x@fabrikam.test', text: 'x' }),
        {
          code: 'EAUTH',
          response: '535 5.7.8 Username and Password not accepted',
        },
      );
      // nodemailer answers the challenge, then retries once with the same token when it cannot refresh it.
      assert.ok(sink.authFailures > before);

      const session = await openSession(sink, security);
      try {
        const token = Buffer.from(`user=${USER}\x01auth=Bearer expired-token\x01\x01`).toString('base64');
        const challenge = await session.command(`AUTH XOAUTH2 ${token}`);
        assert.match(challenge, /^334 (\S+)$/);
        assert.deepEqual(JSON.parse(Buffer.from(challenge.slice(4), 'base64').toString()), {
          status: '400',
          schemes: 'Bearer',
          scope: 'https://mail.google.com/',
        });
        assert.equal(await session.command(''), '535 5.7.8 Username and Password not accepted');
      } finally {
        session.close();
      }
      assert.equal(sink.received.length, 1, 'nothing was accepted with a bad token');
    });
  });
}

describe('smtp sink over starttls, before TLS', () => {
  let sink: SmtpSink;
  before(async () => {
    sink = await startSmtpSink({ security: 'starttls', key: serverCert.key, cert: serverCert.cert, verifyToken });
  });
  after(() => sink.stop());

  it('refuses AUTH before STARTTLS', async () => {
    const session = await openSession(sink, 'plain');
    try {
      assert.match(await session.command('EHLO client.test'), /^250-STARTTLS$/m);
      const token = Buffer.from(`user=${USER}\x01auth=Bearer ${GOOD_TOKEN}\x01\x01`).toString('base64');
      assert.match(await session.command(`AUTH XOAUTH2 ${token}`), /^5\d\d .*STARTTLS/);
      assert.match(await session.command('MAIL FROM:<sender@contoso.test>'), /^530 /);
    } finally {
      session.close();
    }
    assert.equal(sink.received.length, 0);
  });

  it('refuses PLAIN and LOGIN even after STARTTLS', async () => {
    const session = await openSession(sink, 'starttls');
    try {
      assert.doesNotMatch(await session.command('EHLO client.test'), /AUTH.*(PLAIN|LOGIN)/);
      assert.match(await session.command(`AUTH PLAIN ${Buffer.from(`\0${USER}\0secret`).toString('base64')}`), /^504 /);
      assert.match(await session.command('AUTH LOGIN'), /^504 /);
    } finally {
      session.close();
    }
  });

  it('counts concurrent connections', async () => {
    const sessions = await Promise.all([openSession(sink, 'plain'), openSession(sink, 'plain'), openSession(sink, 'plain')]);
    for (const session of sessions) session.close();
    assert.ok(sink.connectionsPeak >= 3, `peak ${sink.connectionsPeak}`);
  });
});

interface Session {
  /** Sends a line and resolves with the complete (possibly multi-line) reply. */
  command(line: string): Promise<string>;
  close(): void;
}

/**
 * A minimal SMTP client for checking exact replies: `plain` stays in cleartext, `starttls` upgrades first,
 * `tls` connects with implicit TLS. Resolves after the greeting (and EHLO, for the TLS variants).
 */
async function openSession(sink: SmtpSink, mode: SmtpSinkSecurity): Promise<Session> {
  let socket: net.Socket =
    mode === 'tls'
      ? tls.connect({ host: sink.host, port: sink.port, ca: ca.caPem, servername: 'localhost' })
      : net.connect({ host: sink.host, port: sink.port });
  let buffer = '';
  let waiting: ((reply: string) => void) | undefined;
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    const match = buffer.match(/(?:^|\r\n)\d{3} [^\r\n]*\r\n/);
    if (!match || !waiting) return;
    const end = (match.index ?? 0) + match[0].length;
    const reply = buffer.slice(0, end).replace(/\r\n$/, '').replace(/\r\n/g, '\n');
    buffer = buffer.slice(end);
    const resolve = waiting;
    waiting = undefined;
    resolve(reply);
  };
  const next = () =>
    new Promise<string>((resolve) => {
      waiting = resolve;
      onData(Buffer.alloc(0));
    });
  socket.on('data', onData);
  socket.on('error', () => {});
  const command = (line: string) => {
    const reply = next();
    socket.write(`${line}\r\n`);
    return reply;
  };
  assert.match(await next(), /^220 /);
  if (mode === 'starttls') {
    await command('EHLO client.test');
    assert.match(await command('STARTTLS'), /^220 /);
    socket.off('data', onData);
    socket = tls.connect({ socket, ca: ca.caPem, servername: 'localhost' });
    socket.on('data', onData);
    await new Promise((resolve) => socket.once('secureConnect', resolve));
  }
  if (mode !== 'plain') await command('EHLO client.test');
  return { command, close: () => socket.destroy() };
}
