import { shouldMarkStale } from '../accounts/accountRules';
import type { AccountStatusTable } from '../accounts/accountStatusTable';
import type { AccountStateWriter } from '../accounts/accountStateWriter';
import type { Account } from '../config/account';
import type { Env } from '../settings';
import { isThrottled } from '../storage/secretStore';
import { nextRunAfter, refreshSchedule, refreshSpreadMs } from './refreshSchedule';
import { planRefreshes, spreadWindowMs } from './refreshSpread';
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

/** `throttled`: Key Vault answered 429; the run waited its Retry-After and went on (this account: next run). */
export type RefreshRunOutcome = 'refreshed' | 'still_valid' | 'waiting_for_admin' | 'not_authorized' | 'throttled' | 'failed';

export interface RefreshRunResult {
  account: string;
  outcome: RefreshRunOutcome;
  reason?: string;
}

/** Extra time a token must stay valid past the next run, on top of the account's minimum lifetime. */
export const REFRESH_MARGIN_MS = 5 * 60_000;

/** The run's clock, replaceable in tests so that spreading is checked without waiting for it. */
export interface RefreshRunClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: RefreshRunClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * The timer's work: every account whose token would not outlive its next refresh (plus margin) is refreshed now,
 * whether it sends or not, so that quiet mailboxes do not expire (Microsoft: 90 days unused). Accounts waiting
 * for an admin are left alone: their grant is gone and asking again would only repeat the error.
 *
 * The accounts are spread over a window (refreshSpread.ts), each at the same offset every run, so Key Vault
 * sees an even trickle and never a burst; a 429 from it is waited out (Retry-After) before the next account.
 */
export async function refreshDueAccounts(
  deps: RefreshRunDeps,
  now = new Date(),
  clock: RefreshRunClock = realClock,
): Promise<RefreshRunResult[]> {
  const nextRun = nextRunAfter(refreshSchedule(deps.env), now);
  const windowMs = spreadWindowMs(deps.accounts.length, refreshSpreadMs(deps.env), nextRun.getTime() - now.getTime());
  const start = clock.now();
  const results: RefreshRunResult[] = [];
  for (const { item: account, offsetMs } of planRefreshes(deps.accounts, (a) => a.id, windowMs)) {
    const wait = start + offsetMs - clock.now();
    if (wait > 0) await clock.sleep(wait);
    // The account comes round again at the same offset after the next run starts.
    const nextRefresh = nextRun.getTime() + offsetMs;
    const result = await refreshOne(deps, account, nextRefresh, now);
    results.push(result.result);
    if (result.retryAfterMs !== undefined) await clock.sleep(result.retryAfterMs);
  }
  return results;
}

async function refreshOne(
  deps: RefreshRunDeps,
  account: Account,
  nextRefresh: number,
  now: Date,
): Promise<{ result: RefreshRunResult; retryAfterMs?: number }> {
  const status = await deps.accountStatus.get(account.id);
  if (status?.state === 'reauthorization_required') {
    return {
      result: { account: account.id, outcome: 'waiting_for_admin', ...(status.lastError ? { reason: status.lastError } : {}) },
    };
  }
  try {
    if (account.flow === 'authorization_code' && !(await deps.tokenStore.readRefreshToken(account.id))) {
      return { result: { account: account.id, outcome: 'not_authorized' } };
    }
    const outcome = await deps.refresher.refreshIfNeeded(account, {
      needValidUntil: nextRefresh + account.tokenMinLifetimeSeconds * 1000 + REFRESH_MARGIN_MS,
    });
    deps.tokens.remember(account.id, outcome.record);
    return { result: { account: account.id, outcome: outcome.refreshed ? 'refreshed' : 'still_valid' } };
  } catch (error) {
    if (isThrottled(error)) {
      return {
        result: { account: account.id, outcome: 'throttled', reason: 'Key Vault is over its request limit (429).' },
        retryAfterMs: error.retryAfterMs,
      };
    }
    await markStaleIfOld(deps, account, now);
    return { result: { account: account.id, outcome: 'failed', reason: (error as Error).message } };
  }
}

async function markStaleIfOld(deps: RefreshRunDeps, account: Account, now: Date): Promise<void> {
  const status = await deps.accountStatus.get(account.id);
  if (status && shouldMarkStale(status, now.getTime())) await deps.accountStates.markStale(account, status);
}
