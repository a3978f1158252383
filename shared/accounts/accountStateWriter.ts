import type { Account } from '../config/account';
import type { Logger } from '../log/logger';
import type { AccountAlerts, AccountProblem } from './accountAlerts';
import { incidentOf, PROBLEM_CLEARED, DEGRADED_AFTER_FAILURES, lastSuccess } from './accountRules';
import type { AccountStatus } from './accountStatus';
import type { AccountStatusTable } from './accountStatusTable';

/** What changed, for those who hold something per account (SMTP connections, cached tokens). */
export type AccountChange = 'authorized' | 'stopped';
export type AccountChangeListener = (accountId: string, change: AccountChange) => void | Promise<unknown>;

/** A state in which the account's messages wait; the send path and the token refresh both end up here. */
export interface StopReason {
  state: 'reauthorization_required' | 'configuration_error' | 'paused';
  /** Our stable code, e.g. `smtp_auth_disabled`; also shown on the status page. */
  code: string;
  reason: string;
  /** The provider's own error (`invalid_grant AADSTS700082`); with the state, it names the incident. */
  providerError?: string;
  pausedUntil?: string;
  /** Found by a token refresh (which records when it ran), rather than by the send path. */
  refresh?: boolean;
}

/**
 * The one writer of the account status row. Each method is one event in an account's life and writes the
 * fields that go with it; entering a bad state raises the alert, once per incident. Listeners hear of a new
 * grant and of a stop, so that this instance drops connections and tokens of the old grant at once.
 */
export class AccountStateWriter {
  private readonly listeners = new Set<AccountChangeListener>();

  constructor(
    private readonly status: AccountStatusTable,
    private readonly alerts: AccountAlerts,
    private readonly log: Logger,
  ) {}

  onChange(listener: AccountChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** An admin completed the authorization: a new grant, whatever was wrong before is over. */
  async markAuthorized(
    account: Account,
    grant: {
      authorizedUser: string;
      authorizedUserId?: string;
      authorizedBy?: string;
      scopes: string;
      tokenExpiresAt: number;
      at?: Date;
    },
  ): Promise<void> {
    const at = (grant.at ?? new Date()).toISOString();
    await this.status.patch(account.id, {
      ...PROBLEM_CLEARED,
      graphSince: null,
      graphReason: null,
      state: 'ready',
      authorizedUser: grant.authorizedUser,
      authorizedUserId: grant.authorizedUserId ?? null,
      authorizedBy: grant.authorizedBy ?? null,
      authorizedAt: at,
      scopes: grant.scopes,
      tokenExpiresAt: new Date(grant.tokenExpiresAt).toISOString(),
    });
    await this.notify(account.id, 'authorized');
  }

  /** A refresh (or an app-only token request) succeeded. */
  async markRefreshed(account: Account, tokenExpiresAt: number, before: AccountStatus | undefined): Promise<void> {
    const now = new Date().toISOString();
    await this.status.patch(account.id, {
      ...PROBLEM_CLEARED,
      state: 'ready',
      tokenExpiresAt: new Date(tokenExpiresAt).toISOString(),
      lastRefreshAt: now,
      lastRefreshOkAt: now,
      ...(account.flow === 'client_credentials' && !before?.authorizedAt
        ? { authorizedAt: now, authorizedUser: `app ${account.clientId}` }
        : {}),
    });
    if (before && before.state !== 'ready' && before.state !== 'not_authorized') {
      this.log.info('account.recovered', { account: account.id, previousState: before.state });
    }
  }

  /** A refresh found no refresh token: nobody authorized the account yet. */
  async markNotAuthorized(account: Account): Promise<void> {
    await this.status.patch(account.id, { state: 'not_authorized', lastRefreshAt: new Date().toISOString() });
  }

  /**
   * A refresh failed for a passing reason. After DEGRADED_AFTER_FAILURES in a row the account shows as degraded
   * and its receivers hear of it; it keeps sending while its token lasts. Returns whether it is now degraded.
   */
  async markRefreshTrouble(
    account: Account,
    trouble: { code: string; reason: string; providerError?: string },
    before: AccountStatus | undefined,
  ): Promise<boolean> {
    const failures = (before?.consecutiveFailures ?? 0) + 1;
    const degraded =
      before?.state === 'degraded' || (failures >= DEGRADED_AFTER_FAILURES && (before?.state ?? 'ready') === 'ready');
    await this.status.patch(account.id, {
      lastRefreshAt: new Date().toISOString(),
      lastError: trouble.reason,
      lastErrorCode: trouble.code,
      ...(trouble.providerError ? { providerError: trouble.providerError } : {}),
      consecutiveFailures: failures,
      ...(degraded ? { state: 'degraded' } : {}),
    });
    if (degraded) await this.raise(account, { state: 'degraded', reason: trouble.reason }, before);
    return degraded;
  }

  /**
   * The account cannot send until an admin acts (or a pause ends): its messages wait at the gate. Called by the
   * token refresh (revoked grant, bad client) and by the send path (SMTP AUTH disabled, quota, mailbox full).
   */
  async markProblem(account: Account, stop: StopReason, before?: AccountStatus): Promise<void> {
    const previous = before ?? (await this.status.get(account.id));
    await this.status.patch(account.id, {
      state: stop.state,
      lastError: stop.reason,
      lastErrorCode: stop.code,
      ...(stop.providerError ? { providerError: stop.providerError } : {}),
      ...(stop.pausedUntil ? { pausedUntil: stop.pausedUntil } : {}),
      ...(stop.refresh ? { lastRefreshAt: new Date().toISOString() } : {}),
    });
    await this.notify(account.id, 'stopped');
    await this.raise(
      account,
      { state: stop.state, reason: stop.reason, ...(stop.providerError ? { providerError: stop.providerError } : {}) },
      previous,
      stop.code,
    );
  }

  /**
   * Transport `auto`: the SMTP server said SMTP AUTH is disabled for the tenant or the mailbox. The account goes on
   * sending through Microsoft Graph (it stays ready), and its receivers hear of the switch once.
   */
  async markSwitchedToGraph(account: Account, reason: string): Promise<void> {
    const before = await this.status.get(account.id);
    if (before?.graphSince) return;
    await this.status.patch(account.id, { graphSince: new Date().toISOString(), graphReason: reason });
    this.log.warn('account.transport_switched', { account: account.id, transport: 'graph', reason });
    await this.raise(
      account,
      {
        state: 'ready',
        reason: `${reason} The account now sends through Microsoft Graph (transport "auto"); authorize it again to try SMTP once more.`,
        notice: 'switched_to_graph',
      },
      before,
      'switched_to_graph',
    );
  }

  /** The refresh timer found no successful refresh for over a day. */
  async markStale(account: Account, before: AccountStatus): Promise<void> {
    const reason = `No successful token refresh since ${lastSuccess(before) ?? 'the authorization'}. Last error: ${before.lastError ?? 'unknown'}`;
    await this.status.patch(account.id, { state: 'stale' });
    await this.raise(account, { state: 'stale', reason }, before);
  }

  /** The alert, once per incident; an incident stays unmarked when no account could send it, so it is tried again. */
  private async raise(
    account: Account,
    problem: AccountProblem,
    before: AccountStatus | undefined,
    code?: string,
  ): Promise<void> {
    const incident = incidentOf(problem.state, problem.providerError ?? code);
    if (before?.alertedIncident === incident) return;
    try {
      const outcome = await this.alerts.send(account, problem, incident, before);
      if (outcome !== 'undeliverable') await this.status.patch(account.id, { alertedIncident: incident });
    } catch (error) {
      this.log.error('account.alert_failed', { account: account.id, reason: (error as Error).message });
    }
  }

  /** A listener's failure is logged, never the writer's: the state is recorded either way. */
  private async notify(accountId: string, change: AccountChange): Promise<void> {
    await Promise.all(
      [...this.listeners].map(async (listener) => {
        try {
          await listener(accountId, change);
        } catch (error) {
          this.log.error('account.listener_failed', { account: accountId, change, reason: (error as Error).message });
        }
      }),
    );
  }
}
