/**
 * A queue trigger for benchmarks, with the Functions host's semantics (as local/host/queueTrigger.ts: the message
 * text, JSON-parsed when it parses, is handed to the handler, and a handler that returns deletes the message)
 * but the host's steady flow instead of batch barriers: `concurrency` invocations are kept in flight, and the
 * next batch is fetched while the buffer runs low (the host's newBatchThreshold), not after the batch is done.
 */
import type { DequeuedMessageItem, QueueClient } from '@azure/storage-queue';
import type { TriggerMetadata } from '../../local/host/queueTrigger';

export interface PumpOptions {
  concurrency: number;
  /** Messages per receive (at most 32). */
  batchSize: number;
  visibilityTimeoutSeconds: number;
  /** Stop taking new messages once this returns true. */
  shouldStop(): boolean;
  /** Wait this long after a receive found nothing (default 50 ms). */
  emptyPollMs?: number;
  /** Per-stage timings of receive and delete, when given. */
  timings?: StageTimings;
}

export interface PumpStats {
  /** performance.now() when the first receive was sent, and when the last message was done (deleted). */
  firstReceiveAt?: number;
  lastDoneAt?: number;
  completed: number;
  /** Handler threw: left on the queue, as the host does. */
  errors: number;
  receives: number;
  emptyReceives: number;
  firstError?: string;
}

export interface Pump {
  readonly stats: PumpStats;
  /** Resolves when every loop has finished (after shouldStop() turned true). */
  readonly done: Promise<void>;
}

export type PumpHandler = (payload: unknown, metadata: TriggerMetadata) => Promise<void>;

export function startPump(queue: QueueClient, handler: PumpHandler, options: PumpOptions): Pump {
  const stats: PumpStats = { completed: 0, errors: 0, receives: 0, emptyReceives: 0 };
  const buffer: DequeuedMessageItem[] = [];
  let receiving: Promise<number> | undefined;
  const lowWater = Math.max(1, Math.floor(options.concurrency / 2));
  const timings = options.timings;

  const receive = () =>
    (receiving ??= (async () => {
      stats.firstReceiveAt ??= performance.now();
      const started = performance.now();
      try {
        const { receivedMessageItems } = await queue.receiveMessages({
          numberOfMessages: Math.min(32, options.batchSize),
          visibilityTimeout: options.visibilityTimeoutSeconds,
        });
        stats.receives++;
        if (receivedMessageItems.length === 0) stats.emptyReceives++;
        buffer.push(...receivedMessageItems);
        return receivedMessageItems.length;
      } finally {
        timings?.add('queue.receive', performance.now() - started);
        receiving = undefined;
      }
    })());

  const next = async (): Promise<DequeuedMessageItem | undefined> => {
    for (;;) {
      if (options.shouldStop()) return undefined;
      const item = buffer.shift();
      if (item) {
        if (buffer.length < lowWater && !receiving) void receive().catch(() => 0);
        return item;
      }
      const got = await receive().catch(() => 0);
      if (got === 0) await sleep(options.emptyPollMs ?? 50);
    }
  };

  const loop = async () => {
    for (let item = await next(); item; item = await next()) {
      try {
        await handler(tryJsonParse(item.messageText), {
          id: item.messageId,
          dequeueCount: item.dequeueCount,
          insertionTime: item.insertedOn.toISOString(),
          popReceipt: item.popReceipt,
        });
        const started = performance.now();
        await queue.deleteMessage(item.messageId, item.popReceipt);
        timings?.add('queue.delete', performance.now() - started);
        stats.completed++;
      } catch (error) {
        stats.errors++;
        stats.firstError ??= (error as Error).stack ?? String(error);
      }
      stats.lastDoneAt = performance.now();
    }
  };

  const done = Promise.all(Array.from({ length: options.concurrency }, loop)).then(() => undefined);
  return { stats, done };
}

/** Sum, count and max of durations per named stage. */
export class StageTimings {
  readonly stages = new Map<string, { count: number; totalMs: number; maxMs: number }>();

  add(stage: string, ms: number): void {
    let entry = this.stages.get(stage);
    if (!entry) this.stages.set(stage, (entry = { count: 0, totalMs: 0, maxMs: 0 }));
    entry.count++;
    entry.totalMs += ms;
    entry.maxMs = Math.max(entry.maxMs, ms);
  }

  /** Replaces `target[method]` by a wrapper that records how long each call (its promise) takes. */
  wrap<T extends object, K extends keyof T>(target: T, method: K, stage: string): void {
    const original = target[method] as unknown as (...args: unknown[]) => unknown;
    const add = (ms: number) => this.add(stage, ms);
    (target as Record<K, unknown>)[method] = function (this: unknown, ...args: unknown[]) {
      const started = performance.now();
      const result = original.apply(target, args);
      if (result instanceof Promise) return result.finally(() => add(performance.now() - started));
      add(performance.now() - started);
      return result;
    };
  }
}

function tryJsonParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
