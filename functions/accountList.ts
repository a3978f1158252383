import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { loadAccountViews } from '../shared/admin/loadAccountViews';
import { accountViewSources, configProblem, getFreshApp } from '../shared/app';

/** The status page's data as JSON: `{ accounts: AccountView[] }`. */
export async function accountList(_request: HttpRequest): Promise<HttpResponseInit> {
  const problem = configProblem();
  if (problem) return problem;
  const accounts = await loadAccountViews(accountViewSources(await getFreshApp()));
  return { status: 200, jsonBody: { accounts }, headers: { 'Cache-Control': 'no-store' } };
}

app.http('accountList', { methods: ['GET'], authLevel: 'function', route: 'accounts', handler: accountList });
