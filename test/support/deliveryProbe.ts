/**
 * Watches the send path of a harness from the outside: every ledger write in order (so a test can see the
 * `deferred` that came before the `sent`), every copy re-enqueued by a deferral with the delay it asked for,
 * and the trigger metadata of every invocation. Optionally shortens long deferrals (a provider's one-minute
 * throttle, an hour's pause) so a test can watch the retry without waiting for it; the delay asked for is
 * still recorded and can be asserted.
 */
import type { QueueClient, QueueSendMessageOptions } from '@azure/storage-queue';
import type { DeliveryServices } from '../../shared/delivery/deliverMessage';
import { QUEUES } from '../../shared/names';
import type { DeliveryRecord } from '../../shared/storage/deliveryLedger';
import { OutboxQueue } from '../../shared/message/outboxQueue';
import { decodeQueueJson } from '../../shared/message/queueJson';
import { InvocationContext } from './azureFunctions';
import { runTrigger, type SendHarness } from './sendHarness';
import { sendMail } from '../../functions/sendMail';
import type { TriggerMetadata } from '../../local/host/queueTrigger';

export interface LedgerWrite extends Omit<DeliveryRecord, 'updatedAt' | 'etag'> {
  /** Date.now() of the write. */
  at: number;
}

export interface Requeue {
  id: string;
  /** The visibility delay the send path asked for. */
  requestedSeconds: number;
  /** The delay actually used (after `maxDelaySeconds`). */
  usedSeconds: number;
  at: number;
}

export interface DeliveryProbe {
  readonly writes: LedgerWrite[];
  readonly requeues: Requeue[];
  /** Trigger metadata of every invocation run through `drain()` below. */
  readonly invocations: TriggerMetadata[];
  /** The ledger writes of one message, in order. */
  history(id: string): LedgerWrite[];
  /** Like the harness's drain (throws if the outbox does not empty), recording the trigger metadata of each invocation. */
  drain(timeoutMs?: number): Promise<void>;
  /** Like the harness's runFor: runs the trigger for `ms` or until the outbox is empty; returns how many are left. */
  runFor(ms: number): Promise<number>;
  /** Messages on the poison queue (left there). */
  poisonCount(): Promise<number>;
}

export function probeDelivery(harness: SendHarness, options: { maxDelaySeconds?: number } = {}): DeliveryProbe {
  const services: DeliveryServices = harness.services;
  const writes: LedgerWrite[] = [];
  const requeues: Requeue[] = [];
  const invocations: TriggerMetadata[] = [];

  const ledger = services.ledger;
  const write = ledger.write.bind(ledger);
  ledger.write = async (row) => {
    const result = await write(row);
    if (result !== undefined) writes.push({ ...row, at: Date.now() });
    return result;
  };

  const outbox = services.outbox.client;
  const sendMessage = async (text: string, sendOptions: QueueSendMessageOptions = {}) => {
    const requested = sendOptions.visibilityTimeout ?? 0;
    const used = options.maxDelaySeconds === undefined ? requested : Math.min(requested, options.maxDelaySeconds);
    let id = '';
    try {
      id = String(decodeQueueJson<{ id?: unknown }>(text).id ?? '');
    } catch {
      // not one of ours
    }
    requeues.push({ id, requestedSeconds: requested, usedSeconds: used, at: Date.now() });
    return outbox.sendMessage(text, { ...sendOptions, visibilityTimeout: used });
  };
  services.outbox = new OutboxQueue(
    new Proxy(outbox, {
      get(target, property) {
        if (property === 'sendMessage') return sendMessage;
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as QueueClient,
  );

  const queue = harness.runtime.storage.queue(QUEUES.outbox);
  const poison = harness.runtime.storage.queue(QUEUES.poison);
  const handler = async (payload: unknown, metadata: TriggerMetadata) => {
    invocations.push(metadata);
    await sendMail(
      payload,
      new InvocationContext({ invocationId: `probe-${metadata.id}`, functionName: 'sendMail', triggerMetadata: { ...metadata } }),
    );
  };

  return {
    writes,
    requeues,
    invocations,
    history: (id) => writes.filter((w) => w.id === id),
    async drain(timeoutMs = 15_000) {
      const left = await runTrigger(queue, poison, handler, timeoutMs);
      if (left > 0) throw new Error(`drain: ${left} message(s) still on the outbox after ${timeoutMs} ms`);
    },
    runFor: (ms) => runTrigger(queue, poison, handler, ms),
    async poisonCount() {
      const { approximateMessagesCount } = await poison.getProperties();
      return approximateMessagesCount ?? 0;
    },
  };
}
