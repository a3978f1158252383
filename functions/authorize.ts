import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { startFailurePage, unexpectedErrorPage } from '../shared/authorization/authorizationPages';
import { authCookieHeader, browserSecretsFrom } from '../shared/authorization/browserCookie';
import { startAuthorization } from '../shared/authorization/startAuthorization';
import { appLogger, getFreshApp } from '../shared/app';
import { htmlResponse } from '../shared/web/html';
import { signedInAdmin } from '../shared/web/signedInAdmin';

/** Starts an admin authorization: binds a single-use request to this browser and redirects to the provider. */
export async function authorize(request: HttpRequest): Promise<HttpResponseInit> {
  const accountId = (request.params.id ?? '').slice(0, 64);
  try {
    const runtime = await getFreshApp();
    // Created a moment ago on another instance: ask the table before answering "unknown account".
    if (!runtime.directory.entry(accountId)) await runtime.directory.refresh();
    const existing = browserSecretsFrom(request.headers.get('cookie'), runtime.publicBaseUrl)[0];
    const started = await startAuthorization(runtime, accountId, existing, signedInAdmin(request.headers, runtime.env));
    if (!started.ok) return htmlResponse(started.status, startFailurePage(started));
    return {
      status: 302,
      headers: {
        Location: started.redirectTo.href,
        'Set-Cookie': authCookieHeader(runtime.publicBaseUrl, started.browserSecret),
        'Cache-Control': 'no-store',
        // This URL may carry the function key (?code=...): the provider must not see it as Referer.
        'Referrer-Policy': 'no-referrer',
      },
    };
  } catch (error) {
    appLogger().error('oauth.authorize.failed', { account: accountId, error });
    return htmlResponse(500, unexpectedErrorPage());
  }
}

app.http('authorize', { methods: ['GET'], authLevel: 'function', route: 'accounts/{id}/authorize', handler: authorize });
