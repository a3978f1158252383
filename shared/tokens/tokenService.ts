import type { Account } from '../config';
import { AccountError, TransientError } from '../errors';
import { SecretStoreError } from '../storage/secretStore';
import type { AccessTokenRecord, TokenStore } from './tokenStore';

/**
 * Hands out access tokens for sending: from memory, else from the secret store, else (when a refresher is
 * plugged in) by refreshing. A token with less than the account's minimum lifetime left is never handed out
 * (Exchange refuses tokens close to expiry).
 */
export interface TokenRefresher {
  /** Obtains a new token for the account (refresh grant or client credentials), saves it, and returns it. */
  refresh(account: Account, reason: 'expiring' | 'rejected', rejectedToken?: string): Promise<AccessTokenRecord>;
}

export interface TokenRequest {
  /** The server refused this token: do not hand it out again. */
  rejectedToken?: string;
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

    const cached = this.cache.get(account.id);
    if (usable(cached)) return cached;

    const stored = await this.store.readAccessToken(account.id);
    if (usable(stored)) {
      this.cache.set(account.id, stored);
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
    const fresh = await this.refresher.refresh(account, request.rejectedToken ? 'rejected' : 'expiring', request.rejectedToken);
    this.cache.set(account.id, fresh);
    return fresh;
  }

  /** Puts a token obtained elsewhere (authorization, timer) into the cache. */
  remember(accountId: string, record: AccessTokenRecord): void {
    this.cache.set(accountId, record);
  }

  forget(accountId: string): void {
    this.cache.delete(accountId);
  }
}
