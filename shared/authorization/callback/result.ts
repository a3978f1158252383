import type { Account } from '../../config';
import type { TokenEndpointFailure } from '../../oauth/tokenEndpointErrors';

/**
 * What the callback ends with. Every protocol check ends the flow with a typed failure; only a response that
 * passes all of them reaches the token store.
 */
export type AuthorizationFailureCode =
  | 'state_missing'
  | 'state_unknown'
  | 'state_used'
  | 'state_expired'
  | 'browser_mismatch'
  | 'account_changed'
  | 'issuer_mismatch'
  | 'provider_error'
  | 'consent_required'
  | 'code_missing'
  | 'token_exchange_failed'
  | 'id_token_invalid'
  | 'wrong_user'
  | 'no_refresh_token'
  | 'scope_missing'
  | 'storage_failed'
  | 'admin_consent_returned';

export interface AuthorizationFailure {
  ok: false;
  code: AuthorizationFailureCode;
  /** HTTP status of the page. */
  status: number;
  /** What went wrong, for a person. Built from our own words and checked values only. */
  message: string;
  /** What to do next. */
  action: string;
  account?: Account;
  /** The provider's error code(s), e.g. `access_denied AADSTS65004` or `invalid_grant`. */
  providerError?: string;
  /** The provider's error_description: untrusted text, shown escaped, never logged. */
  providerDescription?: string;
  /** Microsoft: where a tenant administrator grants consent for the whole organization. */
  adminConsentUrl?: string;
  tokenFailure?: TokenEndpointFailure;
}

export interface AuthorizationSuccess {
  ok: true;
  account: Account;
  authorizedUser: string;
  authorizedUserId: string;
  authorizedAt: Date;
  scopes: string;
  tokenExpiresAt: Date;
}

export type AuthorizationResult = AuthorizationSuccess | AuthorizationFailure;

export const START_AGAIN = 'Start the authorization again from the admin page (or the authorize link you used).';

export function failure(
  code: AuthorizationFailureCode,
  status: number,
  account: Account | undefined,
  message: string,
  action: string,
): AuthorizationFailure {
  return { ok: false, code, status, message, action, ...(account ? { account } : {}) };
}
