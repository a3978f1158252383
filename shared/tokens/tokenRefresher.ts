import * as client from 'openid-client';
import { alertAccountProblem } from '../alerts/accountAlerts';
import type { Account } from '../config';
import { ACCOUNT_GATE_SERVICE, type AccountGate } from '../delivery/accountGate';
import { AccountError, OutboxError, TransientError } from '../errors';
import { TABLES } from '../names';
import { fetchAppOnlyToken } from '../oauth/clientCredentials';
import { providerConfiguration } from '../oauth/providerClient';
import { classifyTokenEndpointError, providerErrorLabel } from '../oauth/tokenEndpointErrors';
import { toTokenSet } from '../oauth/tokenSet';
import type { Runtime } from '../runtime';
import type { AccountStatus } from '../storage/accountStatusTable';
import { RefreshLease } from './refreshLease';
import type { TokenRefresher } from './tokenService';
import type { AccessTokenRecord, TokenSet } from './tokenStore';

/** Transient refresh failures in a row before the account shows as degraded (and its receivers hear of it). */
export const DEGRADED_AFTER_FAILURES = 3;

export interface RefreshOutcome {
  record: AccessTokenRecord;
  /** False when a valid token was already there (another instance refreshed it). */
  refreshed: boolean;
}

/**
 * Obtains new tokens from the provider under the account's lease, saves them (the rotated refresh token first),
 * and keeps the account's status and alerts in step with the outcome. A refresh token is never deleted, whatever
 * the failure: only a new authorization replaces it.
 */
export class ProviderTokenRefresher implements TokenRefresher {
  private readonly lease: RefreshLease;

  constructor(
    private readonly runtime: Runtime,
    holder: string,
    private readonly waitMs = 30_000,
  ) {
    this.lease = new RefreshLease(runtime.storage.table(TABLES.leases), holder);
  }

  async refresh(account: Account, reason: 'expiring' | 'rejected', rejectedToken?: string): Promise<AccessTokenRecord> {
    const outcome = await this.refreshIfNeeded(account, {
      needValidUntil: Date.now() + account.tokenMinLifetimeSeconds * 1000,
      ...(reason === 'rejected' && rejectedToken ? { rejectedToken } : {}),
    });
    return outcome.record;
  }

  /** Refreshes unless the stored token stays valid past `needValidUntil` (and is not the rejected one). */
  async refreshIfNeeded(account: Account, need: { needValidUntil: number; rejectedToken?: string }): Promise<RefreshOutcome> {
    const outcome = await this.lease.withLease(account.id, this.waitMs, async (): Promise<RefreshOutcome> => {
      const stored = await this.runtime.tokenStore.readAccessToken(account.id);
      if (stored && stored.accessToken !== need.rejectedToken && stored.expiresAt > need.needValidUntil) {
        return { record: stored, refreshed: false };
      }
      return { record: await this.refreshNow(account), refreshed: true };
    });
    if (!outcome) {
      throw new TransientError(
        'token_unavailable',
        `Another instance has been refreshing account "${account.id}" for over ${this.waitMs / 1000} s.`,
      );
    }
    return outcome;
  }

  private async refreshNow(account: Account): Promise<AccessTokenRecord> {
    const { runtime } = this;
    const status = await runtime.accountStatus.get(account.id);
    if (status?.state === 'reauthorization_required') {
      // The grant is gone (or a fresh token was refused): asking the provider again would only repeat the error.
      throw new AccountError(
        'needs_reauthorization',
        status.lastError ?? `Account "${account.id}" needs to be authorized again.`,
        status.providerError ? { providerError: status.providerError } : {},
      );
    }
    let previousRefreshToken: string | undefined;
    let tokens: TokenSet;
    try {
      if (account.flow === 'client_credentials') {
        tokens = await fetchAppOnlyToken(runtime, account);
      } else {
        previousRefreshToken = await runtime.tokenStore.readRefreshToken(account.id);
        if (!previousRefreshToken) {
          throw new AccountError(
            'not_authorized',
            `Account "${account.id}" has not been authorized yet: open its authorize link.`,
          );
        }
        const config = await providerConfiguration(runtime, account);
        const parameters = account.provider === 'microsoft' ? { scope: account.oauth.scopes.join(' ') } : undefined;
        tokens = toTokenSet(await client.refreshTokenGrant(config, previousRefreshToken, parameters));
      }
    } catch (error) {
      throw await this.recordFailure(account, status, error);
    }
    // Rotated refresh token first: once the provider issued it, the old one may already be dead.
    await runtime.tokenStore.save(account.id, tokens, previousRefreshToken);
    const now = new Date().toISOString();
    await runtime.accountStatus.patch(account.id, {
      state: 'ready',
      tokenExpiresAt: new Date(tokens.expiresAt).toISOString(),
      lastRefreshAt: now,
      lastRefreshOkAt: now,
      lastError: null,
      lastErrorCode: null,
      providerError: null,
      consecutiveFailures: 0,
      alertedIncident: null,
      pausedUntil: null,
      ...(account.flow === 'client_credentials' && !status?.authorizedAt
        ? { authorizedAt: now, authorizedUser: `app ${account.clientId}` }
        : {}),
    });
    if (status && status.state !== 'ready' && status.state !== 'not_authorized') {
      runtime.log.info('account.recovered', { account: account.id, previousState: status.state });
    }
    runtime.log.info('token.refreshed', {
      account: account.id,
      expiresAt: new Date(tokens.expiresAt).toISOString(),
      rotated: Boolean(tokens.refreshToken && tokens.refreshToken !== previousRefreshToken),
    });
    return { accessToken: tokens.accessToken, expiresAt: tokens.expiresAt, ...(tokens.scope ? { scope: tokens.scope } : {}) };
  }

  /** Updates the status (and alerts on entering a bad state); returns the error for the caller to throw. */
  private async recordFailure(account: Account, status: AccountStatus | undefined, error: unknown): Promise<OutboxError> {
    const { runtime } = this;
    const now = new Date().toISOString();
    if (error instanceof AccountError && error.code === 'not_authorized') {
      await runtime.accountStatus.patch(account.id, { state: 'not_authorized', lastRefreshAt: now });
      return error;
    }
    if (error instanceof OutboxError) {
      // Our own checks (discovery configuration, app-only token audience/role) are configuration problems.
      const kind = error instanceof TransientError ? 'transient' : 'config';
      return this.applyFailure(account, status, { kind, code: error.code, reason: error.message });
    }
    const failure = classifyTokenEndpointError(error, {
      provider: account.provider,
      grant: account.flow === 'client_credentials' ? 'client_credentials' : 'refresh_token',
      ...(status?.authorizedAt ? { authorizedAt: status.authorizedAt } : {}),
    });
    return this.applyFailure(account, status, {
      kind: failure.kind,
      code: failure.code,
      reason: failure.reason,
      providerError: providerErrorLabel(failure),
    });
  }

  private async applyFailure(
    account: Account,
    status: AccountStatus | undefined,
    failure: { kind: 'reauthorize' | 'config' | 'transient'; code: string; reason: string; providerError?: string },
  ): Promise<OutboxError> {
    const { runtime } = this;
    const now = new Date().toISOString();
    const common = {
      lastRefreshAt: now,
      lastError: failure.reason,
      lastErrorCode: failure.code,
      ...(failure.providerError ? { providerError: failure.providerError } : {}),
    };
    runtime.log.warn('token.refresh_failed', {
      account: account.id,
      kind: failure.kind,
      errorCode: failure.code,
      providerError: failure.providerError,
      reason: failure.reason,
    });
    if (failure.kind === 'transient') {
      const failures = (status?.consecutiveFailures ?? 0) + 1;
      const degraded =
        status?.state === 'degraded' || (failures >= DEGRADED_AFTER_FAILURES && (status?.state ?? 'ready') === 'ready');
      await runtime.accountStatus.patch(account.id, {
        ...common,
        consecutiveFailures: failures,
        ...(degraded ? { state: 'degraded' } : {}),
      });
      if (degraded) await alertAccountProblem(runtime, account, { state: 'degraded', reason: failure.reason }, status);
      return new TransientError('token_unavailable', failure.reason);
    }
    const state = failure.kind === 'reauthorize' ? 'reauthorization_required' : 'configuration_error';
    await runtime.accountStatus.patch(account.id, { ...common, state });
    // This instance's send path holds the account's messages from now on, not once its cached status expires.
    (runtime.services.get(ACCOUNT_GATE_SERVICE) as AccountGate | undefined)?.forget(account.id);
    await alertAccountProblem(
      runtime,
      account,
      { state, reason: failure.reason, ...(failure.providerError ? { providerError: failure.providerError } : {}) },
      status,
    );
    return failure.kind === 'reauthorize'
      ? new AccountError(
          'needs_reauthorization',
          failure.reason,
          failure.providerError ? { providerError: failure.providerError } : {},
        )
      : new AccountError('config_error', failure.reason, failure.providerError ? { providerError: failure.providerError } : {});
  }
}
