import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { callbackPage, unexpectedErrorPage } from '../shared/authorization/authorizationPages';
import { browserSecretsFrom } from '../shared/authorization/browserCookie';
import { completeAuthorization } from '../shared/authorization/completeAuthorization';
import { appLogger, getFreshApp } from '../shared/app';
import { htmlResponse } from '../shared/web/html';

/**
 * The provider's redirect back. Anonymous (the provider cannot send a key), so it trusts nothing in the request
 * but what the checks in completeAuthorization establish: state, browser binding, issuer, PKCE, id_token.
 */
export async function oauthCallback(request: HttpRequest): Promise<HttpResponseInit> {
  try {
    const runtime = await getFreshApp();
    const result = await completeAuthorization(runtime, {
      query: request.query,
      browserSecrets: browserSecretsFrom(request.headers.get('cookie'), runtime.publicBaseUrl),
    });
    return htmlResponse(result.ok ? 200 : result.status, callbackPage(result));
  } catch (error) {
    appLogger().error('oauth.callback.failed', { error });
    return htmlResponse(500, unexpectedErrorPage());
  }
}

app.http('oauthCallback', { methods: ['GET'], authLevel: 'anonymous', route: 'oauth/callback', handler: oauthCallback });
