import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { handleAccountChange } from '../shared/admin/accountChange';
import { getFreshApp } from '../shared/app';

/** Deletes a run-time account: revokes its grant where the provider can, deletes its secrets, keeps its ledger history. */
export async function accountDelete(request: HttpRequest): Promise<HttpResponseInit> {
  return handleAccountChange(await getFreshApp(), request, 'DELETE');
}

app.http('accountDelete', { methods: ['DELETE'], authLevel: 'function', route: 'accounts/{id}', handler: accountDelete });
