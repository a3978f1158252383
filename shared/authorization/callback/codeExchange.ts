import * as client from 'openid-client';
import type { Account } from '../../config';
import { classifyTokenEndpointError, providerErrorLabel, type TokenEndpointFailure } from '../../oauth/tokenEndpointErrors';
import { need, type CallbackCheck, type CallbackContext } from './context';
import { idTokenProblem } from './idToken';
import { failure, START_AGAIN, type AuthorizationFailure } from './result';

/**
 * The code is redeemed at the token endpoint with the PKCE verifier, and openid-client checks the state, the
 * id_token and its nonce. A refusal of the token endpoint is classified (tokenEndpointErrors.ts) for the page.
 */

export const codePresent: CallbackCheck = (context) =>
  context.query.get('code')
    ? undefined
    : failure('code_missing', 400, need(context, 'account'), 'The provider sent no authorization code.', START_AGAIN);

export const exchangeCode: CallbackCheck = async (context) => {
  const { runtime, query } = context;
  const account = need(context, 'account');
  const request = need(context, 'request');
  // The URL the provider redirected to, rebuilt from the stored redirect URI: openid-client derives the
  // redirect_uri it sends to the token endpoint from it, so the Host header plays no part.
  const currentUrl = new URL(request.redirectUri);
  for (const [key, value] of query) currentUrl.searchParams.append(key, value);
  try {
    const response = await client.authorizationCodeGrant(need(context, 'config'), currentUrl, {
      pkceCodeVerifier: need(context, 'verifier'),
      expectedState: need(context, 'state'),
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
    const claims = response.claims();
    if (!claims) return failure('id_token_invalid', 502, account, 'The provider returned no id_token.', START_AGAIN);
    context.tokens = response;
    context.claims = claims;
    return undefined;
  } catch (error) {
    const problem = idTokenProblem(error);
    if (problem) {
      runtime.log.warn('oauth.callback.id_token_rejected', { account: account.id, problem });
      return failure(
        'id_token_invalid',
        502,
        account,
        `The identity token from the provider was refused: ${problem}. Nothing was stored.`,
        START_AGAIN,
      );
    }
    const classified = classifyTokenEndpointError(error, { provider: account.provider, grant: 'authorization_code' });
    return tokenExchangeFailure(account, classified);
  }
};

/** Tokens we refuse to keep are revoked where the provider offers revocation (Google, most OIDC servers). */
export async function revokeObtainedTokens(context: CallbackContext): Promise<void> {
  const config = need(context, 'config');
  const response = need(context, 'tokens');
  if (!config.serverMetadata().revocation_endpoint) return;
  const token = response.refresh_token ?? response.access_token;
  await client
    .tokenRevocation(config, token)
    .catch((error: unknown) => context.runtime.log.warn('oauth.callback.revoke_failed', { error }));
}

function tokenExchangeFailure(account: Account, classified: TokenEndpointFailure): AuthorizationFailure {
  let message: string;
  let action: string;
  if (classified.kind === 'transient') {
    message = `The provider's token endpoint could not be reached or failed. ${classified.reason.replace(/ Trying again later\.$/, '')}`;
    action = `Nothing was stored. Try again in a moment: ${START_AGAIN}`;
  } else if (classified.kind === 'config') {
    message = classified.reason;
    action = `Fix the client credential or app registration of account "${account.id}" (${describeClientAuth(account)}), then start the authorization again.`;
  } else {
    message = classified.reason;
    action = START_AGAIN;
  }
  return {
    ok: false,
    code: 'token_exchange_failed',
    status: 502,
    account,
    message,
    action,
    providerError: providerErrorLabel(classified),
    tokenFailure: classified,
  };
}

function describeClientAuth(account: Account): string {
  const auth = account.clientAuth;
  switch (auth.type) {
    case 'secret':
      return `client secret in Key Vault secret "${auth.secretName}"; Microsoft: AADSTS7000215 means a wrong value (use the secret's Value, not its ID), AADSTS7000222 an expired secret`;
    case 'certificate':
      return `certificate key in Key Vault secret "${auth.keySecretName}", thumbprint ${auth.thumbprint}`;
    case 'managed_identity':
      return 'managed identity as federated credential: check the federated identity credential on the app registration';
    case 'none':
      return 'public client';
  }
}
