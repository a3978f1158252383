import type { QueueClient } from '@azure/storage-queue';
import { encodeQueueJson } from './queueJson';

/**
 * Queue `mail-outbox` as everybody who writes to it sees it: producers (enqueueMail, POST /api/messages, the
 * relay's MIME messages) and the send path's waiting copies. Messages are base64 of UTF-8 JSON (what the Functions
 * trigger decodes), never expire while they wait (time-to-live -1), and hold at most 64 KB once encoded.
 */
export const QUEUE_MESSAGE_LIMIT = 64 * 1024;

/** The longest a copy can be hidden: the queue's visibility timeout is at most 7 days. */
const MAX_DELAY_SECONDS = 7 * 24 * 3600 - 60;

/** The size a message takes on the queue: base64 makes 4 bytes of every 3. */
export function encodedSize(message: unknown): number {
  return Math.ceil(Buffer.byteLength(JSON.stringify(message)) / 3) * 4;
}

/** A copy on the queue: its message id and pop receipt, which allow it to be made visible early or taken back. */
export type WaitingCopy = string;

export class OutboxQueue {
  constructor(readonly client: QueueClient) {}

  /** Puts one message on the queue, visible at once or after `delaySeconds`. */
  async enqueue(message: object, delaySeconds = 0): Promise<{ queueMessageId: string; copy: WaitingCopy }> {
    const response = await this.client.sendMessage(encodeQueueJson(message), {
      messageTimeToLive: -1,
      ...(delaySeconds > 0 ? { visibilityTimeout: delaySeconds } : {}),
    });
    return { queueMessageId: response.messageId, copy: `${response.messageId} ${response.popReceipt}` };
  }

  /** A copy of `message` under its id, seen again after `delayMs` (rounded up to whole seconds, at most 7 days). */
  async requeue(
    message: object,
    id: string,
    delayMs: number,
  ): Promise<{ copy: WaitingCopy; nextAttemptAt: string; seconds: number }> {
    const seconds = Math.min(MAX_DELAY_SECONDS, Math.max(1, Math.ceil(delayMs / 1000)));
    const nextAttemptAt = new Date(Date.now() + seconds * 1000).toISOString();
    const { copy } = await this.enqueue({ ...message, id }, seconds);
    return { copy, nextAttemptAt, seconds };
  }

  /** Makes a waiting copy visible now. False when it is gone or was picked up meanwhile (its receipt changed). */
  async release(copy: WaitingCopy): Promise<boolean> {
    const [messageId, popReceipt] = copy.split(' ');
    if (!messageId || !popReceipt) return false;
    try {
      await this.client.updateMessage(messageId, popReceipt, undefined, 0);
      return true;
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return false;
      throw error;
    }
  }

  /** Takes back a copy that turned out not to be needed; one already gone is fine. */
  async remove(copy: WaitingCopy): Promise<void> {
    const [messageId, popReceipt] = copy.split(' ');
    if (!messageId || !popReceipt) return;
    // Best effort: a copy left behind comes back, finds the row and ends as a duplicate; nothing is lost.
    await this.client.deleteMessage(messageId, popReceipt).catch(() => undefined);
  }
}
