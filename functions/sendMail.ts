import { app, type InvocationContext } from '@azure/functions';
import { deliverMessage } from '../shared/delivery/deliverMessage';
import { QUEUES, STORAGE_CONNECTION } from '../shared/names';
import { getFreshApp } from '../shared/app';

/** Sends one queued message. Throwing makes the host retry it; every expected outcome returns normally. */
export async function sendMail(queueItem: unknown, context: InvocationContext): Promise<void> {
  const { delivery } = await getFreshApp();
  const metadata = context.triggerMetadata ?? {};
  await deliverMessage(delivery, queueItem, {
    queueMessageId: String(metadata.id ?? context.invocationId),
    dequeueCount: Number(metadata.dequeueCount ?? 1),
    ...(metadata.insertionTime ? { insertedAt: new Date(String(metadata.insertionTime)) } : {}),
  });
}

app.storageQueue('sendMail', { queueName: QUEUES.outbox, connection: STORAGE_CONNECTION, handler: sendMail });
