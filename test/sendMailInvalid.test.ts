/**
 * Malformed queue messages: each one ends `failed` with a code and a reason that names what is wrong, in the
 * ledger and on the results queue; none is retried, none reaches the poison queue, none is lost.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startAzurite, type Azurite } from '../local/peers/azurite';
import { type SmtpSink } from '../local/peers/smtpSink';
import { CONTAINERS, QUEUES } from '../shared/names';
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
const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const valid = { account: 'main', to: ['a@example.com'], subject: 'Invoice', text: 'Hello' };

type Code = 'invalid_message' | 'unknown_account' | 'sender_not_allowed' | 'attachment_missing' | 'too_large';

interface Case {
  name: string;
  code: Code;
  reason: RegExp;
  /** Raw text for the queue (the ledger id is then the queue message id)... */
  raw?: string;
  /** ...or a message object, enqueued as base64 JSON with `id` = the case's id. */
  message?: Record<string, unknown>;
}

const CASES: Case[] = [
  { name: 'not JSON', raw: '{"to": ["a@example.com"], "subject": ', code: 'invalid_message', reason: /not valid JSON/ },
  { name: 'not base64', raw: '%%%', code: 'invalid_message', reason: /neither base64-encoded JSON nor JSON/ },
  { name: 'base64 of text that is not JSON', raw: base64('hello, world'), code: 'invalid_message', reason: /not valid JSON/ },
  { name: 'a JSON array', raw: base64(JSON.stringify([valid])), code: 'invalid_message', reason: /must be a JSON object/ },
  { name: 'an empty message', raw: '', code: 'invalid_message', reason: /empty/ },
  {
    name: 'no recipient',
    message: { subject: 'x', text: 'y' },
    code: 'invalid_message',
    reason: /^The message is invalid: to: at least one recipient is needed in to, cc or bcc$/,
  },
  {
    name: 'an invalid address in to',
    message: { ...valid, to: ['not-an-address'] },
    code: 'invalid_message',
    reason: /to\[0\]: is not a valid email address/,
  },
  {
    name: 'an invalid address in cc',
    message: { ...valid, cc: ['someone@'] },
    code: 'invalid_message',
    reason: /cc\[0\]: is not a valid email address/,
  },
  {
    name: 'CR/LF in the subject',
    message: { ...valid, subject: 'Hi\r\nBcc: victim@evil.test' },
    code: 'invalid_message',
    reason: /subject: must not contain CR or LF/,
  },
  {
    name: 'CR/LF in a header value',
    message: { ...valid, headers: { 'X-Ticket': '1\r\nBcc: victim@evil.test' } },
    code: 'invalid_message',
    reason: /headers\.X-Ticket: must not contain CR or LF/,
  },
  {
    name: 'CR/LF in an address display name',
    message: { ...valid, to: [{ name: 'Eve\r\nBcc: victim@evil.test', address: 'a@example.com' }] },
    code: 'invalid_message',
    reason: /to\[0\]\.name: must not contain CR or LF/,
  },
  {
    name: 'a reserved header (Bcc)',
    message: { ...valid, headers: { Bcc: 'victim@evil.test' } },
    code: 'invalid_message',
    reason: /headers\.Bcc: this header is set from the message fields; use the field instead/,
  },
  {
    name: 'an unknown field',
    message: { ...valid, priority: 'high' },
    code: 'invalid_message',
    reason: /unknown field\(s\) "priority"/,
  },
  {
    name: 'an unknown account',
    message: { ...valid, account: 'nowhere' },
    code: 'unknown_account',
    reason: /There is no account "nowhere"\. Known accounts: main\./,
  },
  {
    name: 'a From the account may not use',
    message: { ...valid, from: 'ceo@example.com' },
    code: 'sender_not_allowed',
    reason: /From ceo@example\.com is not allowed for account "main"; allowed: main@example\.com\./,
  },
  {
    name: 'more recipients than the provider takes',
    message: { ...valid, to: Array.from({ length: 501 }, (_, i) => `r${i}@example.com`) },
    code: 'invalid_message',
    reason: /501 recipients; the provider accepts at most 500 per message/,
  },
  {
    name: 'an attachment blob over the size limit',
    message: { ...valid, attachments: [{ filename: 'huge.bin', blob: 'mail-attachments/invalid/huge.bin' }] },
    code: 'too_large',
    reason: new RegExp(`"mail-attachments/invalid/huge\\.bin" is ${25 * MB + 1} bytes; the limit is ${25 * MB}`),
  },
  {
    name: 'an attachment blob that does not exist',
    message: { ...valid, attachments: [{ filename: 'gone.pdf', blob: 'mail-attachments/invalid/gone.pdf' }] },
    code: 'attachment_missing',
    reason: /attachment blob "mail-attachments\/invalid\/gone\.pdf" does not exist/,
  },
  {
    name: 'an attachment blob outside mail-attachments',
    message: { ...valid, attachments: [{ filename: 'x.pdf', blob: 'other/x.pdf' }] },
    code: 'invalid_message',
    reason: /attachments\[0\]\.blob: must be "mail-attachments\/<path>"/,
  },
  {
    name: 'invalid base64 in contentBase64',
    message: { ...valid, attachments: [{ filename: 'x.pdf', contentBase64: '%%% not base64 %%%' }] },
    code: 'invalid_message',
    reason: /attachments\[0\]\.contentBase64: is not base64/,
  },
  {
    name: 'no subject',
    message: { account: 'main', to: ['a@example.com'], text: 'x' },
    code: 'invalid_message',
    reason: /subject: .*expected string, received undefined/,
  },
  {
    name: 'an attachment by file path',
    message: { ...valid, attachments: [{ filename: 'x.pdf', path: '/etc/passwd' }] },
    code: 'invalid_message',
    reason:
      /^The message is invalid: attachments\[0\]: unknown field\(s\) "path": an attachment is given by contentBase64 or blob, never by a file path or URL; attachments\[0\]: needs contentBase64 \(the bytes\) or blob \("mail-attachments\/<path>"\)$/,
  },
  {
    name: 'an attachment by URL',
    message: { ...valid, attachments: [{ filename: 'x.pdf', href: 'https://example.com/x.pdf' }] },
    code: 'invalid_message',
    reason: /attachments\[0\]: unknown field\(s\) "href": .*never by a file path or URL/,
  },
  {
    name: 'an attachment with both contentBase64 and blob',
    message: { ...valid, attachments: [{ filename: 'x.pdf', contentBase64: 'AAAA', blob: 'mail-attachments/x.pdf' }] },
    code: 'invalid_message',
    reason: /attachments\[0\]: contentBase64 and blob are exclusive/,
  },
  {
    name: 'an address object without an address',
    message: { ...valid, to: [{ name: 'Bee' }] },
    code: 'invalid_message',
    reason: /^The message is invalid: to\[0\]\.address: .*expected string, received undefined$/,
  },
  {
    name: 'CR/LF in a header name',
    message: { ...valid, headers: { 'X-A\r\nBcc: victim@evil.test': '1' } },
    code: 'invalid_message',
    reason: /headers\.X-A\\r\\nBcc: victim@evil\.test: header names are letters, digits and dashes/,
  },
  {
    name: 'a control character in an unknown field',
    message: { ...valid, ['pri\u0007ority\u202e']: 'high' },
    code: 'invalid_message',
    reason: /unknown field\(s\) "pri\\u0007ority\\u202e"/,
  },
  {
    name: 'a byte-order mark before JSON that is not valid',
    raw: base64('\uFEFF{"to": '),
    code: 'invalid_message',
    reason: /not valid JSON/,
  },
  { name: 'version 2', message: { ...valid, version: 2 }, code: 'invalid_message', reason: /version: .*expected 1/ },
];

test(`${CASES.length} malformed messages each fail once with a reason, in the ledger and on the results queue, and none is retried or lost`, async () => {
  const huge = Buffer.alloc(25 * MB + 1);
  await harness.runtime.storage.container(CONTAINERS.attachments).uploadBlockBlob('invalid/huge.bin', huge, huge.length);

  const ids = new Map<string, Case>();
  for (const [index, c] of CASES.entries()) {
    if (c.raw !== undefined) {
      ids.set(await harness.enqueueRaw(c.raw), c);
    } else {
      const id = `invalid-${index}`;
      await harness.enqueue({ id, ...c.message });
      ids.set(id, c);
    }
  }
  await harness.drain();

  const results = await harness.results();
  assert.equal(results.length, CASES.length, 'one result per message');
  for (const [id, c] of ids) {
    const row = await harness.ledger(id);
    assert.equal(row?.status, 'failed', `${c.name}: ${JSON.stringify(row)}`);
    assert.equal(row?.code, c.code, c.name);
    assert.match(row?.reason ?? '', c.reason, c.name);
    assert.doesNotMatch(
      row?.reason ?? '',
      /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\ufeff]/,
      `${c.name}: raw control character`,
    );
    assert.equal(row?.attempts, 0, `${c.name}: never handed to the SMTP server`);
    assert.equal(row?.deferrals, 0, `${c.name}: not retried`);
    const events = results.filter((r) => r.id === id);
    assert.equal(events.length, 1, `${c.name}: one result event`);
    assert.equal(events[0]!.status, 'failed', c.name);
    assert.equal(events[0]!.code, c.code, c.name);
    assert.equal(events[0]!.reason, row?.reason, c.name);
  }
  const queue = (name: string) => harness.runtime.storage.queue(name).getProperties();
  assert.equal((await queue(QUEUES.outbox)).approximateMessagesCount, 0, 'nothing left on the outbox');
  assert.equal((await queue(QUEUES.poison)).approximateMessagesCount, 0, 'nothing poisoned');
  assert.equal(sink.received.length, 0, 'nothing sent');
});
