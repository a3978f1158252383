import type { DeliveryLedger } from '../storage/deliveryLedger';

export interface DeliveryCounts {
  sent24h: number;
  failed24h: number;
  /** Messages waiting right now: deferred (throttled, over budget, account waiting for an admin). */
  deferredNow: number;
}

export const NO_DELIVERIES: Readonly<DeliveryCounts> = Object.freeze({ sent24h: 0, failed24h: 0, deferredNow: 0 });

/** A failed or waiting message as the admin sees it: never its subject or recipients, only their count. */
export interface DeliveryProblem {
  id: string;
  status: 'failed' | 'deferred';
  /** When the ledger last recorded it. */
  at: string;
  recipients: number | null;
  code: string | null;
  reason: string | null;
  /** Waiting messages: when they are tried again. */
  nextAttemptAt: string | null;
}

/** How many failed and waiting messages each account lists, newest first. */
export const RECENT_PROBLEMS = 10;

export interface DeliverySummary {
  counts: DeliveryCounts;
  recentProblems: DeliveryProblem[];
}

export const COUNT_WINDOW_MS = 24 * 3_600_000;

/**
 * Per-account counts from one scan of the ledger rows updated in the last 24 hours. `updatedAt` is not a key,
 * so the table service reads the whole `deliveries` table to answer: fine for a page a person opens now and
 * then, too slow for anything called per message. A deferred message is recorded again at every retry, so one
 * that has been waiting for days still falls inside the window.
 */
export async function countDeliveries(ledger: DeliveryLedger, now: Date): Promise<Map<string, DeliverySummary>> {
  const summaries = new Map<string, DeliverySummary>();
  for await (const record of ledger.updatedSince(new Date(now.getTime() - COUNT_WINDOW_MS))) {
    if (!record.account) continue;
    let entry = summaries.get(record.account);
    if (!entry) {
      entry = { counts: { ...NO_DELIVERIES }, recentProblems: [] };
      summaries.set(record.account, entry);
    }
    if (record.status === 'sent') entry.counts.sent24h += 1;
    else if (record.status === 'failed') entry.counts.failed24h += 1;
    else if (record.status === 'deferred') entry.counts.deferredNow += 1;
    if (record.status === 'failed' || record.status === 'deferred') {
      entry.recentProblems.push({
        id: record.id,
        status: record.status,
        at: record.updatedAt,
        recipients: record.recipients ?? null,
        code: record.code ?? null,
        reason: record.reason ?? null,
        nextAttemptAt: record.status === 'deferred' ? (record.nextAttemptAt ?? null) : null,
      });
    }
  }
  for (const entry of summaries.values()) {
    entry.recentProblems.sort((a, b) => b.at.localeCompare(a.at));
    entry.recentProblems.splice(RECENT_PROBLEMS);
  }
  return summaries;
}
