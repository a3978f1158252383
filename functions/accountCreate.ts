import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { handleAccountChange } from '../shared/admin/accountChange';
import { getFreshApp } from '../shared/app';

/** Creates a run-time account (JSON), or applies one of the status page's account forms (create, update, pause, resume, delete). */
export async function accountCreate(request: HttpRequest): Promise<HttpResponseInit> {
  return handleAccountChange(await getFreshApp(), request, 'POST');
}

app.http('accountCreate', { methods: ['POST'], authLevel: 'function', route: 'accounts/{id?}', handler: accountCreate });
