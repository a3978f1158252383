import * as client from 'openid-client';
import type { Account } from '../config/account';
import type { ProviderClients } from './providerClient';

export type RevokeOutcome = 'revoked' | 'not_supported' | 'failed';

/**
 * Revokes a refresh token (and with it, at most providers, the grant) at the account's provider (RFC 7009).
 * Never throws and never puts the token into what it returns: deleting an account goes on either way.
 */
export async function revokeGrant(
  providers: ProviderClients,
  account: Account,
  refreshToken: string,
): Promise<{ outcome: RevokeOutcome; reason?: string }> {
  let config: client.Configuration;
  try {
    config = await providers.configuration(account);
  } catch (error) {
    return { outcome: 'failed', reason: `the provider could not be reached: ${(error as Error).message}` };
  }
  if (!config.serverMetadata().revocation_endpoint) return { outcome: 'not_supported' };
  try {
    await client.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
    return { outcome: 'revoked' };
  } catch (error) {
    const code = (error as { error?: string }).error;
    return { outcome: 'failed', reason: code ?? (error as Error).message };
  }
}
