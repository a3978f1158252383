import type { OutboxQueue } from '../message/outboxQueue';
import type { Account } from '../config/account';
import type { Logger } from '../log/logger';
import { describeMessageIssues } from '../message/decodeQueueMessage';
import { enqueueMail } from '../message/enqueueMail';
import { jsonMailMessageSchema } from '../message/messageSchema';

export type TestEmailResult = { ok: true; id: string; queueMessageId: string } | { ok: false; reasons: string };

/**
 * Puts a test email for `to` on the outbox queue instead of sending it here, so that it takes the real path:
 * account gate, rate limits, token, SMTP, ledger row and result event. Its outcome shows up where any
 * message's does (the ledger row under its id, the mail-results queue, the status page's counts).
 */
export async function sendTestEmail(
  deps: { outbox: OutboxQueue; log: Logger },
  account: Account,
  to: string,
  now = new Date(),
): Promise<TestEmailResult> {
  const id = `test-${account.id}-${now.toISOString().replace(/[-:.]/g, '')}`;
  const parsed = jsonMailMessageSchema.safeParse({
    id,
    account: account.id,
    to: [to.trim()],
    subject: `oauth-outbox test from ${account.id}`,
    text: [
      `This is a test email from oauth-outbox, sent through the account "${account.id}" (${account.displayName}).`,
      `It authenticated as ${account.user} and was sent from ${account.from}.`,
      `Requested at ${now.toISOString()}; message id ${id}.`,
      '',
      'If you can read this, the account can send.',
    ].join('\n'),
  });
  if (!parsed.success) return { ok: false, reasons: describeMessageIssues(parsed.error) };
  const queued = await enqueueMail(deps.outbox, parsed.data);
  deps.log.info('mail.test_queued', { messageId: queued.id, account: account.id });
  return { ok: true, id: queued.id, queueMessageId: queued.queueMessageId };
}
