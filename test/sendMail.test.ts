import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { parseReceived, type SmtpSink } from '../local/peers/smtpSink';
import { composeMail } from '../shared/delivery/composeMail';
import { CONTAINERS } from '../shared/names';
import { DeliveryLedger } from '../shared/storage/deliveryLedger';
import { startSendHarness, startTokenSink, testAccount, type SendHarness } from './support/sendHarness';

let azurite: Azurite;

before(async () => {
  azurite = await startAzurite();
});
after(async () => {
  await azurite?.stop();
});

async function sink(security: 'starttls' | 'tls'): Promise<SmtpSink> {
  return startTokenSink({ security });
}

for (const security of ['starttls', 'tls'] as const) {
  describe(`happy path over ${security}`, () => {
    let server: SmtpSink;
    let harness: SendHarness;
    before(async () => {
      server = await sink(security);
      harness = await startSendHarness({
        connectionString: azurite.connectionString,
        accounts: [
          testAccount({
            id: 'main',
            port: server.port,
            smtp: { security },
            defaults: { headers: { 'X-Mailer-Tenant': 'contoso' } },
          }),
        ],
      });
    });
    after(async () => {
      await harness.stop();
      await server.stop();
    });

    test('sends cc, bcc, reply-to, headers and inline and blob attachments, and records the outcome', async () => {
      const pdf = Buffer.from('%PDF-1.4 scanned page\n');
      const big = Buffer.alloc(300_000, 7);
      await harness.runtime.storage.container(CONTAINERS.attachments).uploadBlockBlob('2026/11/big.bin', big, big.length);
      await harness.enqueue({
        id: `invoice-${security}`,
        to: ['a@example.com', 'Bee <b@example.com>'],
        cc: [{ name: 'Cee', address: 'c@example.com' }],
        bcc: ['hidden@example.com'],
        replyTo: 'help@example.com',
        subject: 'Invoice 2026-000123 – ünïcode',
        text: 'Hello',
        html: '<p>Hello</p>',
        headers: { 'X-Ticket': '123' },
        attachments: [
          { filename: 'scan.pdf', contentType: 'application/pdf', contentBase64: pdf.toString('base64') },
          { filename: 'big.bin', blob: 'mail-attachments/2026/11/big.bin' },
        ],
      });
      await harness.drain();
      const [mail] = await server.waitForMessages(1, 5_000);
      assert.equal(mail!.authUser, 'main@example.com');
      assert.deepEqual([...mail!.envelope.to].sort(), ['a@example.com', 'b@example.com', 'c@example.com', 'hidden@example.com']);
      const parsed = await parseReceived(mail!);
      assert.equal(parsed.from?.value[0]?.address, 'main@example.com');
      assert.deepEqual(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map((v) => v.address) : [], [
        'a@example.com',
        'b@example.com',
      ]);
      assert.equal(parsed.cc && !Array.isArray(parsed.cc) ? parsed.cc.value[0]?.name : '', 'Cee');
      assert.equal(parsed.bcc, undefined, 'Bcc must not appear in the headers');
      assert.equal(parsed.replyTo?.value[0]?.address, 'help@example.com');
      assert.equal(parsed.subject, 'Invoice 2026-000123 – ünïcode');
      assert.equal(parsed.text?.trim(), 'Hello');
      assert.equal(parsed.headers.get('x-ticket'), '123');
      assert.equal(parsed.headers.get('x-mailer-tenant'), 'contoso');
      assert.equal(parsed.attachments.length, 2);
      assert.deepEqual(parsed.attachments[0]!.content, pdf);
      assert.equal(parsed.attachments[0]!.contentType, 'application/pdf');
      assert.deepEqual(parsed.attachments[1]!.content, big);

      const row = await harness.ledger(`invoice-${security}`);
      assert.equal(row?.status, 'sent');
      assert.match(row!.smtpReply!, /^250 /);
      assert.equal(row!.attempts, 1);
      assert.equal(parsed.messageId, row!.messageId);
      const results = await harness.results();
      assert.deepEqual(
        results.map((r) => [r.id, r.status]),
        [[`invoice-${security}`, 'sent']],
      );
      assert.match(results[0]!.smtpReply!, /^250 /);
    });
  });
}

describe('idempotency', () => {
  let server: SmtpSink;
  before(async () => {
    server = await sink('starttls');
  });
  after(async () => server.stop());

  test('the same message id enqueued twice gives one email', async () => {
    const harness = await startSendHarness({
      connectionString: azurite.connectionString,
      accounts: [testAccount({ id: 'main', port: server.port })],
    });
    try {
      const before = server.received.length;
      const message = { id: 'twice-1', to: ['a@example.com'], subject: 'once', text: 'x' };
      await harness.enqueue(message);
      await harness.enqueue(message);
      await harness.drain();
      assert.equal(server.received.length - before, 1);
      assert.equal((await harness.ledger('twice-1'))?.status, 'sent');
      assert.equal((await harness.results()).filter((r) => r.id === 'twice-1').length, 1);
    } finally {
      await harness.stop();
    }
  });

  test("a failure after the server's 250 and before the ledger update, retried, still gives one email", async () => {
    let failNextSentWrite = true;
    class FlakyLedger extends DeliveryLedger {
      override async write(record: Parameters<DeliveryLedger['write']>[0]): Promise<string | undefined> {
        if (record.status === 'sent' && failNextSentWrite) {
          failNextSentWrite = false;
          throw new Error('storage went away after the 250');
        }
        return super.write(record);
      }
    }
    const harness = await startSendHarness({
      connectionString: azurite.connectionString,
      accounts: [testAccount({ id: 'main', port: server.port })],
      ledger: (table) => new FlakyLedger(table),
    });
    try {
      const before = server.received.length;
      await harness.enqueue({ id: 'crash-after-250', to: ['a@example.com'], subject: 'once', text: 'x' });
      await harness.drain();
      assert.equal(failNextSentWrite, false, 'the fault was injected');
      assert.equal(server.received.length - before, 1);
      const row = await harness.ledger('crash-after-250');
      assert.equal(row?.status, 'sent');
      assert.match(row!.smtpReply!, /^250 /);
    } finally {
      await harness.stop();
    }
  });

  test('a retry on an instance that lost the outcome does not resend and says so', async () => {
    class LosingLedger extends DeliveryLedger {
      override async write(record: Parameters<DeliveryLedger['write']>[0]): Promise<string | undefined> {
        if (record.status === 'sent') throw new Error('the instance died after the 250');
        return super.write(record);
      }
    }
    const first = await startSendHarness({
      connectionString: azurite.connectionString,
      accounts: [testAccount({ id: 'main', port: server.port })],
      ledger: (table) => new LosingLedger(table),
    });
    const before = server.received.length;
    await first.enqueue({ id: 'crash-lost', to: ['a@example.com'], subject: 'once', text: 'x' });
    const outbox = first.runtime.storage.queue('mail-outbox');
    const { pollOnce } = await import('../local/host/queueTrigger');
    const { TRIGGER } = await import('./support/sendHarness');
    const { sendMail } = await import('../functions/sendMail');
    const { InvocationContext } = await import('./support/azureFunctions');
    await pollOnce(
      outbox,
      first.runtime.storage.queue('mail-outbox-poison'),
      (payload, meta) => sendMail(payload, new InvocationContext({ triggerMetadata: { ...meta } })),
      TRIGGER,
    );
    await first.stop();
    // A new instance (no memory of the outcome) picks the message up again.
    const second = await startSendHarness({
      connectionString: azurite.connectionString,
      accounts: [testAccount({ id: 'main', port: server.port })],
      clearQueues: false,
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      await second.drain();
      assert.equal(server.received.length - before, 1, 'sent exactly once');
      const row = await second.ledger('crash-lost');
      assert.equal(row?.status, 'failed');
      assert.equal(row?.code, 'delivery_unconfirmed');
      assert.match(row!.reason!, /may have been delivered/);
    } finally {
      await second.stop();
    }
  });
});

describe('what producers get wrong or write in other scripts', () => {
  let server: SmtpSink;
  let harness: SendHarness;
  before(async () => {
    server = await sink('starttls');
    harness = await startSendHarness({
      connectionString: azurite.connectionString,
      accounts: [testAccount({ id: 'main', port: server.port })],
    });
  });
  after(async () => {
    await harness.stop();
    await server.stop();
  });

  test('an internationalized domain goes out in punycode, a non-ASCII local part over SMTPUTF8', async () => {
    await harness.enqueue({
      id: 'idn-1',
      to: ['Jörg <user@bücher.de>', 'jürgen@bücher.de'],
      cc: [{ name: 'Ken', address: 'ken@例え.テスト' }],
      subject: 'IDN',
      text: 'x',
    });
    await harness.drain();
    const mail = (await server.waitForMessages(1, 5_000)).find((m) => m.raw.includes('Subject: IDN'));
    // The sink shows envelope domains in Unicode whichever form they came in; the headers keep what was sent.
    assert.deepEqual([...mail!.envelope.to].sort(), ['jürgen@bücher.de', 'ken@例え.テスト', 'user@bücher.de']);
    assert.match(mail!.raw.toString('utf8'), /^To: =\?UTF-8\?Q\?J=C3=B6rg\?= <user@xn--bcher-kva\.de>,/m);
    assert.match(mail!.raw.toString('utf8'), /^Cc: Ken <ken@xn--r8jz45g\.xn--zckzah>/m);
    assert.equal((await harness.ledger('idn-1'))?.status, 'sent');
    const { options } = composeMail(
      harness.accounts[0]!,
      'idn-2',
      { to: ['user@bücher.de', 'jürgen@bücher.de'], subject: 's' },
      [],
    );
    assert.deepEqual(options.envelope?.to, ['user@xn--bcher-kva.de', 'jürgen@bücher.de']);
  });

  test("an attachment's file name loses its path", async () => {
    const bytes = Buffer.from('%PDF-1.4\n');
    await harness.enqueue({
      id: 'filename-1',
      to: ['a@example.com'],
      subject: 'Paths',
      text: 'x',
      attachments: [
        { filename: '../../x.pdf', contentBase64: bytes.toString('base64') },
        { filename: 'C:\\Users\\me\\report.pdf', contentBase64: bytes.toString('base64') },
        { filename: '../', contentBase64: bytes.toString('base64') },
      ],
    });
    await harness.drain();
    const mail = server.received.find((m) => m.raw.includes('Subject: Paths'));
    const parsed = await parseReceived(mail!);
    assert.deepEqual(
      parsed.attachments.map((a) => a.filename),
      ['x.pdf', 'report.pdf', 'attachment'],
    );
  });

  test('a byte-order mark before the JSON, plain or in base64, is ignored', async () => {
    const json = (id: string) => `\uFEFF${JSON.stringify({ id, to: ['a@example.com'], subject: `BOM ${id}`, text: 'x' })}`;
    await harness.enqueueRaw(json('bom-plain'));
    await harness.enqueueRaw(Buffer.from(json('bom-base64'), 'utf8').toString('base64'));
    await harness.drain();
    assert.equal((await harness.ledger('bom-plain'))?.status, 'sent');
    assert.equal((await harness.ledger('bom-base64'))?.status, 'sent');
  });
});
