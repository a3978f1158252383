import type { Account } from '../../config';
import { aadstsCodes } from '../../oauth/tokenEndpointErrors';
import { need, type CallbackCheck } from './context';
import { START_AGAIN, type AuthorizationFailure } from './result';

/**
 * The provider answered with an error instead of a code (RFC 6749 4.1.2.1). Missing consent gets its own page,
 * with Microsoft's admin consent link; the other errors are explained from the table below.
 */

/** AADSTS codes that mean "an administrator must consent": 65001, 90094, 90095, 90008. */
const CONSENT_CODES = new Set([65001, 90094, 90095, 90008]);

/** What each OAuth `error` of an authorization response means for the admin: [message, action]. */
function explanations(account: Account): Record<string, [string, string]> {
  return {
    access_denied: [
      'The sign-in was cancelled, or the permission to send mail was not granted.',
      `${START_AGAIN} Sign in as ${account.user} and accept the requested permissions.`,
    ],
    interaction_required: ['The provider needs the user to interact with the sign-in page.', START_AGAIN],
    login_required: ['The provider needs the user to sign in.', START_AGAIN],
    temporarily_unavailable: ['The provider is temporarily unavailable.', `Wait a moment, then: ${START_AGAIN}`],
    server_error: ['The provider had an internal error.', `Wait a moment, then: ${START_AGAIN}`],
    admin_policy_enforced: [
      'A Google Workspace policy blocks this app.',
      'Ask the Workspace administrator to trust the app (Security > API controls), then start again.',
    ],
    org_internal: [
      'The OAuth app is limited to users of its own organization.',
      `Sign in with an account of that organization (${account.user}).`,
    ],
  };
}

const UNKNOWN_ERROR: [string, string] = [
  'The provider refused the authorization request.',
  'Check the app registration (redirect URI, permissions, client ID) and the account settings, then start again.',
];

export const noProviderError: CallbackCheck = (context) => {
  const { query } = context;
  const error = query.get('error');
  if (error === null) return undefined;
  const account = need(context, 'account');
  const codes = aadstsCodes(query.get('error_description'));
  const fields = providerErrorFields(query);
  if (error === 'consent_required' || codes.some((code) => CONSENT_CODES.has(code))) {
    const adminConsentUrl =
      account.provider === 'microsoft' && account.tenantId
        ? `https://login.microsoftonline.com/${encodeURIComponent(account.tenantId)}/adminconsent?client_id=${encodeURIComponent(account.clientId)}`
        : undefined;
    return {
      ok: false,
      code: 'consent_required',
      status: 403,
      account,
      message:
        'The app needs consent for the permission to send mail, and this user may not give it: the organization requires an administrator to approve the app.',
      action: adminConsentUrl
        ? 'Ask a tenant administrator to open the admin consent link below and accept, then start the authorization again.'
        : 'Ask an administrator of the provider to approve the app for the organization, then start the authorization again.',
      ...fields,
      ...(adminConsentUrl ? { adminConsentUrl } : {}),
    };
  }
  // Own keys only: the provider's `error` is attacker-chosen (`constructor`, `__proto__`).
  const known = explanations(account);
  const [message, action] = (Object.hasOwn(known, error) ? known[error] : undefined) ?? UNKNOWN_ERROR;
  return { ok: false, code: 'provider_error', status: 400, account, message, action, ...fields };
};

/** The provider's `error` (with the AADSTS codes of its description) and the description, clipped, for the page. */
export function providerErrorFields(query: URLSearchParams): Pick<AuthorizationFailure, 'providerError' | 'providerDescription'> {
  const error = query.get('error');
  const description = query.get('error_description');
  const codes = aadstsCodes(description).map((code) => `AADSTS${code}`);
  return {
    ...(error ? { providerError: [clip(error, 64), ...codes].join(' ') } : {}),
    ...(description ? { providerDescription: clip(description, 600) } : {}),
  };
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
