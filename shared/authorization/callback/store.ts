import { graphSignInScopes } from '../../oauth/graphToken';
import { toTokenSet } from '../../oauth/tokenSet';
import { need, type CallbackContext } from './context';
import { failure, START_AGAIN, type AuthorizationResult } from './result';

/** How long the callback waits for a running refresh of the account to finish. */
const STORE_WAIT_MS = 30_000;

/** After every check passed: the tokens go to the token store and the account is marked ready. */
export async function storeAuthorization(context: CallbackContext): Promise<AuthorizationResult> {
  const { runtime } = context;
  const account = need(context, 'account');
  const identity = need(context, 'identity');
  const request = need(context, 'request');
  const authorizedAt = new Date();
  const tokens = toTokenSet(need(context, 'tokens'), authorizedAt.getTime());
  // Microsoft's token response names only the first resource's scopes. Its consent covers every requested one or
  // the sign-in fails, so the Graph scope asked for at sign-in was granted too (graphConsentMissing reads this).
  const scopes = [tokens.scope ?? account.oauth.scopes.join(' '), ...graphSignInScopes(account)].join(' ');
  try {
    // Under the refresh lease: a refresh of the old grant finishing now would overwrite the new tokens with
    // the old grant's rotated ones.
    const stored = await runtime.refreshLease.withLease(account.id, STORE_WAIT_MS, async () => {
      await runtime.tokenStore.save(account.id, tokens);
      await runtime.accountStates.markAuthorized(account, {
        authorizedUser: identity.authorizedUser,
        authorizedUserId: identity.authorizedUserId,
        scopes,
        tokenExpiresAt: tokens.expiresAt,
        at: authorizedAt,
        ...(request.startedBy ? { authorizedBy: request.startedBy } : {}),
      });
      return true;
    });
    if (!stored) throw new Error(`the account's refresh lease stayed taken for ${STORE_WAIT_MS / 1000} s`);
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
