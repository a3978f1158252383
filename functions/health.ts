import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';

/** Liveness only: no version, no account names, nothing an anonymous caller could use. */
export async function health(_request: HttpRequest): Promise<HttpResponseInit> {
  return { status: 200, jsonBody: { status: 'ok' }, headers: { 'Cache-Control': 'no-store' } };
}

app.http('health', { methods: ['GET'], authLevel: 'anonymous', route: 'health', handler: health });
