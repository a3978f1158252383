import type { TokenAudience } from '../oauth/graphToken';
import type { AccessTokenRecord, TokenSet } from '../oauth/tokenSet';
import type { SecretStore } from '../storage/secretStore';

export type { AccessTokenRecord, TokenSet };

/** What we keep per account in Key Vault: two secrets, so that an unchanged refresh token is never rewritten. */
export const refreshTokenSecretName = (accountId: string) => `${accountId}-refresh-token`;
export const accessTokenSecretName = (accountId: string, audience: TokenAudience = 'smtp') =>
  // A suffix, not an infix: `<id>-graph-access-token` would be the SMTP token of an account called `<id>-graph`.
  audience === 'smtp' ? `${accountId}-access-token` : `${accountId}-access-token-${audience}`;

export class TokenStore {
  constructor(private readonly secrets: SecretStore) {}

  async readAccessToken(accountId: string, audience: TokenAudience = 'smtp'): Promise<AccessTokenRecord | undefined> {
    const raw = await this.secrets.get(accessTokenSecretName(accountId, audience));
    if (!raw) return undefined;
    try {
      const parsed = JSON.parse(raw) as Partial<AccessTokenRecord>;
      if (typeof parsed.accessToken !== 'string' || typeof parsed.expiresAt !== 'number') return undefined;
      return { accessToken: parsed.accessToken, expiresAt: parsed.expiresAt, ...(parsed.scope ? { scope: parsed.scope } : {}) };
    } catch {
      return undefined;
    }
  }

  readRefreshToken(accountId: string): Promise<string | undefined> {
    return this.secrets.get(refreshTokenSecretName(accountId));
  }

  /**
   * Saves a token response. The rotated refresh token is written first: if the access-token write then fails,
   * the new refresh token is already safe (losing it would kill the grant once the old one is revoked).
   */
  async save(
    accountId: string,
    tokens: TokenSet,
    previousRefreshToken?: string,
    audience: TokenAudience = 'smtp',
  ): Promise<void> {
    if (tokens.refreshToken && tokens.refreshToken !== previousRefreshToken) {
      await this.secrets.set(refreshTokenSecretName(accountId), tokens.refreshToken, { contentType: 'oauth-refresh-token' });
    }
    const record: AccessTokenRecord = {
      accessToken: tokens.accessToken,
      expiresAt: tokens.expiresAt,
      ...(tokens.scope ? { scope: tokens.scope } : {}),
    };
    await this.secrets.set(accessTokenSecretName(accountId, audience), JSON.stringify(record), {
      contentType: 'application/json',
    });
  }
}
