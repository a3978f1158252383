import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { handleAccountChange } from '../shared/admin/accountChange';
import { getFreshApp } from '../shared/app';

/** Replaces a run-time account's configuration, or pauses/resumes it with {"state": "paused" | "active"}. */
export async function accountUpdate(request: HttpRequest): Promise<HttpResponseInit> {
  return handleAccountChange(await getFreshApp(), request, 'PUT');
}

app.http('accountUpdate', { methods: ['PUT'], authLevel: 'function', route: 'accounts/{id}', handler: accountUpdate });
