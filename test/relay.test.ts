/**
 * The relay on real components: nodemailer as the device, the relay's SMTP dialogue, Azurite as the storage
 * account. Each test looks at what reached mail-mime and mail-outbox, not at the relay's internals.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { composeMime, deviceTransport, queuedId, sendMime, SmtpDialogue } from './support/relayDevice';
import { relayStorage, startTestRelay, type TestRelay } from './support/relayHarness';

const PASSWORD = 'correct horse battery staple';
const SCANNER = {
  user: 'scanner',
  password: PASSWORD,
  account: 'demo',
  allowedFrom: ['scanner@contoso.test', 'zoë@contoso.test'],
};
const SMALL = {
  user: 'small',
  password: PASSWORD,
  account: 'demo',
  allowedFrom: ['small@contoso.test'],
  maxMessageBytes: 64 * 1024,
};
const MB = 1024 * 1024;

let azurite: Azurite;
let relay: TestRelay;
let storage: ReturnType<typeof relayStorage>;

before(async () => {
  azurite = await startAzurite();
  relay = await startTestRelay(azurite.connectionString, [SCANNER, SMALL]);
  storage = relayStorage(azurite.connectionString);
});

after(async () => {
  await relay?.close();
  await azurite?.stop();
});

const scanner = (options: { secure?: boolean } = {}) =>
  deviceTransport({
    port: options.secure ? relay.tlsPort! : relay.port,
    secure: options.secure ?? false,
    user: 'scanner',
    pass: PASSWORD,
  });

/** The queue message and the stored MIME of a 250 reply. */
async function stored(response: string) {
  const id = queuedId(response);
  const message = await storage.message(id);
  assert.ok(message, `queue message ${id} is on mail-outbox`);
  const blob = await storage.blob(message.mime.blob);
  return { id, message, blob };
}

describe('relay: what a device sends arrives unchanged', () => {
  it('stores the MIME byte for byte in mail-mime and enqueues a version 1 message that points at it', async () => {
    const raw = await composeMime({
      from: 'Scanner 2nd floor <scanner@contoso.test>',
      to: 'alice@fabrikam.test',
      cc: 'bob@fabrikam.test',
      subject: 'Scan 0042',
      text: 'Scanned document attached.\n.\n..a line with dots\n',
      attachments: [{ filename: 'scan.pdf', content: randomBytes(50_000) }],
    });
    const transport = await scanner();
    const info = await sendMime(transport, raw, {
      from: 'scanner@contoso.test',
      to: ['alice@fabrikam.test', 'bob@fabrikam.test'],
    });
    const { id, message, blob } = await stored(info.response);

    assert.deepEqual(message, {
      version: 1,
      id,
      account: 'demo',
      device: 'scanner',
      mime: {
        blob: message.mime.blob,
        envelope: { from: 'scanner@contoso.test', to: ['alice@fabrikam.test', 'bob@fabrikam.test'] },
      },
    });
    const today = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
    assert.equal(message.mime.blob, `mail-mime/${today}/${id}.eml`);
    assert.equal(blob.contentType, 'message/rfc822');
    assert.ok(blob.body.equals(raw), 'the blob holds exactly the bytes nodemailer sent');
  });

  it('works the same over implicit TLS (port 465 style)', async () => {
    const raw = await composeMime({ from: 'scanner@contoso.test', to: 'alice@fabrikam.test', subject: 'TLS', text: 'hi' });
    const info = await sendMime(await scanner({ secure: true }), raw, {
      from: 'scanner@contoso.test',
      to: ['alice@fabrikam.test'],
    });
    const { blob } = await stored(info.response);
    assert.ok(blob.body.equals(raw));
  });

  it('cuts the Bcc field out of the stored header, leaves every other byte, and keeps the blind recipient in the envelope', async () => {
    const raw = await composeMime({
      from: 'scanner@contoso.test',
      to: 'alice@fabrikam.test',
      bcc: ['hidden@fabrikam.test', 'also-hidden@fabrikam.test'],
      subject: 'With a blind copy',
      text: 'Bcc: this line is in the body and stays\n',
    });
    const bccField = /^Bcc: [^\r]*\r\n(?:[ \t][^\r]*\r\n)*/m.exec(raw.toString('latin1'));
    assert.ok(bccField, 'nodemailer sent a Bcc field');
    const expected = Buffer.concat([raw.subarray(0, bccField.index), raw.subarray(bccField.index + bccField[0].length)]);
    const to = ['alice@fabrikam.test', 'hidden@fabrikam.test', 'also-hidden@fabrikam.test'];
    const info = await sendMime(await scanner(), raw, { from: 'scanner@contoso.test', to });
    const { message, blob } = await stored(info.response);
    assert.ok(blob.body.equals(expected), 'the stored MIME is the sent MIME without the Bcc field');
    assert.doesNotMatch(blob.body.toString('latin1').split('\r\n\r\n')[0]!, /^bcc:/im);
    assert.deepEqual(message.mime.envelope.to, to);
  });

  it('keeps UTF-8 headers and an internationalized address intact (SMTPUTF8)', async () => {
    const header = [
      'From: =?UTF-8?Q?Zo=C3=AB?= <zoë@contoso.test>',
      'To: José <josé@exämple.test>',
      'Subject: Überweisung für Straße – 請求書',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
    ].join('\r\n');
    const raw = Buffer.from(`${header}\r\n\r\nGrüße aus Köln, 東京 too.\r\n`, 'utf8');
    const info = await sendMime(await scanner(), raw, { from: 'zoë@contoso.test', to: ['josé@exämple.test'] });
    const { message, blob } = await stored(info.response);
    assert.ok(blob.body.equals(raw));
    assert.deepEqual(message.mime.envelope, { from: 'zoë@contoso.test', to: ['josé@exämple.test'] });
  });

  it('takes a 20 MB attachment (about 27 MB encoded, stored in blocks) intact', async () => {
    const raw = await composeMime({
      from: 'scanner@contoso.test',
      to: 'alice@fabrikam.test',
      subject: 'Big scan',
      text: 'See attachment.',
      attachments: [{ filename: 'big.pdf', content: randomBytes(20 * MB) }],
    });
    assert.ok(raw.length > 26 * MB);
    const info = await sendMime(await scanner(), raw, { from: 'scanner@contoso.test', to: ['alice@fabrikam.test'] });
    const { message, blob } = await stored(info.response);
    assert.equal(blob.body.length, raw.length);
    assert.ok(blob.body.equals(raw));
    const name = message.mime.blob.slice('mail-mime/'.length);
    const { committedBlocks = [] } = await storage.container.getBlockBlobClient(name).getBlockList('committed');
    assert.ok(committedBlocks.length >= 6, `staged in 4 MiB blocks while DATA arrived (${committedBlocks.length} blocks)`);
  });
});

describe('relay: refusals come in the SMTP dialogue, with a reason a person can act on', () => {
  it('offers AUTH only after STARTTLS, refuses it before, and refuses mail without a login (530)', async () => {
    const smtp = await SmtpDialogue.connect({ port: relay.port });
    try {
      assert.match(smtp.greeting.text, /^220 localhost ESMTP oauth-outbox relay/);
      const ehlo = await smtp.command('EHLO device.test');
      assert.match(ehlo.text, /STARTTLS/);
      assert.doesNotMatch(ehlo.text, /AUTH/, 'no AUTH offered in clear text');
      const auth = await smtp.login('scanner', PASSWORD);
      assert.equal(auth.code, 500, 'AUTH before TLS is not a command');
      const mail = await smtp.command('MAIL FROM:<scanner@contoso.test>');
      assert.equal(mail.code, 530);
      assert.match(mail.text, /^530 5\.7\.0 Authentication required: turn on STARTTLS \(port 587\) or SSL\/TLS \(port 465\)/);
      await smtp.command('RSET');
      await smtp.startTls();
      const secured = await smtp.command('EHLO device.test');
      assert.match(secured.text, /AUTH PLAIN LOGIN/);
      assert.equal((await smtp.login('scanner', PASSWORD)).code, 235);
    } finally {
      smtp.end();
    }
  });

  it('refuses a MAIL FROM the device may not use (550), naming the addresses it may use', async () => {
    const transport = await scanner();
    const raw = await composeMime({ from: 'ceo@contoso.test', to: 'alice@fabrikam.test', subject: 'x', text: 'x' });
    await assert.rejects(
      sendMime(transport, raw, { from: 'ceo@contoso.test', to: ['alice@fabrikam.test'] }),
      (error: Error & { response?: string; responseCode?: number }) => {
        assert.equal(error.responseCode, 550);
        assert.match(
          error.response ?? '',
          /^550 5\.7\.1 Sender address \(MAIL FROM\) <ceo@contoso\.test> is not allowed for this device; it may send as scanner@contoso\.test, zoë@contoso\.test$/,
        );
        return true;
      },
    );
  });

  for (const { name, header, reply } of [
    {
      name: 'a From header the device may not use',
      header: 'From: CEO <ceo@contoso.test>',
      reply: /^550 5\.7\.1 From <ceo@contoso\.test> is not allowed for this device/,
    },
    {
      name: 'a Sender header the device may not use',
      header: 'From: scanner@contoso.test\r\nSender: ceo@contoso.test',
      reply: /^550 5\.7\.1 Sender <ceo@contoso\.test> is not allowed for this device/,
    },
    { name: 'a message without a From header', header: 'X-Nothing: here', reply: /^550 5\.6\.0 The message has no From address/ },
  ]) {
    it(`refuses ${name} at the end of DATA (550), and stores nothing`, async () => {
      const before = await storage.blobNames();
      const raw = Buffer.from(`${header}\r\nTo: alice@fabrikam.test\r\nSubject: x\r\n\r\nbody\r\n`);
      await assert.rejects(
        sendMime(await scanner(), raw, { from: 'scanner@contoso.test', to: ['alice@fabrikam.test'] }),
        (error: Error & { response?: string }) => {
          assert.match(error.response ?? '', reply);
          return true;
        },
      );
      assert.deepEqual(await storage.blobNames(), before);
    });
  }

  it('refuses a declared SIZE over the device limit at MAIL FROM (552)', async () => {
    const smtp = await SmtpDialogue.connect({ port: relay.port });
    try {
      assert.equal((await smtp.openAndLogin('small', PASSWORD)).code, 235);
      const mail = await smtp.command(`MAIL FROM:<small@contoso.test> SIZE=${200 * 1024}`);
      assert.equal(mail.code, 552);
      assert.match(mail.text, /^552 5\.3\.4 Message too large: 204800 bytes announced, this device may send at most 65536 bytes/);
    } finally {
      smtp.end();
    }
  });

  it('refuses DATA over the device limit at the final dot (552) without a declared SIZE, and stores nothing', async () => {
    const before = await storage.blobNames();
    const raw = await composeMime({
      from: 'small@contoso.test',
      to: 'alice@fabrikam.test',
      subject: 'too big',
      attachments: [{ filename: 'a.bin', content: randomBytes(100 * 1024) }],
    });
    const smtp = await SmtpDialogue.connect({ port: relay.port });
    try {
      await smtp.openAndLogin('small', PASSWORD);
      assert.equal((await smtp.command('MAIL FROM:<small@contoso.test>')).code, 250);
      assert.equal((await smtp.command('RCPT TO:<alice@fabrikam.test>')).code, 250);
      assert.equal((await smtp.command('DATA')).code, 354);
      await smtp.writeBody(raw);
      const reply = await smtp.finishData();
      assert.equal(reply.code, 552);
      assert.match(
        reply.text,
        new RegExp(`^552 5\\.3\\.4 Message too large: ${raw.length} bytes, this device may send at most 65536 bytes`),
      );
      // The session goes on: the next message of the same connection is taken.
      assert.equal((await smtp.command('RSET')).code, 250);
    } finally {
      smtp.end();
    }
    assert.deepEqual(await storage.blobNames(), before);
  });

  it('answers the 501st recipient with 452 and queues the message for the first 500', async () => {
    const to = Array.from({ length: 501 }, (_, i) => `r${i}@fabrikam.test`);
    const raw = await composeMime({ from: 'scanner@contoso.test', to: 'list@fabrikam.test', subject: 'many', text: 'x' });
    const info = await sendMime(await scanner(), raw, { from: 'scanner@contoso.test', to });
    assert.deepEqual(info.rejected, ['r500@fabrikam.test']);
    assert.match(info.rejectedErrors?.[0]?.response ?? '', /^452 4\.5\.3 Too many recipients: at most 500 per message/);
    const { message } = await stored(info.response);
    assert.deepEqual(message.mime.envelope.to, to.slice(0, 500));
  });
});

describe('relay: operations', () => {
  it('answers GET /health with 200 while it accepts mail', async () => {
    const response = await fetch(relay.healthUrl!);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok' });
    assert.equal((await fetch(relay.healthUrl!.replace('/health', '/other'))).status, 404);
  });

  it('logs one JSON line per session and per message, never the password or the body', async () => {
    const marker = `body-marker-${randomBytes(6).toString('hex')}`;
    const raw = await composeMime({
      from: 'scanner@contoso.test',
      to: 'alice@fabrikam.test',
      subject: 'log check',
      text: marker,
    });
    const transport = await scanner();
    const info = await sendMime(transport, raw, { from: 'scanner@contoso.test', to: ['alice@fabrikam.test'] });
    transport.close();
    const id = queuedId(info.response);
    const deadline = Date.now() + 5_000;
    let sessionLine: Record<string, unknown> | undefined;
    while (Date.now() < deadline) {
      const messageLine = relay.logs
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.event === 'relay.message' && l.id === id);
      sessionLine = relay.logs
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.event === 'relay.session' && l.session === messageLine?.session);
      if (sessionLine) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const messageLine = relay.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.event === 'relay.message' && l.id === id);
    assert.deepEqual(
      { ...messageLine, ms: 0, storeMs: 0, session: '' },
      {
        event: 'relay.message',
        session: '',
        device: 'scanner',
        account: 'demo',
        envelopeFrom: 'scanner@contoso.test',
        recipients: 1,
        bytes: raw.length,
        outcome: 'queued',
        ms: 0,
        id,
        blob: (await storage.message(id))!.mime.blob,
        storeMs: 0,
        reply: `250 2.0.0 queued as ${id}`,
      },
    );
    assert.ok(sessionLine, 'a relay.session line once the connection closed');
    assert.equal(sessionLine.device, 'scanner');
    assert.equal(sessionLine.tls, 'TLSv1.3');
    assert.deepEqual(sessionLine.messages, { queued: 1, refused: 0, deferred: 0, lost: 0 });
    const all = relay.logs.join('\n');
    assert.ok(!all.includes(PASSWORD), 'no password in the logs');
    assert.ok(!all.includes(Buffer.from(`\0scanner\0${PASSWORD}`).toString('base64')), 'no AUTH PLAIN string in the logs');
    assert.ok(!all.includes(marker), 'no message body in the logs');
  });
});
