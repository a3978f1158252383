import { toTokenSet } from '../tokenSet';
import { need, type CallbackContext } from './context';
import { failure, START_AGAIN, type AuthorizationResult } from './result';

/** After every check passed: the tokens go to the token store and the account is marked ready. */
export async function storeAuthorization(context: CallbackContext): Promise<AuthorizationResult> {
  const { runtime } = context;
  const account = need(context, 'account');
  const identity = need(context, 'identity');
  const authorizedAt = new Date();
  const tokens = toTokenSet(need(context, 'tokens'), authorizedAt.getTime());
  const scopes = tokens.scope ?? account.oauth.scopes.join(' ');
  try {
    await runtime.tokenStore.save(account.id, tokens);
    await runtime.accountStatus.patch(account.id, {
      state: 'ready',
      authorizedUser: identity.authorizedUser,
      authorizedUserId: identity.authorizedUserId,
      authorizedAt: authorizedAt.toISOString(),
      scopes,
      tokenExpiresAt: new Date(tokens.expiresAt).toISOString(),
      lastError: null,
      lastErrorCode: null,
      providerError: null,
      consecutiveFailures: 0,
      alertedIncident: null,
    });
  } catch (error) {
    runtime.log.error('oauth.callback.store_failed', { account: account.id, error });
    return failure(
      'storage_failed',
      500,
      account,
      'The sign-in worked, but the tokens could not be saved (Key Vault or table storage failed).',
      `Check the app's access to Key Vault and storage, then: ${START_AGAIN}`,
    );
  }
  return {
    ok: true,
    account,
    authorizedUser: identity.authorizedUser,
    authorizedUserId: identity.authorizedUserId,
    authorizedAt,
    scopes,
    tokenExpiresAt: new Date(tokens.expiresAt),
  };
}
