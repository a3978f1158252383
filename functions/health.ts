import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { getApp } from '../shared/app';
import { ConfigError } from '../shared/errors';

/**
 * Liveness only: no version, no account names, nothing an anonymous caller could use. `degraded` (503) when
 * the app cannot even be built from its settings (e.g. an invalid MAIL_ACCOUNTS); the status page says why.
 */
export async function health(_request: HttpRequest): Promise<HttpResponseInit> {
  try {
    getApp();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { status: 503, jsonBody: { status: 'degraded' }, headers: { 'Cache-Control': 'no-store' } };
  }
  return { status: 200, jsonBody: { status: 'ok' }, headers: { 'Cache-Control': 'no-store' } };
}

app.http('health', { methods: ['GET'], authLevel: 'anonymous', route: 'health', handler: health });
