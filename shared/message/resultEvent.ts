import type { QueueClient } from '@azure/storage-queue';
import type { FailedCode, SentCode } from '../outcomeCodes';
import { encodeQueueJson } from './queueJson';

/**
 * An event on `mail-results` for every message that reached its end: sent, or failed permanently.
 * Delivered at least once: a consumer treats events with the same id as one.
 */
export interface ResultEvent {
  version: 1;
  id: string;
  account?: string;
  status: 'sent' | 'failed';
  /** See OUTCOME_CODES: what the code means, in a sentence. */
  code?: SentCode | FailedCode;
  reason?: string;
  smtpReply?: string;
  messageId?: string;
  attempts: number;
  at: string;
}

export async function publishResult(queue: QueueClient, event: ResultEvent): Promise<void> {
  await queue.sendMessage(encodeQueueJson(event), { messageTimeToLive: -1 });
}
