import { createHash } from 'node:crypto';
import { STATUS_PAGE_PATH } from '../admin/adminRoutes';
import type { Account } from '../config';
import { enqueueMail } from '../message/enqueueMail';
import { QUEUES } from '../names';
import type { Runtime } from '../runtime';
import type { AccountState, AccountStatus } from '../storage/accountStatusTable';

export interface AccountProblem {
  state: AccountState;
  /** What happened, for a person. */
  reason: string;
  /** e.g. `invalid_grant AADSTS700082`. */
  providerError?: string;
}

const LABELS: Partial<Record<AccountState, string>> = {
  reauthorization_required: 'needs to be authorized again',
  configuration_error: 'has a configuration problem',
  degraded: 'cannot refresh its token',
  paused: 'is paused',
  stale: 'has not refreshed its token for over a day',
};

/**
 * Tells the account's alert receivers once per incident (an incident = the state and the provider error), by
 * email through another account that can send: the failing one cannot. The alert goes through the normal
 * queue with an id derived from the incident, so two instances noticing the same incident send one email.
 */
export async function alertAccountProblem(
  runtime: Runtime,
  account: Account,
  problem: AccountProblem,
  current?: AccountStatus,
): Promise<void> {
  const incident = `${problem.state}:${problem.providerError ?? ''}`;
  if (current?.alertedIncident === incident) return;
  if (account.alerts.length === 0) {
    runtime.log.warn('account.alert_skipped', {
      account: account.id,
      state: problem.state,
      reason: 'no alert receivers configured',
    });
    await runtime.accountStatus.patch(account.id, { alertedIncident: incident });
    return;
  }
  const via = await healthyAccount(runtime, account.id);
  if (!via) {
    runtime.log.error('account.alert_undeliverable', {
      account: account.id,
      state: problem.state,
      reason: 'no other account is ready to send the alert',
    });
    return; // Not marked as alerted: the next check tries again.
  }
  const authorizeUrl = `${runtime.publicBaseUrl}/api/accounts/${account.id}/authorize`;
  const lines = [
    `The mail account "${account.displayName}" (${account.user}) ${LABELS[problem.state] ?? `is ${problem.state}`}.`,
    '',
    `What happened: ${problem.reason}`,
    ...(problem.providerError ? [`Provider error: ${problem.providerError}`] : []),
    '',
    'Messages for this account stay queued and are sent once it is fixed.',
    ...(account.flow === 'authorization_code' ? [`Authorize it again: ${authorizeUrl}`] : []),
    `Status page: ${runtime.publicBaseUrl}${STATUS_PAGE_PATH}`,
  ];
  const id = `alert-${account.id}-${createHash('sha256')
    .update(`${incident}\n${current?.authorizedAt ?? ''}`)
    .digest('hex')
    .slice(0, 16)}`;
  await enqueueMail(runtime.storage.queue(QUEUES.outbox), {
    id,
    account: via.id,
    to: account.alerts,
    subject: `[oauth-outbox] Account "${account.id}" ${LABELS[problem.state] ?? problem.state}`,
    text: lines.join('\n'),
  });
  await runtime.accountStatus.patch(account.id, { alertedIncident: incident });
  runtime.log.warn('account.alerted', {
    account: account.id,
    state: problem.state,
    via: via.id,
    receivers: account.alerts.length,
  });
}

async function healthyAccount(runtime: Runtime, exceptId: string): Promise<Account | undefined> {
  const statuses = new Map((await runtime.accountStatus.list()).map((s) => [s.accountId, s]));
  const candidates = runtime.accounts.filter((a) => a.id !== exceptId && statuses.get(a.id)?.state === 'ready');
  return candidates.find((a) => a.isDefault) ?? candidates[0];
}
