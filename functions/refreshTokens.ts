import { app, type InvocationContext, type Timer } from '@azure/functions';
import { getFreshApp } from '../shared/app';
import { refreshDueAccounts } from '../shared/tokens/refreshDueAccounts';

/** A run taking longer than this is near host.json's 10-minute functionTimeout: the accounts at its end would be cut. */
const SLOW_RUN_MS = 8.5 * 60_000;

/**
 * Hourly by default (REFRESH_SCHEDULE): keeps every account's token valid whether it sends or not, then
 * publishes every account's allowed senders and state for the SMTP relay (the timer visits every account on
 * every run, so a configuration deployed since the last run reaches the relay within the hour).
 */
export async function refreshTokens(_timer: Timer, _context: InvocationContext): Promise<void> {
  const app = await getFreshApp();
  const started = Date.now();
  const results = await refreshDueAccounts(app);
  for (const result of results) app.log.info('token.refresh_run', { ...result });
  const outcomes: Record<string, number> = {};
  for (const { outcome } of results) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  const ms = Date.now() - started;
  // One line per run, so that capacity (duration) and Key Vault throttling are visible without counting.
  (ms > SLOW_RUN_MS ? app.log.warn : app.log.info)('token.refresh_run_done', { accounts: results.length, ms, ...outcomes });
  try {
    const accounts = await app.publishAllowedSenders();
    app.log.info('relay.senders_published', { accounts });
  } catch (error) {
    app.log.error('relay.senders_publish_failed', { error: (error as Error).message.split('\n')[0] });
  }
}

app.timer('refreshTokens', { schedule: '%REFRESH_SCHEDULE%', runOnStartup: false, handler: refreshTokens });
