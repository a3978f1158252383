import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { loadAccountView } from '../shared/admin/loadAccountViews';
import { accountViewSources, configProblem, getFreshApp } from '../shared/app';

/** One account's view as JSON, or 404 `{ error: 'unknown_account' }`. */
export async function accountDetail(request: HttpRequest): Promise<HttpResponseInit> {
  const problem = configProblem();
  if (problem) return problem;
  const runtime = await getFreshApp();
  const view = await loadAccountView(accountViewSources(runtime), request.params.id ?? '');
  if (!view)
    return {
      status: 404,
      jsonBody: { error: 'unknown_account', known: runtime.accounts.map((a) => a.id) },
      headers: { 'Cache-Control': 'no-store' },
    };
  return { status: 200, jsonBody: view, headers: { 'Cache-Control': 'no-store' } };
}

app.http('accountDetail', { methods: ['GET'], authLevel: 'function', route: 'accounts/{id}', handler: accountDetail });
