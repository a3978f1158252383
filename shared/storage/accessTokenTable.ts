import type { TableClient } from '@azure/data-tables';
import { readRow } from './conditionalWrite';

/** A row: nothing in it can be read or changed without the key. */
export interface SealedAccessToken {
  /** Which key sealed it (a short hash of the key, not the key). */
  keyId: string;
  /** base64: 12-byte IV, then the AES-256-GCM ciphertext, then the 16-byte tag. */
  sealed: string;
}

/**
 * Sealed access tokens, one row per account in table `leases`, beside the account's refresh lease (partition
 * `refresh-<id>`): every instance reads the token another one obtained without asking Key Vault. The rows hold
 * only ciphertext; the key is in Key Vault (tokens/accessTokenKey.ts).
 */
export class AccessTokenTable {
  constructor(private readonly table: TableClient) {}

  async read(accountId: string, audience: 'smtp' | 'graph' = 'smtp'): Promise<SealedAccessToken | undefined> {
    const row = await readRow<{ keyId?: unknown; sealed?: unknown }>(this.table, partition(accountId), rowOf(audience));
    return typeof row?.keyId === 'string' && typeof row.sealed === 'string'
      ? { keyId: row.keyId, sealed: row.sealed }
      : undefined;
  }

  /** Last writer wins: every writer holds a token the provider just issued, any of them is good. */
  async write(accountId: string, row: SealedAccessToken, audience: 'smtp' | 'graph' = 'smtp'): Promise<void> {
    await this.table.upsertEntity({ partitionKey: partition(accountId), rowKey: rowOf(audience), ...row }, 'Replace');
  }
}

/** One row per audience: the SMTP token, and the Microsoft Graph token of the same grant. */
const rowOf = (audience: 'smtp' | 'graph') => (audience === 'smtp' ? 'access-token' : `access-token-${audience}`);
const partition = (accountId: string) => `refresh-${accountId}`;
