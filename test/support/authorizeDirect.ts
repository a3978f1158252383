/**
 * Authorizes an account against local/peers/identity/identityProvider.ts without the app's HTTP handlers: the
 * admin's part of the authorization code flow done with openid-client (discovery, PKCE, state, nonce), the user's
 * part with driveLogin, and the outcome stored the way the callback stores it (token store, then the status row).
 *
 * `authorizeViaCallback` does the same through the real `authorize` and `oauthCallback` functions, for tests
 * that want the app's own path (the app must be installed with setApp).
 */
import * as client from 'openid-client';
import { authorize } from '../../functions/authorize';
import { oauthCallback } from '../../functions/oauthCallback';
import type { Account } from '../../shared/config';
import { toTokenSet } from '../../shared/oauth/tokenSet';
import type { App } from '../../shared/app';
import type { TokenSet } from '../../shared/tokens/tokenStore';
import { HttpRequest } from './azureFunctions';
import { driveLogin, type LoginUser } from './driveLogin';

export interface DirectAuthorization {
  tokens: TokenSet & { refreshToken: string };
  /** The id_token's email claim. */
  authorizedUser: string;
}

export async function authorizeDirect(
  runtime: App,
  account: Account,
  user: LoginUser,
  options: { clientSecret: string },
): Promise<DirectAuthorization> {
  const issuer = new URL(account.oauth.issuer);
  const config = await client.discovery(
    issuer,
    account.clientId,
    options.clientSecret,
    client.ClientSecretPost(options.clientSecret),
    {
      execute: issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [],
    },
  );
  const redirectUri = `${runtime.publicBaseUrl}/api/oauth/callback`;
  const state = client.randomState();
  const nonce = client.randomNonce();
  const verifier = client.randomPKCECodeVerifier();
  const authorizeUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: account.oauth.scopes.join(' '),
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    login_hint: account.user,
  });
  const { callbackUrl } = await driveLogin(authorizeUrl.href, user);
  const response = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  if (!response.refresh_token) throw new Error(`authorizeDirect: the provider returned no refresh token for ${account.id}`);
  const authorizedUser = String(response.claims()?.email ?? '');
  if (authorizedUser.toLowerCase() !== account.user.toLowerCase()) {
    throw new Error(`authorizeDirect: signed in as ${authorizedUser}, account ${account.id} is ${account.user}`);
  }
  const authorizedAt = new Date();
  const tokens = toTokenSet(response, authorizedAt.getTime());
  await runtime.tokenStore.save(account.id, tokens);
  await runtime.accountStates.markAuthorized(account, {
    authorizedUser,
    authorizedUserId: String(response.claims()?.sub ?? ''),
    scopes: tokens.scope ?? account.oauth.scopes.join(' '),
    tokenExpiresAt: tokens.expiresAt,
    at: authorizedAt,
  });
  return { tokens: { ...tokens, refreshToken: response.refresh_token }, authorizedUser };
}

/**
 * The admin's browser through the app: GET /api/accounts/{id}/authorize, sign-in and consent at the provider,
 * then the provider's redirect to /api/oauth/callback with the binding cookie. Returns the callback page.
 */
export async function authorizeViaCallback(
  runtime: App,
  accountId: string,
  user: LoginUser,
): Promise<{ status: number; body: string }> {
  const started = await authorize(
    new HttpRequest({
      method: 'GET',
      url: `${runtime.publicBaseUrl}/api/accounts/${encodeURIComponent(accountId)}/authorize`,
      params: { id: accountId },
    }),
  );
  const headers = new Headers(started.headers as Record<string, string>);
  const location = headers.get('location');
  if (started.status !== 302 || !location) {
    throw new Error(`authorize answered ${started.status}: ${typeof started.body === 'string' ? started.body : ''}`);
  }
  const cookie = (headers.get('set-cookie') ?? '').split(';')[0]!;
  const { callbackUrl } = await driveLogin(location, user);
  const page = await oauthCallback(new HttpRequest({ method: 'GET', url: callbackUrl, headers: { cookie } }));
  return { status: page.status ?? 200, body: typeof page.body === 'string' ? page.body : '' };
}
