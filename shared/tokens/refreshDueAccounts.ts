import { shouldMarkStale } from '../accounts/accountRules';
import type { AccountStatusTable } from '../accounts/accountStatusTable';
import type { AccountStateWriter } from '../accounts/accountStateWriter';
import type { Account } from '../config/account';
import type { Env } from '../settings';
import { isThrottled } from '../storage/secretStore';
import { nextRunAfter, refreshConcurrency, refreshSchedule, refreshSpreadMs } from './refreshSchedule';
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

export interface RefreshRunOptions {
  clock?: RefreshRunClock;
  /** Refreshes in flight at once (default: REFRESH_CONCURRENCY, 8). */
  maxInFlight?: number;
}

/**
 * At most this many refreshes start per second, however the accounts are spread: with a revoking provider each
 * is a Key Vault create, and 20 a second is two thirds of its 300 per 10 seconds, leaving room for
 * authorizations and the refreshes of the send path. Key Vault's other limit (4,000 per 10 s) is far: a refresh
 * reads three secrets.
 */
export const MAX_STARTS_PER_SECOND = 20;

const realClock: RefreshRunClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * The timer's work: every account whose token would not outlive its next refresh (plus margin) is refreshed now,
 * whether it sends or not, so that quiet mailboxes do not expire (Microsoft: 90 days unused). Accounts waiting
 * for an admin are left alone: their grant is gone and asking again would only repeat the error.
 *
 * The accounts are spread over a window (refreshSpread.ts), each at the same offset every run, and never start
 * faster than MAX_STARTS_PER_SECOND, so Key Vault sees an even trickle and never a burst. A 429 from it holds
 * the next start back by its Retry-After; the run then goes on with the next account.
 */
export async function refreshDueAccounts(
  deps: RefreshRunDeps,
  now = new Date(),
  options: RefreshRunOptions = {},
): Promise<RefreshRunResult[]> {
  const clock = options.clock ?? realClock;
  const maxInFlight = options.maxInFlight ?? refreshConcurrency(deps.env);
  const nextRun = nextRunAfter(refreshSchedule(deps.env), now);
  const windowMs = spreadWindowMs(deps.accounts.length, refreshSpreadMs(deps.env), nextRun.getTime() - now.getTime());
  const plan = planRefreshes(deps.accounts, (a) => a.id, windowMs);
  const results: RefreshRunResult[] = new Array(plan.length);
  const inFlight = new Set<Promise<void>>();
  const start = clock.now();
  let notBefore = start;
  for (const [index, { item: account, offsetMs }] of plan.entries()) {
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    const wait = Math.max(start + offsetMs, notBefore) - clock.now();
    if (wait > 0) await clock.sleep(wait);
    notBefore = clock.now() + 1000 / MAX_STARTS_PER_SECOND;
    // The account comes round again at the same offset after the next run starts.
    const task = refreshOne(deps, account, nextRun.getTime() + offsetMs, now)
      // Table trouble (status, stale mark) fails this account only; the others still get their turn.
      .catch((error: unknown) => ({
        result: { account: account.id, outcome: 'failed' as const, reason: (error as Error).message },
        retryAfterMs: undefined,
      }))
      .then(({ result, retryAfterMs }) => {
        results[index] = result;
        if (retryAfterMs !== undefined) notBefore = Math.max(notBefore, clock.now() + retryAfterMs);
      })
      .finally(() => inFlight.delete(task));
    inFlight.add(task);
  }
  await Promise.all(inFlight);
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
