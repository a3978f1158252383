import type { CallbackDeps } from './authorizationContext';
import { accountUnchanged } from './callback/account';
import { sameBrowser, verifierOpens } from './callback/browser';
import { codePresent, exchangeCode, revokeObtainedTokens } from './callback/codeExchange';
import type { CallbackCheck, CallbackContext, CallbackInput } from './callback/context';
import { issuerMatches } from './callback/issuer';
import { providerReachable } from './callback/provider';
import { noProviderError } from './callback/providerError';
import { refreshTokenPresent } from './callback/refreshToken';
import type { AuthorizationFailureCode, AuthorizationResult } from './callback/result';
import { scopesGranted } from './callback/scopes';
import { consumeState, stateIsKnown, stateIsPresent, stateIsUnexpired, stateIsUnused } from './callback/state';
import { storeAuthorization } from './callback/store';
import { rightUser } from './callback/user';

export type { CallbackInput } from './callback/context';
export type {
  AuthorizationFailure,
  AuthorizationFailureCode,
  AuthorizationResult,
  AuthorizationSuccess,
} from './callback/result';

/**
 * Finishes an authorization at the callback. The checks below run in this order, each in its own file under
 * callback/; the first that refuses ends the flow with a typed failure, and only a response that passes all of
 * them reaches the token store. Once tokens were obtained (after `exchangeCode`), a refusal revokes them.
 */
const CALLBACK_CHECKS: ReadonlyArray<{ check: CallbackCheck; refuses: readonly AuthorizationFailureCode[] }> = [
  // state.ts: the response answers an authorization started here, unused and recent
  { check: stateIsPresent, refuses: ['state_missing', 'admin_consent_returned'] },
  { check: stateIsKnown, refuses: ['state_unknown'] },
  { check: stateIsUnused, refuses: ['state_used'] },
  { check: stateIsUnexpired, refuses: ['state_expired'] },
  // browser.ts: it arrives in the browser that started it
  { check: sameBrowser, refuses: ['browser_mismatch'] },
  // account.ts: the account is still the one it was started for
  { check: accountUnchanged, refuses: ['account_changed'] },
  // state.ts: from here on the response is consumed, whatever the outcome (a concurrent use may have won)
  { check: consumeState, refuses: ['state_used'] },
  // provider.ts: the provider's metadata, for the checks that follow
  { check: providerReachable, refuses: ['token_exchange_failed'] },
  // issuer.ts: RFC 9207, before anything of the response is believed
  { check: issuerMatches, refuses: ['issuer_mismatch'] },
  // providerError.ts: an error instead of a code
  { check: noProviderError, refuses: ['consent_required', 'provider_error'] },
  // codeExchange.ts, browser.ts, idToken.ts: the code is redeemed with the verifier only this browser can open
  { check: codePresent, refuses: ['code_missing'] },
  { check: verifierOpens, refuses: ['browser_mismatch'] },
  { check: exchangeCode, refuses: ['token_exchange_failed', 'id_token_invalid'] },
  // user.ts, refreshToken.ts, scopes.ts: what was obtained is what the account needs (a refusal revokes it)
  { check: rightUser, refuses: ['id_token_invalid', 'wrong_user'] },
  { check: refreshTokenPresent, refuses: ['no_refresh_token'] },
  { check: scopesGranted, refuses: ['scope_missing'] },
];

export async function completeAuthorization(runtime: CallbackDeps, input: CallbackInput): Promise<AuthorizationResult> {
  const result = await runChecks({ runtime, query: input.query, browserSecrets: input.browserSecrets });
  if (result.ok) {
    runtime.log.info('oauth.callback.authorized', {
      account: result.account.id,
      authorizedUser: result.authorizedUser,
      scopes: result.scopes,
      tokenExpiresAt: result.tokenExpiresAt.toISOString(),
    });
  } else {
    runtime.log.warn('oauth.callback.refused', {
      reason: result.code,
      ...(result.account ? { account: result.account.id } : {}),
      ...(result.providerError ? { providerError: result.providerError } : {}),
      ...(result.tokenFailure ? { tokenFailureKind: result.tokenFailure.kind } : {}),
    });
  }
  return result;
}

async function runChecks(context: CallbackContext): Promise<AuthorizationResult> {
  for (const { check } of CALLBACK_CHECKS) {
    const refused = await check(context);
    if (refused) {
      if (context.tokens) await revokeObtainedTokens(context);
      return refused;
    }
  }
  return storeAuthorization(context);
}
