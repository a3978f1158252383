import type { RefreshTokenRotation } from '../config/presets';
import type { TokenAudience } from '../oauth/graphToken';
import type { AccessTokenRecord, TokenSet } from '../oauth/tokenSet';
import type { AccessTokenTable } from '../storage/accessTokenTable';
import { isThrottled, type SecretStore } from '../storage/secretStore';
import type { AccessTokenKey } from './accessTokenKey';
import { openAccessToken, sealAccessToken } from './accessTokenSeal';
import { mustWriteRefreshToken, type StoredRefreshToken } from './refreshTokenWrites';

export type { AccessTokenRecord, StoredRefreshToken, TokenSet };

/** The one per-account secret in Key Vault; written only when it must be kept (refreshTokenWrites.ts). */
export const refreshTokenSecretName = (accountId: string) => `${accountId}-refresh-token`;

/** How often a throttled refresh-token write is tried again, waiting Retry-After each time, under the lease. */
const THROTTLED_WRITE_ATTEMPTS = 3;

export interface SaveOptions {
  /** What the refresh started from; absent for a new authorization (always written). */
  previous?: StoredRefreshToken;
  /** Default 'revoking': write any new refresh token at once. */
  rotation?: RefreshTokenRotation;
  now?: number;
}

/**
 * Where an account's tokens live: the refresh token in the secret store (Key Vault), the access token sealed
 * with a key from the secret store in a table row that every instance reads (storage/accessTokenTable.ts).
 * A refresh costs at most one Key Vault write, and none when the refresh token did not change.
 */
export class TokenStore {
  constructor(
    private readonly secrets: SecretStore,
    private readonly accessTokens: AccessTokenTable,
    private readonly key: AccessTokenKey,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {}

  /** The account's access token for SMTP, or for Microsoft Graph (requested on its own from the same grant). */
  async readAccessToken(accountId: string, audience: TokenAudience = 'smtp'): Promise<AccessTokenRecord | undefined> {
    const row = await this.accessTokens.read(accountId, audience);
    if (!row) return undefined;
    return openAccessToken(await this.key.reloadIfNot(row.keyId), sealedFor(accountId, audience), row);
  }

  async readRefreshToken(accountId: string): Promise<string | undefined> {
    return (await this.readStoredRefreshToken(accountId))?.value;
  }

  readStoredRefreshToken(accountId: string): Promise<StoredRefreshToken | undefined> {
    return this.secrets.read(refreshTokenSecretName(accountId));
  }

  /**
   * Saves a token response: the refresh token first, when it must be kept (if the access-token write then fails,
   * the new refresh token is already safe), then the sealed access token. Returns whether Key Vault was written.
   */
  async save(
    accountId: string,
    tokens: TokenSet,
    options: SaveOptions = {},
    audience: TokenAudience = 'smtp',
  ): Promise<{ refreshTokenWritten: boolean }> {
    const now = options.now ?? Date.now();
    const write = mustWriteRefreshToken(options.rotation ?? 'revoking', tokens.refreshToken, options.previous, now);
    if (write && tokens.refreshToken) await this.writeRefreshToken(accountId, tokens.refreshToken);
    const record: AccessTokenRecord = {
      accessToken: tokens.accessToken,
      expiresAt: tokens.expiresAt,
      ...(tokens.scope ? { scope: tokens.scope } : {}),
    };
    await this.accessTokens.write(
      accountId,
      sealAccessToken(await this.key.get(), sealedFor(accountId, audience), record),
      audience,
    );
    return { refreshTokenWritten: write };
  }

  // A rotated refresh token may be the only live one: a 429 is waited out here, under the lease, not given up on.
  private async writeRefreshToken(accountId: string, refreshToken: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.secrets.set(refreshTokenSecretName(accountId), refreshToken, { contentType: 'oauth-refresh-token' });
        return;
      } catch (error) {
        if (!isThrottled(error) || attempt >= THROTTLED_WRITE_ATTEMPTS) throw error;
        await this.sleep(error.retryAfterMs);
      }
    }
  }
}

/** What a sealed token is bound to: the account, and for a Graph token its audience too (not interchangeable). */
function sealedFor(accountId: string, audience: TokenAudience): string {
  return audience === 'smtp' ? accountId : `${accountId}:${audience}`;
}
