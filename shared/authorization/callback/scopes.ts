import { need, type CallbackCheck } from './context';
import { failure, START_AGAIN } from './result';

/** Scopes that are not the permission to send mail, so their absence from the grant does not matter. */
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access', 'address', 'phone']);

/** The mail scope must have been granted: Google's consent screen lets the user untick it. */
export const scopesGranted: CallbackCheck = (context) => {
  const account = need(context, 'account');
  const response = need(context, 'tokens');
  if (typeof response.scope !== 'string' || response.scope.trim() === '') return undefined; // RFC 6749 5.1: as requested
  const granted = new Set(response.scope.split(/\s+/).map((s) => s.toLowerCase()));
  const missing = account.oauth.scopes.filter(
    (scope) => !OIDC_SCOPES.has(scope.toLowerCase()) && !granted.has(scope.toLowerCase()),
  );
  if (missing.length === 0) return undefined;
  return failure(
    'scope_missing',
    403,
    account,
    `The permission to send mail was not granted (missing: ${missing.join(', ')}). Nothing was stored.`,
    `${START_AGAIN} On the consent page, leave every requested permission ticked.`,
  );
};
