import { app, type InvocationContext, type Timer } from '@azure/functions';
import { getRuntime } from '../shared/runtime';
import { refreshDueAccounts } from '../shared/tokens/refreshDueAccounts';

/** Hourly by default (REFRESH_SCHEDULE): keeps every account's token valid whether it sends or not. */
export async function refreshTokens(_timer: Timer, _context: InvocationContext): Promise<void> {
  const runtime = getRuntime();
  const results = await refreshDueAccounts(runtime);
  for (const result of results) runtime.log.info('token.refresh_run', { ...result });
}

app.timer('refreshTokens', { schedule: '%REFRESH_SCHEDULE%', runOnStartup: false, handler: refreshTokens });
