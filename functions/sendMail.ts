import { app, type InvocationContext } from '@azure/functions';
import { deliverMessage } from '../shared/delivery/deliverMessage';
import { MAX_DEQUEUE_COUNT, notePoisoned } from '../shared/delivery/poisonedMessage';
import { QUEUES, STORAGE_CONNECTION } from '../shared/names';
import { getFreshApp } from '../shared/app';

/** Sends one queued message. Throwing makes the host retry it; every expected outcome returns normally. */
export async function sendMail(queueItem: unknown, context: InvocationContext): Promise<void> {
  const { delivery } = await getFreshApp();
  const metadata = context.triggerMetadata ?? {};
  const meta = {
    queueMessageId: String(metadata.id ?? context.invocationId),
    dequeueCount: Number(metadata.dequeueCount ?? 1),
    ...(metadata.insertionTime ? { insertedAt: new Date(String(metadata.insertionTime)) } : {}),
  };
  try {
    await deliverMessage(delivery, queueItem, meta);
  } catch (error) {
    // The host's last try: the message goes to the poison queue next, and the ledger and the log say so.
    if (meta.dequeueCount >= MAX_DEQUEUE_COUNT) await notePoisoned(delivery, queueItem, meta, error);
    throw error;
  }
}

app.storageQueue('sendMail', { queueName: QUEUES.outbox, connection: STORAGE_CONNECTION, handler: sendMail });
