import type { DeliveryLedger } from '../storage/deliveryLedger';

export interface DeliveryCounts {
  sent24h: number;
  failed24h: number;
  /** Messages waiting right now: deferred (throttled, over budget, account waiting for an admin). */
  deferredNow: number;
}

export const NO_DELIVERIES: Readonly<DeliveryCounts> = Object.freeze({ sent24h: 0, failed24h: 0, deferredNow: 0 });

export const COUNT_WINDOW_MS = 24 * 3_600_000;

/**
 * Per-account counts from one scan of the ledger rows updated in the last 24 hours. `updatedAt` is not a key,
 * so the table service reads the whole `deliveries` table to answer: fine for a page a person opens now and
 * then, too slow for anything called per message. A deferred message is recorded again at every retry, so one
 * that has been waiting for days still falls inside the window.
 */
export async function countDeliveries(ledger: DeliveryLedger, now: Date): Promise<Map<string, DeliveryCounts>> {
  const counts = new Map<string, DeliveryCounts>();
  for await (const record of ledger.updatedSince(new Date(now.getTime() - COUNT_WINDOW_MS))) {
    if (!record.account) continue;
    let entry = counts.get(record.account);
    if (!entry) {
      entry = { ...NO_DELIVERIES };
      counts.set(record.account, entry);
    }
    if (record.status === 'sent') entry.sent24h += 1;
    else if (record.status === 'failed') entry.failed24h += 1;
    else if (record.status === 'deferred') entry.deferredNow += 1;
  }
  return counts;
}
