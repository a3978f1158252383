import { alertAccountProblem } from '../alerts/accountAlerts';
import type { Account } from '../config';
import { nextOccurrence } from '../ncrontab';
import type { Runtime } from '../runtime';
import { DEFAULT_REFRESH_SCHEDULE, readSetting } from '../settings';
import { refresherFor, tokenServiceFor } from './tokenServiceFor';

export type RefreshRunOutcome = 'refreshed' | 'still_valid' | 'waiting_for_admin' | 'not_authorized' | 'failed';

export interface RefreshRunResult {
  account: string;
  outcome: RefreshRunOutcome;
  reason?: string;
}

/** Extra time a token must stay valid past the next run, on top of the account's minimum lifetime. */
export const REFRESH_MARGIN_MS = 5 * 60_000;
export const STALE_AFTER_MS = 24 * 3_600_000;

export function refreshSchedule(runtime: Runtime): string {
  return readSetting(runtime.env, 'REFRESH_SCHEDULE') ?? DEFAULT_REFRESH_SCHEDULE;
}

export function nextRunAfter(schedule: string, now: Date): Date {
  return nextOccurrence(schedule, now) ?? new Date(now.getTime() + 3_600_000);
}

/**
 * The timer's work: every account whose token would not outlive the next run (plus margin) is refreshed now,
 * whether it sends or not, so that quiet mailboxes do not expire (Microsoft: 90 days unused). Accounts waiting
 * for an admin are left alone: their grant is gone and asking again would only repeat the error.
 */
export async function refreshDueAccounts(runtime: Runtime, now = new Date()): Promise<RefreshRunResult[]> {
  const nextRun = nextRunAfter(refreshSchedule(runtime), now);
  const results: RefreshRunResult[] = [];
  for (const account of runtime.accounts) {
    results.push(await refreshOne(runtime, account, nextRun, now));
  }
  return results;
}

async function refreshOne(runtime: Runtime, account: Account, nextRun: Date, now: Date): Promise<RefreshRunResult> {
  const status = await runtime.accountStatus.get(account.id);
  if (status?.state === 'reauthorization_required') {
    return { account: account.id, outcome: 'waiting_for_admin', ...(status.lastError ? { reason: status.lastError } : {}) };
  }
  if (account.flow === 'authorization_code' && !(await runtime.tokenStore.readRefreshToken(account.id))) {
    return { account: account.id, outcome: 'not_authorized' };
  }
  try {
    const outcome = await refresherFor(runtime).refreshIfNeeded(account, {
      needValidUntil: nextRun.getTime() + account.tokenMinLifetimeSeconds * 1000 + REFRESH_MARGIN_MS,
    });
    tokenServiceFor(runtime).remember(account.id, outcome.record);
    return { account: account.id, outcome: outcome.refreshed ? 'refreshed' : 'still_valid' };
  } catch (error) {
    await markStaleIfOld(runtime, account, now);
    return { account: account.id, outcome: 'failed', reason: (error as Error).message };
  }
}

async function markStaleIfOld(runtime: Runtime, account: Account, now: Date): Promise<void> {
  const status = await runtime.accountStatus.get(account.id);
  // The later of the two: a fresh authorization counts as a success even if the last refresh was long ago.
  const lastOk = [status?.lastRefreshOkAt, status?.authorizedAt]
    .filter((t): t is string => Boolean(t))
    .sort()
    .at(-1);
  if (!status || !lastOk || now.getTime() - Date.parse(lastOk) < STALE_AFTER_MS) return;
  if (status.state !== 'ready' && status.state !== 'degraded') return;
  const reason = `No successful token refresh since ${lastOk}. Last error: ${status.lastError ?? 'unknown'}`;
  await runtime.accountStatus.patch(account.id, { state: 'stale' });
  await alertAccountProblem(runtime, account, { state: 'stale', reason }, status);
}
