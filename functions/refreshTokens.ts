import { app, type InvocationContext, type Timer } from '@azure/functions';
import { getFreshApp } from '../shared/app';
import { refreshDueAccounts } from '../shared/tokens/refreshDueAccounts';

/** Hourly by default (REFRESH_SCHEDULE): keeps every account's token valid whether it sends or not. */
export async function refreshTokens(_timer: Timer, _context: InvocationContext): Promise<void> {
  const app = await getFreshApp();
  const results = await refreshDueAccounts(app);
  for (const result of results) app.log.info('token.refresh_run', { ...result });
}

app.timer('refreshTokens', { schedule: '%REFRESH_SCHEDULE%', runOnStartup: false, handler: refreshTokens });
