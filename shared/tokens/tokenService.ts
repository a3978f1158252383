import type { Account } from '../config';
import { AccountError, TransientError } from '../errors';
import type { TokenAudience } from '../oauth/graphToken';
import { SecretStoreError } from '../storage/secretStore';
import type { AccessTokenRecord, TokenStore } from './tokenStore';

/**
 * Hands out access tokens for sending: from memory, else from the secret store, else (when a refresher is
 * plugged in) by refreshing. A token with less than the account's minimum lifetime left is never handed out
 * (Exchange refuses tokens close to expiry).
 */
export interface TokenRefresher {
  /** Obtains a new token for the account (refresh grant or client credentials), saves it, and returns it. */
  refresh(
    account: Account,
    reason: 'expiring' | 'rejected',
    rejectedToken?: string,
    audience?: TokenAudience,
  ): Promise<AccessTokenRecord>;
}

export interface TokenRequest {
  /** The server refused this token: do not hand it out again. */
  rejectedToken?: string;
  /** Whose token: SMTP (default) or Microsoft Graph, each from its own token request. */
  audience?: TokenAudience;
}

export class TokenService {
  private readonly cache = new Map<string, AccessTokenRecord>();

  constructor(
    private readonly store: TokenStore,
    private readonly refresher?: TokenRefresher,
    private readonly now: () => number = Date.now,
  ) {}

  async get(account: Account, request: TokenRequest = {}): Promise<AccessTokenRecord> {
    try {
      return await this.obtain(account, request);
    } catch (error) {
      // Key Vault down or throttled is passing trouble for the message, not a fault of the account.
      if (error instanceof SecretStoreError) {
        throw new TransientError('token_unavailable', error.message, {
          ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
        });
      }
      throw error;
    }
  }

  private async obtain(account: Account, request: TokenRequest): Promise<AccessTokenRecord> {
    const usable = (record: AccessTokenRecord | undefined): record is AccessTokenRecord =>
      record !== undefined &&
      record.accessToken !== request.rejectedToken &&
      record.expiresAt - this.now() > account.tokenMinLifetimeSeconds * 1000;

    const audience = request.audience ?? 'smtp';
    const key = cacheKey(account.id, audience);
    const cached = this.cache.get(key);
    if (usable(cached)) return cached;

    const stored = await this.store.readAccessToken(account.id, audience);
    if (usable(stored)) {
      this.cache.set(key, stored);
      return stored;
    }
    if (!this.refresher) {
      throw new AccountError(
        'not_authorized',
        stored
          ? `The access token of account "${account.id}" has expired and no refresh is available here.`
          : `Account "${account.id}" has not been authorized yet: open its authorize link.`,
      );
    }
    const reason = request.rejectedToken ? 'rejected' : 'expiring';
    const fresh =
      audience === 'smtp'
        ? await this.refresher.refresh(account, reason, request.rejectedToken)
        : await this.refresher.refresh(account, reason, request.rejectedToken, audience);
    this.cache.set(key, fresh);
    return fresh;
  }

  /** Puts a token obtained elsewhere (authorization, timer) into the cache. */
  remember(accountId: string, record: AccessTokenRecord, audience: TokenAudience = 'smtp'): void {
    this.cache.set(cacheKey(accountId, audience), record);
  }

  /** Forgets every audience's token of the account (a new grant replaces them all). */
  forget(accountId: string): void {
    this.cache.delete(accountId);
    this.cache.delete(cacheKey(accountId, 'graph'));
  }
}

/** The SMTP token keeps the bare account id as its key, as before audiences existed. */
function cacheKey(accountId: string, audience: TokenAudience): string {
  return audience === 'smtp' ? accountId : `${accountId}#${audience}`;
}
