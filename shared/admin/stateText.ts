import type { Account } from '../config';
import type { AccountState, AccountStatus } from '../accounts/accountStatus';
import { lastSuccess } from '../accounts/accountRules';
import { formatUtc, relativeTime } from '../web/timeText';

/** How a state is shown: the tone picks the label's color, the label says it in words (never color alone). */
export type StateTone = 'ok' | 'warn' | 'bad' | 'idle';

export const STATE_LABELS: Readonly<Record<AccountState, { label: string; tone: StateTone }>> = {
  ready: { label: 'Ready', tone: 'ok' },
  not_authorized: { label: 'Not authorized', tone: 'idle' },
  reauthorization_required: { label: 'Needs re-authorization', tone: 'bad' },
  configuration_error: { label: 'Configuration error', tone: 'bad' },
  degraded: { label: 'Degraded', tone: 'warn' },
  paused: { label: 'Paused', tone: 'warn' },
  stale: { label: 'Stale', tone: 'bad' },
};

const WAITING = 'Its messages wait in the queue until then.';

/** Fixes for configuration problems whose stored reason may not say what to do. */
const CONFIG_FIXES: Readonly<Record<string, { fix: string; marker: string }>> = {
  smtp_auth_disabled: {
    fix: 'enable SMTP AUTH for the mailbox (Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false) and make sure security defaults do not block it',
    marker: 'Set-CASMailbox',
  },
  smtp_auth_rejected: {
    fix: 'for app-only accounts check the token audience (https://outlook.office365.com), the SMTP.SendAsApp role, the Exchange service principal and the mailbox permission; otherwise check SMTP AUTH and authorize again',
    marker: 'SMTP.SendAsApp',
  },
  invalid_client: {
    fix: 'check the client credential (Key Vault secret, certificate or federated credential) and the app registration',
    marker: 'client',
  },
};

/**
 * One sentence per state for a person: what is wrong, why (the stored reason and the provider's error code), and
 * what to do. The reason comes from our own classifiers, never from provider text.
 */
export function stateSentence(state: AccountState, account: Account, status: AccountStatus | undefined, now: number): string {
  const appOnly = account.flow === 'client_credentials';
  const reason = reasonText(status);
  switch (state) {
    case 'ready':
      return appOnly
        ? 'Ready to send (app-only: the app gets its own token, no sign-in needed).'
        : `Ready to send as ${status?.authorizedUser ?? account.user}.`;
    case 'not_authorized':
      return appOnly
        ? 'App-only, no sign-in needed: no token fetched yet; the next message or the hourly refresh gets one.'
        : `Not authorized yet. Open Authorize and sign in as ${account.user}.`;
    case 'reauthorization_required':
      return `Needs re-authorization: ${reason ?? 'the grant is no longer valid'}. Open Authorize and sign in as ${account.user}. ${WAITING}`;
    case 'configuration_error': {
      const known = status?.lastErrorCode ? CONFIG_FIXES[status.lastErrorCode] : undefined;
      const fix = known && !(status?.lastError ?? '').includes(known.marker) ? ` Fix: ${known.fix}.` : '';
      const after = appOnly
        ? 'The next refresh picks up the fix.'
        : 'After the fix, open Authorize if the sign-in must be redone.';
      return `Configuration problem: ${reason ?? 'see the last error'}.${fix} ${after} ${WAITING}`;
    }
    case 'degraded':
      return `Token refresh keeps failing for a passing reason: ${reason ?? 'the provider is unreachable'}. Retried automatically; sending goes on while the current token lasts.`;
    case 'paused': {
      const until = status?.pausedUntil
        ? `until ${formatUtc(status.pausedUntil)} (${relativeTime(status.pausedUntil, now)})`
        : 'for now';
      return `Paused ${until}: ${reason ?? 'the provider refused more mail'}.${pauseHint(status)} Messages wait in the queue and go out after that.`;
    }
    case 'stale': {
      const lastOk = lastSuccess(status);
      const since = lastOk ? `since ${formatUtc(lastOk)} (${relativeTime(lastOk, now)})` : 'for over a day';
      return `Stale: no successful token refresh ${since}, over a day.${reason ? ` Last error: ${reason.replace(/\.$/, '')}.` : ''} Check that the refresh timer runs; if the error persists, open Authorize.`;
    }
  }
}

/** "<lastError> (invalid_grant AADSTS700082)" without a doubled full stop. */
function reasonText(status: AccountStatus | undefined): string | undefined {
  const error = status?.lastError?.trim().replace(/\.+$/, '');
  const code = status?.providerError ?? status?.lastErrorCode;
  if (!error) return code;
  return code && !error.includes(code) ? `${error} (${code})` : error;
}

function pauseHint(status: AccountStatus | undefined): string {
  if (status?.lastErrorCode === 'mailbox_full')
    return (status.lastError ?? '').includes('Sent Items')
      ? " Empty the mailbox's Sent Items."
      : " Empty the mailbox's Sent Items (SMTP submissions keep a copy there).";
  if (status?.lastErrorCode === 'quota_exceeded') return " The provider's daily quota frees up over the next 24 hours.";
  return '';
}
