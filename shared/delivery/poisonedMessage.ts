import { findAccount } from '../config/loadAccounts';
import { decodeQueueMessage } from '../message/decodeQueueMessage';
import { QUEUES } from '../names';
import type { DeliveryRecord } from '../storage/deliveryLedger';
import type { DeliveryServices, QueueMeta } from './deliveryServices';

/**
 * The Functions host moves a queue message to `mail-outbox-poison` after this many failed invocations
 * (host.json `extensions.queues.maxDequeueCount`; a test keeps the two equal).
 */
export const MAX_DEQUEUE_COUNT = 5;

/**
 * The last invocation the host allows for a message failed, so the host is about to move it to the poison queue.
 * The app says so where people look: a `mail.poisoned` error line (the alert's event) and, when storage lets it,
 * the ledger row, as deferred with code `poisoned` and how to put the message back. A row that another copy still
 * waits for, a claim (`sending`: the mail may have gone out) or an outcome is left as it is. Never throws: the
 * invocation's own error is what the host must see.
 */
export async function notePoisoned(
  services: Pick<DeliveryServices, 'ledger' | 'log' | 'accounts'>,
  payload: unknown,
  meta: QueueMeta,
  error: unknown,
): Promise<void> {
  const decoded = decodeQueueMessage(payload);
  const id = (decoded.ok ? decoded.message.id : decoded.id) ?? meta.queueMessageId;
  // A message without an account goes through the default one, as the send path would have chosen.
  const account = decoded.ok
    ? (findAccount(services.accounts, decoded.message.account)?.id ?? decoded.message.account)
    : decoded.account;
  const cause = String((error as Error)?.message ?? error)
    .split('\n')[0]!
    .slice(0, 300);
  services.log.error('mail.poisoned', {
    messageId: id,
    ...(account ? { account } : {}),
    dequeueCount: meta.dequeueCount,
    error: cause,
  });
  const reason = `The Functions host gave up after ${meta.dequeueCount} failed tries (the last: ${cause}); the message lies in queue ${QUEUES.poison}. Once the cause is fixed, put it back with: npm run poison -- --retry --id ${id}`;
  try {
    const found = await services.ledger.get(id);
    if (found && !mayNote(found, meta.queueMessageId)) return;
    const { updatedAt: _updatedAt, ...row } = found ?? ({} as Partial<DeliveryRecord>);
    const noted: Omit<DeliveryRecord, 'updatedAt'> = {
      id,
      attempts: row.attempts ?? 0,
      deferrals: row.deferrals ?? 0,
      firstSeenAt: row.firstSeenAt ?? (meta.insertedAt ?? new Date()).toISOString(),
      ...row,
      ...(account && !row.account ? { account } : {}),
      queueMessageId: meta.queueMessageId,
      status: 'deferred',
      code: 'poisoned',
      reason,
    };
    delete noted.nextAttemptAt;
    delete noted.waitingCopy;
    // Conditional like every ledger write: a row changed meanwhile by another copy says more than this note.
    await services.ledger.write(noted);
  } catch (noteError) {
    services.log.warn('mail.poison_note_failed', { messageId: id, error: noteError });
  }
}

/** Only a row that nothing else speaks for: deferred, with no other copy of the message waiting on the queue. */
function mayNote(row: DeliveryRecord, queueMessageId: string): boolean {
  if (row.status !== 'deferred') return false;
  return !row.waitingCopy || row.waitingCopy.startsWith(`${queueMessageId} `);
}
