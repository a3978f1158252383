import { html, page, type SafeHtml } from '../web/html';
import type {
  AuthorizationFailure,
  AuthorizationFailureCode,
  AuthorizationResult,
  AuthorizationSuccess,
} from './completeAuthorization';
import type { AuthorizationNotStarted } from './startAuthorization';
import { STATUS_PAGE_PATH } from '../web/routes';
import { formatUtc } from '../web/timeText';

/** The pages an admin sees around an authorization. Values are escaped by `html`; tokens and codes never reach here. */

const TITLES: Record<AuthorizationFailureCode, string> = {
  state_missing: 'Not an authorization response',
  state_unknown: 'Unknown authorization',
  state_used: 'This authorization was already used',
  state_expired: 'The authorization expired',
  browser_mismatch: 'Started in another browser',
  account_changed: 'The account configuration changed',
  issuer_mismatch: 'Response from an unexpected provider',
  provider_error: 'The provider refused the authorization',
  consent_required: 'Administrator consent needed',
  code_missing: 'No authorization code',
  token_exchange_failed: 'Could not obtain the tokens',
  id_token_invalid: 'Identity token refused',
  wrong_user: 'Wrong user signed in',
  no_refresh_token: 'No refresh token',
  scope_missing: 'Permission to send mail not granted',
  storage_failed: 'The tokens could not be saved',
  admin_consent_returned: 'Administrator consent',
};

/** Every page of the flow leads back to where an admin starts (the key, if any, is the admin's to add). */
const BACK = html`<p><a href="${STATUS_PAGE_PATH}">Back to the status page</a></p>`;

export function callbackPage(result: AuthorizationResult): SafeHtml {
  return result.ok ? successPage(result) : failurePage(result);
}

function successPage(result: AuthorizationSuccess): SafeHtml {
  const { account } = result;
  return page({
    title: 'Mailbox authorized',
    tone: 'ok',
    body: html` <p>
        Account <strong>${account.displayName}</strong> (<code>${account.id}</code>) can now send mail as
        <strong>${account.user}</strong>.
      </p>
      <dl>
        <dt>Signed in as</dt>
        <dd>${result.authorizedUser}</dd>
        <dt>Account</dt>
        <dd>${account.id}</dd>
        <dt>Provider</dt>
        <dd>${account.provider}</dd>
        <dt>Permissions</dt>
        <dd>${result.scopes}</dd>
        <dt>Access token valid until</dt>
        <dd>${formatUtc(result.tokenExpiresAt.toISOString())}</dd>
        <dt>Authorized at</dt>
        <dd>${formatUtc(result.authorizedAt.toISOString())}</dd>
      </dl>
      <p>
        The tokens are stored in Key Vault. The app renews the access token by itself; nothing else is needed and you can close
        this window.
      </p>
      <p>Next: send a test message from the status page to check that the mailbox may send through SMTP.</p>
      ${BACK}`,
  });
}

function failurePage(result: AuthorizationFailure): SafeHtml {
  const account = result.account;
  return page({
    title: TITLES[result.code],
    tone: result.code === 'admin_consent_returned' && result.status === 200 ? 'ok' : 'fail',
    body: html` <p>${result.message}</p>
      <p><strong>What to do:</strong> ${result.action}</p>
      ${result.adminConsentUrl ? html`<p><a class="button" href="${result.adminConsentUrl}">Open the admin consent page</a></p>` : ''}
      <dl>
        ${
          account
            ? html`<dt>Account</dt>
                <dd>${account.displayName} (${account.id}), mailbox ${account.user}</dd>`
            : ''
        }
        ${
          result.providerError
            ? html`<dt>Provider error</dt>
                <dd><code>${result.providerError}</code></dd>`
            : ''
        }
        ${
          result.providerDescription
            ? html`<dt>Provider's message</dt>
                <dd class="mono">${result.providerDescription}</dd>`
            : ''
        }
        <dt>Reference</dt>
        <dd><code>${result.code}</code></dd>
      </dl>
      ${BACK}`,
  });
}

export function startFailurePage(result: AuthorizationNotStarted): SafeHtml {
  const titles: Record<AuthorizationNotStarted['code'], string> = {
    unknown_account: 'Unknown account',
    not_interactive: 'Nothing to authorize',
    provider_unavailable: 'The provider is unreachable',
    config_error: 'The account is misconfigured',
  };
  return page({
    title: titles[result.code],
    tone: result.code === 'not_interactive' ? 'ok' : 'fail',
    body: html`<p>${result.message}</p>
      ${result.code === 'provider_unavailable' ? html`<p><strong>What to do:</strong> try again in a moment.</p>` : ''}
      <p class="note">Reference: <code>${result.code}</code></p>
      ${BACK}`,
  });
}

export function unexpectedErrorPage(): SafeHtml {
  return page({
    title: 'Something went wrong',
    tone: 'fail',
    body: html`<p>The app could not process this request. The details are in the app's logs.</p>
      <p>
        <strong>What to do:</strong> start the authorization again in a moment. If it keeps failing, check that the app can reach
        its storage account and Key Vault.
      </p>
      ${BACK}`,
  });
}
