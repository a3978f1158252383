import { need, type CallbackCheck } from './context';
import { failure } from './result';

/** Without a refresh token the app could send for an hour only: such an authorization is refused, not stored. */
export const refreshTokenPresent: CallbackCheck = (context) => {
  const account = need(context, 'account');
  const response = need(context, 'tokens');
  if (typeof response.refresh_token === 'string' && response.refresh_token !== '') return undefined;
  const hint =
    account.provider === 'google'
      ? "Google returns a refresh token only with access_type=offline and prompt=consent (this app sends both). Remove the app's access at https://myaccount.google.com/permissions, then start again."
      : account.provider === 'microsoft'
        ? 'Microsoft returns one only for the offline_access scope; check that the app registration does not block it.'
        : 'Check that the provider issues refresh tokens to this client (offline_access scope, refresh_token grant allowed).';
  return failure(
    'no_refresh_token',
    502,
    account,
    'The provider returned no refresh token, so the app could not keep sending after the first hour. Nothing was stored and the account is not ready.',
    hint,
  );
};
