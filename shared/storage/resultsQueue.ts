import type { QueueClient } from '@azure/storage-queue';

/**
 * An event on `mail-results` for every message that reached its end: sent, or failed permanently.
 * Delivered at least once: a consumer treats events with the same id as one.
 */
export interface ResultEvent {
  version: 1;
  id: string;
  account?: string;
  status: 'sent' | 'failed';
  code?: string;
  reason?: string;
  smtpReply?: string;
  messageId?: string;
  attempts: number;
  at: string;
}

export async function publishResult(queue: QueueClient, event: ResultEvent): Promise<void> {
  await queue.sendMessage(encodeQueueJson(event), { messageTimeToLive: -1 });
}

/** The Functions queue trigger and our decoder expect base64 of UTF-8 JSON; @azure/storage-queue does not encode. */
export function encodeQueueJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
}

export function decodeQueueJson<T>(text: string): T {
  return JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as T;
}
