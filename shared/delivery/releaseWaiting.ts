import type { QueueClient } from '@azure/storage-queue';
import type { Logger } from '../log/logger';
import type { DeliveryLedger } from '../storage/deliveryLedger';
import type { DeferredCode } from './outcomeCodes';

/** Codes of messages that wait for an admin to act on their account; a new authorization ends the wait. */
const WAITING_FOR_ADMIN = new Set<DeferredCode>([
  'not_authorized',
  'needs_reauthorization',
  'config_error',
  'smtp_auth_disabled',
]);

/**
 * After a (re-)authorization, the account's messages that waited for it are made visible on the queue at once,
 * instead of when their delay (minutes) ends. Uses the waiting copy's pop receipt recorded with the deferral; a
 * copy already picked up or gone is skipped. Returns how many were released.
 */
export async function releaseWaiting(
  deps: { ledger: DeliveryLedger; outbox: QueueClient; log: Logger },
  accountId: string,
  now = new Date(),
): Promise<number> {
  let released = 0;
  for await (const record of deps.ledger.waitingOf(accountId)) {
    if (!record.waitingCopy || !WAITING_FOR_ADMIN.has(record.code as DeferredCode)) continue;
    if (record.nextAttemptAt && Date.parse(record.nextAttemptAt) <= now.getTime()) continue;
    const [messageId, popReceipt] = record.waitingCopy.split(' ');
    if (!messageId || !popReceipt) continue;
    try {
      await deps.outbox.updateMessage(messageId, popReceipt, undefined, 0);
      released += 1;
    } catch (error) {
      // 404: the copy was picked up (its receipt changed) or deleted meanwhile; it is on its way anyway.
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
  }
  if (released > 0) deps.log.info('mail.released', { account: accountId, released });
  return released;
}
