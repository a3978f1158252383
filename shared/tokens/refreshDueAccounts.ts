import { shouldMarkStale } from '../accounts/accountRules';
import type { AccountStatusTable } from '../accounts/accountStatusTable';
import type { AccountStateWriter } from '../accounts/accountStateWriter';
import type { Account } from '../config/account';
import type { Env } from '../settings';
import { nextRunAfter, refreshSchedule } from './refreshSchedule';
import type { ProviderTokenRefresher } from './tokenRefresher';
import type { TokenService } from './tokenService';
import type { TokenStore } from './tokenStore';

export { nextRunAfter, refreshSchedule } from './refreshSchedule';
export { STALE_AFTER_MS } from '../accounts/accountRules';

/** What the refresh timer works with. */
export interface RefreshRunDeps {
  env: Env;
  accounts: readonly Account[];
  accountStatus: AccountStatusTable;
  accountStates: AccountStateWriter;
  tokenStore: TokenStore;
  refresher: ProviderTokenRefresher;
  tokens: TokenService;
}

export type RefreshRunOutcome = 'refreshed' | 'still_valid' | 'waiting_for_admin' | 'not_authorized' | 'failed';

export interface RefreshRunResult {
  account: string;
  outcome: RefreshRunOutcome;
  reason?: string;
}

/** Extra time a token must stay valid past the next run, on top of the account's minimum lifetime. */
export const REFRESH_MARGIN_MS = 5 * 60_000;

/**
 * The timer's work: every account whose token would not outlive the next run (plus margin) is refreshed now,
 * whether it sends or not, so that quiet mailboxes do not expire (Microsoft: 90 days unused). Accounts waiting
 * for an admin are left alone: their grant is gone and asking again would only repeat the error.
 */
export async function refreshDueAccounts(deps: RefreshRunDeps, now = new Date()): Promise<RefreshRunResult[]> {
  const nextRun = nextRunAfter(refreshSchedule(deps.env), now);
  const results: RefreshRunResult[] = [];
  for (const account of deps.accounts) {
    results.push(await refreshOne(deps, account, nextRun, now));
  }
  return results;
}

async function refreshOne(deps: RefreshRunDeps, account: Account, nextRun: Date, now: Date): Promise<RefreshRunResult> {
  const status = await deps.accountStatus.get(account.id);
  if (status?.state === 'reauthorization_required') {
    return { account: account.id, outcome: 'waiting_for_admin', ...(status.lastError ? { reason: status.lastError } : {}) };
  }
  if (account.flow === 'authorization_code' && !(await deps.tokenStore.readRefreshToken(account.id))) {
    return { account: account.id, outcome: 'not_authorized' };
  }
  try {
    const outcome = await deps.refresher.refreshIfNeeded(account, {
      needValidUntil: nextRun.getTime() + account.tokenMinLifetimeSeconds * 1000 + REFRESH_MARGIN_MS,
    });
    deps.tokens.remember(account.id, outcome.record);
    return { account: account.id, outcome: outcome.refreshed ? 'refreshed' : 'still_valid' };
  } catch (error) {
    await markStaleIfOld(deps, account, now);
    return { account: account.id, outcome: 'failed', reason: (error as Error).message };
  }
}

async function markStaleIfOld(deps: RefreshRunDeps, account: Account, now: Date): Promise<void> {
  const status = await deps.accountStatus.get(account.id);
  if (status && shouldMarkStale(status, now.getTime())) await deps.accountStates.markStale(account, status);
}
