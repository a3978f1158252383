import * as client from 'openid-client';
import type { AccountStatus } from '../accounts/accountStatus';
import type { AccountStatusTable } from '../accounts/accountStatusTable';
import type { AccountStateWriter } from '../accounts/accountStateWriter';
import type { Account } from '../config/account';
import { AccountError, OutboxError, TransientError } from '../errors';
import type { Logger } from '../log/logger';
import { fetchAppOnlyToken } from '../oauth/clientCredentials';
import { graphTokenProblem, graphTokenScopes, type TokenAudience } from '../oauth/graphToken';
import { providerConfiguration, type ProviderClients } from '../oauth/providerClient';
import { classifyTokenEndpointError, providerErrorLabel } from '../oauth/tokenEndpointErrors';
import { toTokenSet, type AccessTokenRecord, type TokenSet } from '../oauth/tokenSet';
import type { RefreshLease } from './refreshLease';
import type { TokenRefresher } from './tokenService';
import type { TokenStore } from './tokenStore';

export { DEGRADED_AFTER_FAILURES } from '../accounts/accountRules';

export interface TokenRefresherDeps {
  tokenStore: TokenStore;
  providers: ProviderClients;
  accountStatus: AccountStatusTable;
  accountStates: AccountStateWriter;
  /** The per-account lease; a new authorization takes the same one. */
  refreshLease: RefreshLease;
  log: Logger;
}

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
  constructor(
    private readonly deps: TokenRefresherDeps,
    private readonly waitMs = 30_000,
  ) {}

  async refresh(
    account: Account,
    reason: 'expiring' | 'rejected',
    rejectedToken?: string,
    audience: TokenAudience = 'smtp',
  ): Promise<AccessTokenRecord> {
    const outcome = await this.refreshIfNeeded(account, {
      needValidUntil: Date.now() + account.tokenMinLifetimeSeconds * 1000,
      ...(reason === 'rejected' && rejectedToken ? { rejectedToken } : {}),
      audience,
    });
    return outcome.record;
  }

  /**
   * Refreshes unless the stored token stays valid past `needValidUntil` (and is not the rejected one). Both audiences
   * share the account's lease: they share its refresh token, which each refresh may rotate.
   */
  async refreshIfNeeded(
    account: Account,
    need: { needValidUntil: number; rejectedToken?: string; audience?: TokenAudience },
  ): Promise<RefreshOutcome> {
    const audience = need.audience ?? 'smtp';
    const outcome = await this.deps.refreshLease.withLease(account.id, this.waitMs, async (): Promise<RefreshOutcome> => {
      const stored = await this.deps.tokenStore.readAccessToken(account.id, audience);
      if (stored && stored.accessToken !== need.rejectedToken && stored.expiresAt > need.needValidUntil) {
        return { record: stored, refreshed: false };
      }
      return { record: await this.refreshNow(account, audience), refreshed: true };
    });
    if (!outcome) {
      throw new TransientError(
        'token_unavailable',
        `Another instance has been refreshing account "${account.id}" for over ${this.waitMs / 1000} s.`,
      );
    }
    return outcome;
  }

  private async refreshNow(account: Account, audience: TokenAudience): Promise<AccessTokenRecord> {
    const { deps } = this;
    const status = await deps.accountStatus.get(account.id);
    if (status?.state === 'reauthorization_required') {
      // The grant is gone (or a fresh token was refused): asking the provider again would only repeat the error.
      throw new AccountError(
        'needs_reauthorization',
        status.lastError ?? `Account "${account.id}" needs to be authorized again.`,
        status.providerError ? { providerError: status.providerError } : {},
      );
    }
    // Read outside the provider's try: a Key Vault failure (a 429 above all) says nothing about the account.
    const previous = account.flow === 'client_credentials' ? undefined : await deps.tokenStore.readStoredRefreshToken(account.id);
    let tokens: TokenSet;
    try {
      if (account.flow === 'client_credentials') {
        tokens = await fetchAppOnlyToken(deps, account, audience);
      } else {
        if (!previous) {
          throw new AccountError(
            'not_authorized',
            `Account "${account.id}" has not been authorized yet: open its authorize link.`,
          );
        }
        const config = await providerConfiguration(deps, account);
        const scope = scopesFor(account, audience).join(' ');
        const parameters = account.provider === 'microsoft' || audience !== 'smtp' ? { scope } : undefined;
        tokens = toTokenSet(await client.refreshTokenGrant(config, previous.value, parameters));
        if (audience === 'graph') {
          const problem = graphTokenProblem(account, tokens);
          if (problem) {
            // The grant works (keep its rotated refresh token); it only lacks the Graph permission.
            await deps.tokenStore.save(account.id, tokens, { previous, rotation: account.oauth.refreshTokenRotation }, audience);
            throw new AccountError('config_error', problem);
          }
        }
      }
    } catch (error) {
      throw await this.recordFailure(account, status, error);
    }
    // Rotated refresh token first, when it must be kept: once the provider issued it, the old one may be dead.
    const { refreshTokenWritten } = await deps.tokenStore.save(
      account.id,
      tokens,
      { ...(previous ? { previous } : {}), rotation: account.oauth.refreshTokenRotation },
      audience,
    );
    await deps.accountStates.markRefreshed(account, tokens.expiresAt, status);
    deps.log.info('token.refreshed', {
      account: account.id,
      ...(audience === 'smtp' ? {} : { audience }),
      expiresAt: new Date(tokens.expiresAt).toISOString(),
      rotated: Boolean(tokens.refreshToken && tokens.refreshToken !== previous?.value),
      refreshTokenWritten,
    });
    return { accessToken: tokens.accessToken, expiresAt: tokens.expiresAt, ...(tokens.scope ? { scope: tokens.scope } : {}) };
  }

  /** Updates the status (and alerts on entering a bad state); returns the error for the caller to throw. */
  private async recordFailure(account: Account, status: AccountStatus | undefined, error: unknown): Promise<OutboxError> {
    if (error instanceof AccountError && error.code === 'not_authorized') {
      await this.deps.accountStates.markNotAuthorized(account);
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
    const { accountStates, log } = this.deps;
    log.warn('token.refresh_failed', {
      account: account.id,
      kind: failure.kind,
      errorCode: failure.code,
      providerError: failure.providerError,
      reason: failure.reason,
    });
    const details = failure.providerError ? { providerError: failure.providerError } : {};
    if (failure.kind === 'transient') {
      await accountStates.markRefreshTrouble(account, failure, status);
      return new TransientError('token_unavailable', failure.reason);
    }
    const state = failure.kind === 'reauthorize' ? 'reauthorization_required' : 'configuration_error';
    await accountStates.markProblem(
      account,
      { state, code: failure.code, reason: failure.reason, refresh: true, ...details },
      status,
    );
    return new AccountError(failure.kind === 'reauthorize' ? 'needs_reauthorization' : 'config_error', failure.reason, details);
  }
}

/** SMTP's scopes are the account's; Graph's come from the preset, in a token request of their own. */
function scopesFor(account: Account, audience: TokenAudience): string[] {
  if (audience === 'smtp') return account.oauth.scopes;
  if (!account.graph) throw new AccountError('config_error', `Account "${account.id}" has no Microsoft Graph transport.`);
  return graphTokenScopes(account, account.graph);
}
