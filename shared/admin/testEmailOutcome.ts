import { readSetting, type Env } from '../settings';
import type { DeliveryLedger, DeliveryRecord } from '../storage/deliveryLedger';

/** How long the test-email route waits for the send path's verdict before answering (setting TEST_EMAIL_WAIT_SECONDS). */
export function testEmailWaitMs(env: Env): number {
  const seconds = Number(readSetting(env, 'TEST_EMAIL_WAIT_SECONDS') ?? 20);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, 60) * 1000 : 20_000;
}

/**
 * Waits until the ledger records the test email as sent or failed, or `waitMs` passes; returns what it knows
 * then (a deferred row says why it waits; undefined: not picked up yet).
 */
export async function awaitTestOutcome(
  ledger: DeliveryLedger,
  id: string,
  waitMs: number,
  pollMs = 500,
): Promise<DeliveryRecord | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const record = await ledger.get(id);
    if (record?.status === 'sent' || record?.status === 'failed' || Date.now() >= deadline) return record;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, Math.max(0, deadline - Date.now()))));
  }
}

export interface TestVerdict {
  id: string;
  status: 'sent' | 'failed' | 'waiting' | 'queued';
  code: string | null;
  reason: string | null;
  smtpReply: string | null;
  nextAttemptAt: string | null;
}

export function testVerdict(id: string, record: DeliveryRecord | undefined): TestVerdict {
  const status = record?.status === 'sent' || record?.status === 'failed' ? record.status : record ? 'waiting' : 'queued';
  return {
    id,
    status,
    code: record?.code ?? null,
    reason: record?.reason ?? null,
    smtpReply: record?.smtpReply ?? null,
    nextAttemptAt: record?.status === 'deferred' ? (record.nextAttemptAt ?? null) : null,
  };
}
