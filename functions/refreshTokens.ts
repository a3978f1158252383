import { app, type InvocationContext, type Timer } from '@azure/functions';
import { getApp } from '../shared/app';
import { refreshDueAccounts } from '../shared/tokens/refreshDueAccounts';

/**
 * Hourly by default (REFRESH_SCHEDULE): keeps every account's token valid whether it sends or not, then
 * publishes every account's allowed senders and state for the SMTP relay (the timer visits every account on
 * every run, so a configuration deployed since the last run reaches the relay within the hour).
 */
export async function refreshTokens(_timer: Timer, _context: InvocationContext): Promise<void> {
  const app = getApp();
  const results = await refreshDueAccounts(app);
  for (const result of results) app.log.info('token.refresh_run', { ...result });
  try {
    const accounts = await app.publishAllowedSenders();
    app.log.info('relay.senders_published', { accounts });
  } catch (error) {
    app.log.error('relay.senders_publish_failed', { error: (error as Error).message.split('\n')[0] });
  }
}

app.timer('refreshTokens', { schedule: '%REFRESH_SCHEDULE%', runOnStartup: false, handler: refreshTokens });
