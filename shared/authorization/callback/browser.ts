import type { Account } from '../../config';
import { browserMatches, openVerifier } from '../authRequests';
import { need, type CallbackCheck } from './context';
import { failure, START_AGAIN, type AuthorizationFailure } from './result';

/**
 * The response arrives in the browser that started the authorization: one of its binding cookies matches the
 * request, and that cookie's secret opens the stored PKCE verifier.
 */

export const sameBrowser: CallbackCheck = (context) => {
  const request = need(context, 'request');
  const secret = context.browserSecrets.find((candidate) => browserMatches(request, candidate));
  if (secret) {
    context.browserSecret = secret;
    return undefined;
  }
  return browserMismatch(undefined, context.browserSecrets.length > 0);
};

export const verifierOpens: CallbackCheck = (context) => {
  const verifier = openVerifier(need(context, 'request'), need(context, 'browserSecret'));
  if (verifier === undefined) return browserMismatch(need(context, 'account'), true);
  context.verifier = verifier;
  return undefined;
};

function browserMismatch(account: Account | undefined, hadCookie: boolean): AuthorizationFailure {
  return failure(
    'browser_mismatch',
    403,
    account,
    hadCookie
      ? 'This authorization was started in another browser (or another browser profile). It can only be finished in the browser that started it.'
      : 'This browser did not start this authorization (it has no authorization cookie from this app). It can only be finished in the browser that started it; cookies must be allowed for this site.',
    `${START_AGAIN} Open the authorize link and finish the sign-in in the same browser window.`,
  );
}
