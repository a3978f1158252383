/**
 * The Functions queue trigger's semantics, for the local runner and tests, as the host's QueueListener and
 * QueueProcessor have them:
 * - a received message is hidden for a lease (the host: 10 minutes) that is renewed at half its length while
 *   the invocation runs, so a slow invocation never hands its message to a second one;
 * - the next batch is fetched as soon as no more than `newBatchThreshold` invocations are still running, so one
 *   slow message does not hold back the others;
 * - the message is handed over base64-decoded unless messageEncoding is "none" (text that is not base64 under
 *   "base64" fails like a throwing handler), JSON-parsed when it parses, with the dequeue count in the metadata;
 * - a handler that returns deletes the message; one that throws releases it, visible again after
 *   `visibilityTimeout`; after `maxDequeueCount` failed tries it moves to the poison queue.
 */
import type { DequeuedMessageItem, QueueClient } from '@azure/storage-queue';

export interface QueueTriggerOptions {
  /** Messages per receive (1-32). */
  batchSize: number;
  /** The next batch is fetched once no more than this many invocations are still running. */
  newBatchThreshold: number;
  /** After a failed invocation the message is visible again after this long (host.json `visibilityTimeout`). */
  visibilityTimeoutSeconds: number;
  maxDequeueCount: number;
  /** Longest wait between receives while the queue is empty. */
  maxPollingIntervalMs: number;
  /** host.json `extensions.queues.messageEncoding`. */
  messageEncoding: 'base64' | 'none';
  /** How long a received message stays hidden; renewed at half this while its invocation runs. */
  leaseSeconds: number;
}

export interface TriggerMetadata {
  id: string;
  dequeueCount: number;
  insertionTime?: string;
  popReceipt: string;
}

export type QueueHandler = (payload: unknown, metadata: TriggerMetadata) => Promise<void>;

/** What the trigger could not do with a message (the queue service refused); it is not the handler's error. */
export type QueueErrorHandler = (error: unknown) => void;

/** Receives one batch and runs the handler on each message concurrently until all are done; returns how many it saw. */
export async function pollOnce(
  queue: QueueClient,
  poison: QueueClient,
  handler: QueueHandler,
  options: QueueTriggerOptions,
): Promise<number> {
  const { receivedMessageItems } = await queue.receiveMessages({
    numberOfMessages: options.batchSize,
    visibilityTimeout: options.leaseSeconds,
  });
  await Promise.all(receivedMessageItems.map((item) => processMessage(queue, poison, item, handler, options)));
  return receivedMessageItems.length;
}

/** Polls until stopped, as the host's listener does; `stop()` waits for the invocations still running. */
export function startQueueTrigger(
  queue: QueueClient,
  poison: QueueClient,
  handler: QueueHandler,
  options: QueueTriggerOptions,
  onError: QueueErrorHandler = () => {},
): { stop(): Promise<void> } {
  let stopped = false;
  let wake: (() => void) | undefined;
  const running = new Set<Promise<void>>();
  const loop = (async () => {
    let idleMs = 100;
    while (!stopped) {
      let items: DequeuedMessageItem[] = [];
      try {
        ({ receivedMessageItems: items } = await queue.receiveMessages({
          numberOfMessages: options.batchSize,
          visibilityTimeout: options.leaseSeconds,
        }));
      } catch (error) {
        onError(error);
      }
      if (items.length > 0) {
        idleMs = 100;
        for (const item of items) {
          const invocation: Promise<void> = processMessage(queue, poison, item, handler, options)
            .catch(onError)
            .finally(() => running.delete(invocation));
          running.add(invocation);
        }
        while (running.size > options.newBatchThreshold) await Promise.race(running);
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
    await Promise.all(running);
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}

async function processMessage(
  queue: QueueClient,
  poison: QueueClient,
  item: DequeuedMessageItem,
  handler: QueueHandler,
  options: QueueTriggerOptions,
): Promise<void> {
  if (item.dequeueCount > options.maxDequeueCount) {
    await moveToPoison(queue, poison, item, item.popReceipt);
    return;
  }
  const hold = holdWhileRunning(queue, item, options.leaseSeconds);
  let failed = false;
  try {
    await handler(tryJsonParse(decodeMessageText(item.messageText, options.messageEncoding)), {
      id: item.messageId,
      dequeueCount: item.dequeueCount,
      insertionTime: item.insertedOn.toISOString(),
      popReceipt: item.popReceipt,
    });
  } catch {
    failed = true;
  }
  const popReceipt = await hold.release();
  // Lost while running (the lease could not be renewed and another receiver took it): that one finishes it.
  if (popReceipt === undefined) return;
  if (!failed) await ignoringLostMessage(queue.deleteMessage(item.messageId, popReceipt));
  else if (item.dequeueCount >= options.maxDequeueCount) await moveToPoison(queue, poison, item, popReceipt);
  // Let someone else try, after the visibility timeout.
  else await ignoringLostMessage(queue.updateMessage(item.messageId, popReceipt, undefined, options.visibilityTimeoutSeconds));
}

/**
 * Keeps the message hidden while its invocation runs, renewing the lease at half its length as the host does
 * (sooner after a failed renewal). `release()` stops renewing and gives the current pop receipt, or undefined
 * when the message was lost.
 */
function holdWhileRunning(queue: QueueClient, item: DequeuedMessageItem, leaseSeconds: number) {
  const intervalMs = (leaseSeconds * 1000) / 2;
  let popReceipt: string | undefined = item.popReceipt;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let renewing: Promise<void> = Promise.resolve();
  const schedule = (ms: number) => {
    if (!stopped) timer = setTimeout(renew, ms);
  };
  const renew = () => {
    renewing = (async () => {
      if (popReceipt === undefined) return;
      try {
        popReceipt = (await queue.updateMessage(item.messageId, popReceipt, undefined, leaseSeconds)).popReceipt;
        schedule(intervalMs);
      } catch (error) {
        if (isLostMessage(error)) popReceipt = undefined;
        else schedule(intervalMs / 4);
      }
    })();
  };
  schedule(intervalMs);
  return {
    async release(): Promise<string | undefined> {
      stopped = true;
      clearTimeout(timer);
      await renewing;
      return popReceipt;
    },
  };
}

async function moveToPoison(queue: QueueClient, poison: QueueClient, item: DequeuedMessageItem, popReceipt: string) {
  await poison.sendMessage(item.messageText, { messageTimeToLive: -1 });
  await ignoringLostMessage(queue.deleteMessage(item.messageId, popReceipt));
}

/** The message is gone or someone else holds it now (404, or 400 pop receipt mismatch): nothing left to do. */
async function ignoringLostMessage(operation: Promise<unknown>): Promise<void> {
  try {
    await operation;
  } catch (error) {
    if (!isLostMessage(error)) throw error;
  }
}

function isLostMessage(error: unknown): boolean {
  const status = (error as { statusCode?: number }).statusCode;
  return status === 404 || status === 400;
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
