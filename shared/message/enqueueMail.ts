import { randomUUID } from 'node:crypto';
import type { QueueClient } from '@azure/storage-queue';
import { OutboxQueue } from './outboxQueue';
import { describeMessageIssues } from './decodeQueueMessage';
import { parseMailMessage, type MailMessage } from './messageSchema';

export class InvalidMailMessageError extends Error {
  constructor(readonly reasons: string) {
    super(`The message is invalid: ${reasons}`);
    this.name = 'InvalidMailMessageError';
  }
}

/**
 * The producer side: validates a message, gives it an id when it has none (so the caller can find it in the
 * ledger and on the results queue), and puts it on the queue base64-encoded, as the trigger expects.
 */
export async function enqueueMail(
  queue: OutboxQueue | QueueClient,
  message: MailMessage,
  options: { visibilityTimeoutSeconds?: number } = {},
): Promise<{ id: string; queueMessageId: string }> {
  const withId = { ...message, id: message.id ?? randomUUID() };
  const parsed = parseMailMessage(withId);
  if (!parsed.success) throw new InvalidMailMessageError(describeMessageIssues(parsed.error));
  const outbox = queue instanceof OutboxQueue ? queue : new OutboxQueue(queue);
  const { queueMessageId } = await outbox.enqueue(parsed.data, options.visibilityTimeoutSeconds ?? 0);
  return { id: withId.id, queueMessageId };
}
