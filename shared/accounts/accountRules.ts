import type { Account } from '../config/account';
import type { AccountState, AccountStatus, StatusPatchFields } from './accountStatus';

/** An account whose grant was last proven longer ago than this is stale (alerted, shown in red). */
export const STALE_AFTER_MS = 24 * 3_600_000;

/** Transient refresh failures in a row before the account shows as degraded (and its receivers hear of it). */
export const DEGRADED_AFTER_FAILURES = 3;

/** The later of the last successful refresh and the authorization: either proves the grant worked then. */
export function lastSuccess(status: AccountStatus | undefined): string | undefined {
  const candidates = [status?.lastRefreshOkAt, status?.authorizedAt].filter(
    (v): v is string => !!v && !Number.isNaN(Date.parse(v)),
  );
  return candidates.sort((a, b) => Date.parse(b) - Date.parse(a))[0];
}

/**
 * The stored state, corrected for time passing since it was written: a pause that has ended no longer holds
 * (the send gate opens too), and an account whose grant was last proven over a day ago is stale even if the
 * refresh timer has not said so yet (it only notices when it runs, and only on a failure).
 */
export function effectiveState(status: AccountStatus | undefined, now: number): AccountState {
  const stored = status?.state ?? 'not_authorized';
  const pauseOver = stored === 'paused' && (!status?.pausedUntil || Date.parse(status.pausedUntil) <= now);
  if (stored !== 'ready' && stored !== 'degraded' && !pauseOver) return stored;
  const lastOk = lastSuccess(status);
  if (lastOk && now - Date.parse(lastOk) > STALE_AFTER_MS) return 'stale';
  return pauseOver ? 'ready' : stored;
}

/** Whether the refresh timer should mark the account stale after a failed refresh. */
export function shouldMarkStale(status: AccountStatus | undefined, now: number): boolean {
  const lastOk = lastSuccess(status);
  if (!status || !lastOk || now - Date.parse(lastOk) < STALE_AFTER_MS) return false;
  return status.state === 'ready' || status.state === 'degraded';
}

/** Why a closed account's messages wait (the same codes as a deferred message's). */
export type WaitCode = 'needs_reauthorization' | 'config_error' | 'quota_exceeded' | 'mailbox_full' | 'paused';

export type SendDecision = { open: true } | { open: false; code: WaitCode; reason: string; retryAfterMs?: number };

/**
 * May the account send now? An account waiting for an admin holds its messages back without touching the token
 * endpoint or the SMTP server; a paused one until its pause ends. Degraded and stale accounts still send while
 * their token lasts (the token service says when it does not).
 */
export function sendDecision(accountId: string, status: AccountStatus | undefined, now: number): SendDecision {
  if (!status) return { open: true };
  switch (status.state) {
    case 'reauthorization_required':
      return {
        open: false,
        code: 'needs_reauthorization',
        reason: `Account "${accountId}" needs to be authorized again: ${status.lastError ?? 'the grant is no longer valid'}.`,
      };
    case 'configuration_error':
      return {
        open: false,
        code: 'config_error',
        reason: `Account "${accountId}" has a configuration problem: ${status.lastError ?? 'see the admin page'}.`,
      };
    case 'paused': {
      const until = status.pausedUntil ? Date.parse(status.pausedUntil) : 0;
      if (until > now)
        return {
          open: false,
          code:
            status.lastErrorCode === 'quota_exceeded' || status.lastErrorCode === 'mailbox_full'
              ? status.lastErrorCode
              : 'paused',
          reason: `Account "${accountId}" is paused until ${status.pausedUntil}: ${status.lastError ?? ''}`.trim(),
          retryAfterMs: until - now,
        };
      return { open: true };
    }
    default:
      return { open: true };
  }
}

/** One incident = one state with one provider error: an alert goes out once per incident. */
export function incidentOf(state: AccountState, providerError: string | undefined): string {
  return `${state}:${providerError ?? ''}`;
}

/** The fields a success clears: whatever was wrong before is over. */
export const PROBLEM_CLEARED: StatusPatchFields = {
  lastError: null,
  lastErrorCode: null,
  providerError: null,
  consecutiveFailures: 0,
  alertedIncident: null,
  pausedUntil: null,
};

/**
 * The way the account's next message goes: `graph` and `smtp` as configured; `auto` by SMTP until the server said
 * SMTP AUTH is disabled (recorded as `graphSince`), then by Microsoft Graph.
 */
export function activeTransport(account: Account, status: AccountStatus | undefined): 'smtp' | 'graph' {
  if (account.transport === 'graph') return 'graph';
  return account.transport === 'auto' && status?.graphSince ? 'graph' : 'smtp';
}
