import { createHash } from 'node:crypto';
import type { QueueClient } from '@azure/storage-queue';
import type { Account } from '../config/account';
import type { Logger } from '../log/logger';
import { enqueueMail } from '../message/enqueueMail';
import { accountPath, STATUS_PAGE_PATH } from '../web/routes';
import type { AccountState, AccountStatus } from './accountStatus';
import type { AccountStatusTable } from './accountStatusTable';

export interface AccountProblem {
  state: AccountState;
  /** What happened, for a person. */
  reason: string;
  /** e.g. `invalid_grant AADSTS700082`. */
  providerError?: string;
  /** Not a problem but news the receivers must have (the account still sends). */
  notice?: 'switched_to_graph';
}

const LABELS: Partial<Record<AccountState, string>> = {
  reauthorization_required: 'needs to be authorized again',
  configuration_error: 'has a configuration problem',
  degraded: 'cannot refresh its token',
  paused: 'is paused',
  stale: 'has not refreshed its token for over a day',
};

export type AlertOutcome = 'sent' | 'no_receivers' | 'undeliverable';

/**
 * Tells an account's alert receivers, by email through another account that can send (the failing one cannot).
 * The alert goes through the normal queue with an id derived from the incident, so two instances noticing the
 * same incident send one email. Only AccountStateWriter calls this, once per incident.
 */
export class AccountAlerts {
  constructor(
    private readonly deps: {
      accounts: readonly Account[];
      status: AccountStatusTable;
      outbox: QueueClient;
      publicBaseUrl: string;
      log: Logger;
    },
  ) {}

  async send(account: Account, problem: AccountProblem, incident: string, before?: AccountStatus): Promise<AlertOutcome> {
    const { log, publicBaseUrl } = this.deps;
    if (account.alerts.length === 0) {
      log.warn('account.alert_skipped', { account: account.id, state: problem.state, reason: 'no alert receivers configured' });
      return 'no_receivers';
    }
    const via = await this.healthyAccount(account.id);
    if (!via) {
      log.error('account.alert_undeliverable', {
        account: account.id,
        state: problem.state,
        reason: 'no other account is ready to send the alert',
      });
      return 'undeliverable';
    }
    const lines = [
      `The mail account "${account.displayName}" (${account.user}) ${problem.notice ? 'now sends through Microsoft Graph' : (LABELS[problem.state] ?? `is ${problem.state}`)}.`,
      '',
      `What happened: ${problem.reason}`,
      ...(problem.providerError ? [`Provider error: ${problem.providerError}`] : []),
      '',
      problem.notice
        ? 'Messages for this account keep going out.'
        : 'Messages for this account stay queued and are sent once it is fixed.',
      ...(account.flow === 'authorization_code'
        ? [`Authorize it again: ${publicBaseUrl}${accountPath(account.id, 'authorize')}`]
        : []),
      `Status page: ${publicBaseUrl}${STATUS_PAGE_PATH}`,
    ];
    const id = `alert-${account.id}-${createHash('sha256')
      .update(`${incident}\n${before?.authorizedAt ?? ''}`)
      .digest('hex')
      .slice(0, 16)}`;
    await enqueueMail(this.deps.outbox, {
      id,
      account: via.id,
      to: account.alerts,
      subject: `[oauth-outbox] Account "${account.id}" ${problem.notice ? 'now sends through Microsoft Graph' : (LABELS[problem.state] ?? problem.state)}`,
      text: lines.join('\n'),
    });
    log.warn('account.alerted', { account: account.id, state: problem.state, via: via.id, receivers: account.alerts.length });
    return 'sent';
  }

  private async healthyAccount(exceptId: string): Promise<Account | undefined> {
    const statuses = new Map((await this.deps.status.list()).map((s) => [s.accountId, s]));
    const candidates = this.deps.accounts.filter((a) => a.id !== exceptId && statuses.get(a.id)?.state === 'ready');
    return candidates.find((a) => a.isDefault) ?? candidates[0];
  }
}
