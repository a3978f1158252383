import { randomUUID } from 'node:crypto';
import type { QueueClient } from '@azure/storage-queue';
import { encodeQueueJson } from './queueJson';
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
  queue: QueueClient,
  message: MailMessage,
  options: { visibilityTimeoutSeconds?: number } = {},
): Promise<{ id: string; queueMessageId: string }> {
  const withId = { ...message, id: message.id ?? randomUUID() };
  const parsed = parseMailMessage(withId);
  if (!parsed.success) throw new InvalidMailMessageError(describeMessageIssues(parsed.error));
  const response = await queue.sendMessage(encodeQueueJson(parsed.data), {
    messageTimeToLive: -1,
    ...(options.visibilityTimeoutSeconds ? { visibilityTimeout: options.visibilityTimeoutSeconds } : {}),
  });
  return { id: withId.id, queueMessageId: response.messageId };
}
