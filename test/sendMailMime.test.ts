/**
 * A finished MIME message (`mime: { blob, envelope }`, what the SMTP relay produces) takes the send path of a
 * JSON message: the same sender rule and limits, the same ledger and results, and it goes out byte for byte,
 * to the envelope recipients, with its Bcc header cut.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import MailComposer from 'nodemailer/lib/mail-composer';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { type SmtpSink } from '../local/peers/smtpSink';
import { checkSubmittedMessage } from '../shared/admin/submittedMessage';
import { enqueueMail } from '../shared/message/enqueueMail';
import { CONTAINERS } from '../shared/names';
import { startSendHarness, startTokenSink, testAccount, type SendHarness } from './support/sendHarness';

let azurite: Azurite;
let sink: SmtpSink;
let harness: SendHarness;

before(async () => {
  [azurite, sink] = await Promise.all([startAzurite(), startTokenSink()]);
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: 'main', port: sink.port })],
  });
});
after(async () => {
  await harness?.stop();
  await sink?.stop();
  await azurite?.stop();
});

const MB = 1024 * 1024;
const SUBJECT = 'Rechnung 2026-000123 – Grüße aus Köln, ünïcode and a subject long enough to be folded over lines';
const HIDDEN = Array.from({ length: 6 }, (_, i) => `hidden-recipient-${i}@example.com`);

async function buildMime(from: string, extra: Record<string, unknown> = {}): Promise<Buffer> {
  const node = new MailComposer({
    from,
    to: 'A <a@example.com>',
    bcc: HIDDEN,
    subject: SUBJECT,
    // CRLF line ends, as RFC 5322 wants them (SMTP itself would turn a bare LF into CRLF).
    text: 'Hello,\r\n\r\nthe invoice is attached.\r\n',
    messageId: '<mime-test-1@example.com>',
    attachments: [{ filename: 'scan.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF-1.4 page\n'.repeat(200)) }],
    ...extra,
  }).compile();
  // A producer's MIME may well hold a Bcc header; MailComposer leaves it out unless told to keep it.
  (node as unknown as { keepBcc: boolean }).keepBcc = true;
  return node.build();
}

async function upload(name: string, bytes: Buffer): Promise<string> {
  await harness.runtime.storage.container(CONTAINERS.mime).uploadBlockBlob(name, bytes, bytes.length);
  return `${CONTAINERS.mime}/${name}`;
}

function split(raw: Buffer): { header: string; body: Buffer } {
  const end = raw.indexOf('\r\n\r\n');
  return { header: raw.subarray(0, end + 2).toString('latin1'), body: raw.subarray(end + 4) };
}

describe('a MIME message', () => {
  test('goes out byte for byte to the envelope recipients, without its Bcc header, and is recorded like any other', async () => {
    const original = await buildMime('Main <main@example.com>');
    const { header: originalHeader, body: originalBody } = split(original);
    const bccLines = /^Bcc:.*\r\n(?:[ \t].*\r\n)+/m.exec(originalHeader);
    assert.ok(bccLines, 'the Bcc header of the test message is folded over several lines');

    const blob = await upload('2026/12/one.eml', original);
    const { id } = await enqueueMail(harness.services.outbox, {
      id: 'mime-1',
      account: 'main',
      mime: { blob, envelope: { from: 'main@example.com', to: ['a@example.com', ...HIDDEN] } },
    });
    await harness.drain();

    const [mail] = await sink.waitForMessages(1, 5_000);
    assert.deepEqual([...mail!.envelope.to].sort(), ['a@example.com', ...HIDDEN].sort());
    assert.equal(mail!.envelope.from, 'main@example.com');
    const received = split(mail!.raw);
    assert.ok(received.body.equals(originalBody), 'the body is byte-identical');
    assert.doesNotMatch(received.header, /^Bcc:/im);
    assert.ok(
      received.header.endsWith(originalHeader.replace(bccLines[0], '')),
      'the header block is the original without the Bcc lines (trace headers may come first)',
    );
    assert.match(received.header, /^Message-ID: <mime-test-1@example\.com>\r\n/m);

    const row = await harness.ledger(id);
    assert.equal(row?.status, 'sent');
    assert.equal(row?.subject, SUBJECT);
    assert.equal(row?.messageId, '<mime-test-1@example.com>');
    assert.equal(row?.recipients, 1 + HIDDEN.length);
    const results = await harness.results();
    assert.deepEqual(
      results.map((r) => [r.id, r.status, r.messageId]),
      [[id, 'sent', '<mime-test-1@example.com>']],
    );
  });

  test('is failed with a reason when its sender, blob, size or fields are wrong, and none is sent', async () => {
    const envelope = { from: 'main@example.com', to: ['a@example.com'] };
    const sent = sink.received.length;
    const huge = Buffer.alloc(25 * MB + 1, 'a');
    const cases: { id: string; message: Record<string, unknown>; code: string; reason: RegExp }[] = [
      {
        id: 'mime-from',
        message: { mime: { blob: await upload('bad/from.eml', await buildMime('ceo@example.com')), envelope } },
        code: 'sender_not_allowed',
        // The wording of a JSON message's `from` (see sendMailInvalid.test.ts).
        reason: /^From ceo@example\.com is not allowed for account "main"; allowed: main@example\.com\.$/,
      },
      {
        id: 'mime-sender',
        message: {
          mime: {
            blob: await upload('bad/sender.eml', await buildMime('main@example.com', { sender: 'ceo@example.com' })),
            envelope,
          },
        },
        code: 'sender_not_allowed',
        reason: /^Sender ceo@example\.com is not allowed for account "main"/,
      },
      {
        id: 'mime-other-container',
        message: { mime: { blob: 'mail-attachments/x.eml', envelope } },
        code: 'invalid_message',
        reason: /mime\.blob: must be "mail-mime\/<path>"/,
      },
      {
        id: 'mime-dotdot',
        message: { mime: { blob: 'mail-mime/../x', envelope } },
        code: 'invalid_message',
        reason: /mime\.blob: must not contain "\.\."/,
      },
      {
        id: 'mime-url',
        message: { mime: { blob: 'https://evil.example.com/mail-mime/x.eml', envelope } },
        code: 'invalid_message',
        reason: /mime\.blob: must be "mail-mime\/<path>"/,
      },
      {
        id: 'mime-huge',
        message: { mime: { blob: await upload('bad/huge.eml', huge), envelope } },
        code: 'too_large',
        reason: /"mail-mime\/bad\/huge\.eml" is 25\.0 MB; account "main" accepts at most 25\.0 MB/,
      },
      {
        id: 'mime-gone',
        message: { mime: { blob: 'mail-mime/bad/gone.eml', envelope } },
        code: 'attachment_missing',
        reason: /MIME blob "mail-mime\/bad\/gone\.eml" does not exist/,
      },
      {
        id: 'mime-and-json',
        message: { subject: 'x', text: 'y', mime: { blob: 'mail-mime/bad/from.eml', envelope } },
        code: 'invalid_message',
        reason: /mime: is exclusive with subject, text/,
      },
      {
        id: 'mime-too-many',
        message: {
          mime: {
            blob: 'mail-mime/bad/from.eml',
            envelope: { ...envelope, to: Array.from({ length: 501 }, (_, i) => `r${i}@example.com`) },
          },
        },
        code: 'invalid_message',
        reason: /501 recipients; the provider accepts at most 500 per message/,
      },
    ];
    for (const c of cases) await harness.enqueue({ id: c.id, account: 'main', ...c.message });
    await harness.drain();

    const results = new Map((await harness.results()).map((r) => [r.id, r]));
    for (const c of cases) {
      const row = await harness.ledger(c.id);
      assert.equal(row?.status, 'failed', c.id);
      assert.equal(row?.code, c.code, c.id);
      assert.match(row?.reason ?? '', c.reason, c.id);
      assert.equal(results.get(c.id)?.code, c.code, c.id);
    }
    assert.equal(sink.received.length, sent, 'nothing was sent');
  });
});

test('POST /api/messages takes a MIME message, refuses it mixed with fields, and checks its envelope sender', () => {
  const envelope = { from: 'main@example.com', to: ['a@example.com'] };
  const accepted = checkSubmittedMessage(JSON.stringify({ mime: { blob: 'mail-mime/a.eml', envelope } }), harness.accounts);
  assert.equal(accepted.ok, true);
  const mixed = checkSubmittedMessage(
    JSON.stringify({ to: ['a@example.com'], mime: { blob: 'mail-mime/a.eml', envelope } }),
    harness.accounts,
  );
  assert.deepEqual(mixed.ok ? undefined : [mixed.error, /^mime: is exclusive with to:/.test(mixed.reasons)], [
    'invalid_message',
    true,
  ]);
  const sender = checkSubmittedMessage(
    JSON.stringify({ mime: { blob: 'mail-mime/a.eml', envelope: { ...envelope, from: 'ceo@example.com' } } }),
    harness.accounts,
  );
  assert.deepEqual(sender.ok ? undefined : [sender.error, sender.reasons], [
    'sender_not_allowed',
    'mime.envelope.from: ceo@example.com is not allowed for account "main"; allowed: main@example.com.',
  ]);
});
