import type { TableClient } from '@azure/data-tables';

/** What the admin sees per account. Never holds a secret. */
export type AccountState =
  'not_authorized' | 'ready' | 'reauthorization_required' | 'configuration_error' | 'degraded' | 'paused' | 'stale';

export interface AccountStatus {
  accountId: string;
  state: AccountState;
  /** The signed-in identity shown to people (email / preferred_username). */
  authorizedUser?: string;
  /** The stable identity: Microsoft `tid/oid`, Google `sub`. */
  authorizedUserId?: string;
  authorizedAt?: string;
  scopes?: string;
  tokenExpiresAt?: string;
  lastRefreshAt?: string;
  lastRefreshOkAt?: string;
  lastErrorCode?: string;
  lastError?: string;
  /** The provider's own error, e.g. `invalid_grant AADSTS700082`. */
  providerError?: string;
  consecutiveFailures?: number;
  pausedUntil?: string;
  /** The incident an alert was already sent for (one alert per incident). */
  alertedIncident?: string;
  updatedAt?: string;
}

const PARTITION = 'account';

export class AccountStatusTable {
  constructor(private readonly table: TableClient) {}

  async get(accountId: string): Promise<AccountStatus | undefined> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(PARTITION, accountId);
      return fromEntity(entity);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  }

  async list(): Promise<AccountStatus[]> {
    const out: AccountStatus[] = [];
    for await (const entity of this.table.listEntities<Record<string, unknown>>({
      queryOptions: { filter: `PartitionKey eq '${PARTITION}'` },
    })) {
      out.push(fromEntity(entity));
    }
    return out;
  }

  /** Merges the given fields into the row (creating it); `undefined` fields are left as they are, `null` clears. */
  async patch(accountId: string, fields: { [K in keyof AccountStatus]?: AccountStatus[K] | null }): Promise<void> {
    const entity: Record<string, unknown> = { partitionKey: PARTITION, rowKey: accountId, updatedAt: new Date().toISOString() };
    for (const [key, value] of Object.entries(fields)) {
      if (key === 'accountId' || value === undefined) continue;
      entity[key] = value === null ? '' : value;
    }
    await this.table.upsertEntity(entity as never, 'Merge');
  }
}

function fromEntity(entity: Record<string, unknown>): AccountStatus {
  const status: Record<string, unknown> = { accountId: entity.rowKey };
  for (const [key, value] of Object.entries(entity)) {
    if (['partitionKey', 'rowKey', 'etag', 'timestamp', 'odata.metadata'].includes(key) || value === '' || value === null)
      continue;
    status[key] = value;
  }
  if (!status.state) status.state = 'not_authorized';
  return status as unknown as AccountStatus;
}
