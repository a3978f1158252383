/**
 * The whole way a device's mail takes: nodemailer as the device → the SMTP relay → Azurite (blob mail-mime and
 * queue mail-outbox) → the sendMail function → the XOAUTH2 SMTP sink, with no OAuth token anywhere near the device.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { parseReceived, type SmtpSink } from '../local/peers/smtpSink';
import { composeMime, deviceTransport, queuedId, sendMime } from './support/relayDevice';
import { startTestRelay, type TestRelay } from './support/relayHarness';
import { startSendHarness, testAccount, type SendHarness, startTokenSink } from './support/sendHarness';

let azurite: Azurite;
let sink: SmtpSink;
let relay: TestRelay;
let harness: SendHarness;

before(async () => {
  azurite = await startAzurite();
  sink = await startTokenSink();
  harness = await startSendHarness({
    connectionString: azurite.connectionString,
    accounts: [testAccount({ id: 'scans', port: sink.port, from: 'scanner@contoso.test' })],
  });
  relay = await startTestRelay(azurite.connectionString, [
    { user: 'mfp-2nd-floor', password: 'printer-pass-1', account: 'scans', allowedFrom: ['scanner@contoso.test'] },
  ]);
});
after(async () => {
  await relay?.close();
  await harness?.stop();
  await sink?.stop();
  await azurite?.stop();
});

test('a device’s mail arrives byte for byte, Bcc recipients get it and see no Bcc header', async () => {
  const raw = await composeMime({
    from: 'Scanner <scanner@contoso.test>',
    to: 'alice@example.com',
    bcc: 'archive@example.com',
    subject: 'Scan – Büro 2. OG',
    text: 'Your scan is attached.',
    messageId: '<scan-0001@mfp.contoso.test>',
    attachments: [{ filename: 'scan.pdf', content: Buffer.from('%PDF-1.4 scanned\n'.repeat(2000)) }],
  });
  const device = await deviceTransport({ port: relay.port, user: 'mfp-2nd-floor', pass: 'printer-pass-1' });
  try {
    const info = await sendMime(device, raw, { from: 'scanner@contoso.test', to: ['alice@example.com', 'archive@example.com'] });
    assert.match(info.response, /^250 2\.0\.0 queued as /);
    const id = queuedId(info.response);

    await harness.drain(15_000);
    assert.equal((await harness.ledger(id))?.status, 'sent');
    const [mail] = await sink.waitForMessages(1, 10_000);
    assert.deepEqual([...mail!.envelope.to].sort(), ['alice@example.com', 'archive@example.com']);
    const sent = mail!.raw.toString('latin1');
    const body = raw.toString('latin1');
    // The sink puts its trace header(s) in front; the body after the header block is the device's, unchanged.
    assert.equal(sent.slice(sent.indexOf('\r\n\r\n')), body.slice(body.indexOf('\r\n\r\n')));
    assert.doesNotMatch(sent.slice(0, sent.indexOf('\r\n\r\n')), /^bcc:/im, 'no Bcc header reaches anyone');
    const parsed = await parseReceived(mail!);
    assert.equal(parsed.messageId, '<scan-0001@mfp.contoso.test>');
    assert.equal(parsed.subject, 'Scan – Büro 2. OG');
  } finally {
    device.close();
  }
});
