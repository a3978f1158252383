import type { QueueClient } from '@azure/storage-queue';

/**
 * The Functions queue trigger's semantics, for the local runner and tests: messages are handed over as the
 * host does (base64-decoded unless messageEncoding is "none"; the text, JSON-parsed when it parses; text that
 * is not base64 under "base64" fails like a throwing handler), with the dequeue count in the
 * trigger metadata; a handler that returns deletes the message; one that throws leaves it to reappear after
 * the visibility timeout; after `maxDequeueCount` failed tries it moves to the poison queue.
 */
export interface QueueTriggerOptions {
  batchSize: number;
  visibilityTimeoutSeconds: number;
  maxDequeueCount: number;
  maxPollingIntervalMs: number;
  /** host.json `extensions.queues.messageEncoding`; default "none" (the text as it is on the queue). */
  messageEncoding?: 'base64' | 'none';
}

export interface TriggerMetadata {
  id: string;
  dequeueCount: number;
  insertionTime?: string;
  popReceipt: string;
}

export type QueueHandler = (payload: unknown, metadata: TriggerMetadata) => Promise<void>;

/** Receives one batch and runs the handler on each message concurrently; returns how many it saw. */
export async function pollOnce(
  queue: QueueClient,
  poison: QueueClient,
  handler: QueueHandler,
  options: QueueTriggerOptions,
): Promise<number> {
  const { receivedMessageItems } = await queue.receiveMessages({
    numberOfMessages: Math.min(32, options.batchSize),
    visibilityTimeout: options.visibilityTimeoutSeconds,
  });
  await Promise.all(
    receivedMessageItems.map(async (item) => {
      if (item.dequeueCount > options.maxDequeueCount) {
        await poison.sendMessage(item.messageText, { messageTimeToLive: -1 });
        await queue.deleteMessage(item.messageId, item.popReceipt);
        return;
      }
      try {
        await handler(tryJsonParse(decodeMessageText(item.messageText, options.messageEncoding ?? 'none')), {
          id: item.messageId,
          dequeueCount: item.dequeueCount,
          insertionTime: item.insertedOn.toISOString(),
          popReceipt: item.popReceipt,
        });
        await queue.deleteMessage(item.messageId, item.popReceipt);
      } catch {
        // Left on the queue: it becomes visible again after the visibility timeout, as in Azure.
        if (item.dequeueCount >= options.maxDequeueCount) {
          await poison.sendMessage(item.messageText, { messageTimeToLive: -1 });
          await queue.deleteMessage(item.messageId, item.popReceipt);
        }
      }
    }),
  );
  return receivedMessageItems.length;
}

/** Polls until stopped, backing off to `maxPollingIntervalMs` while the queue is empty. */
export function startQueueTrigger(
  queue: QueueClient,
  poison: QueueClient,
  handler: QueueHandler,
  options: QueueTriggerOptions,
): { stop(): Promise<void> } {
  let stopped = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    let idleMs = 100;
    while (!stopped) {
      let seen: number;
      try {
        seen = await pollOnce(queue, poison, handler, options);
      } catch {
        seen = 0;
      }
      if (seen > 0) {
        idleMs = 100;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, idleMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      idleMs = Math.min(options.maxPollingIntervalMs, idleMs * 2);
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}

function decodeMessageText(text: string, encoding: 'base64' | 'none'): string {
  if (encoding === 'none') return text;
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0)
    throw new Error('The queue message is not base64, as messageEncoding "base64" requires.');
  return Buffer.from(trimmed, 'base64').toString('utf8');
}

function tryJsonParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
