import type { Logger } from '../log/logger';
import type { OutboxQueue } from '../message/outboxQueue';
import type { DeliveryLedger } from '../storage/deliveryLedger';
import type { DeferredCode } from '../outcomeCodes';

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
  deps: { ledger: DeliveryLedger; outbox: OutboxQueue; log: Logger },
  accountId: string,
  now = new Date(),
  /** Which waits end (an administrator's resume ends `paused`). */
  codes: ReadonlySet<DeferredCode> = WAITING_FOR_ADMIN,
): Promise<number> {
  let released = 0;
  for await (const record of deps.ledger.waitingOf(accountId)) {
    if (!record.waitingCopy || !codes.has(record.code as DeferredCode)) continue;
    if (record.nextAttemptAt && Date.parse(record.nextAttemptAt) <= now.getTime()) continue;
    // A copy picked up (its receipt changed) or deleted meanwhile is on its way anyway. The ledger row is not
    // written: the copy decides when it comes back, with the row as it then is.
    if (await deps.outbox.release(record.waitingCopy)) released += 1;
  }
  if (released > 0) deps.log.info('mail.released', { account: accountId, released });
  return released;
}
