import { odata, type TableClient } from '@azure/data-tables';
import { readRow } from '../storage/conditionalWrite';
import type { AccountStatus, StatusPatchFields } from './accountStatus';

const PARTITION = 'account';
/** What `effectiveState` reads. */
const STATE_FIELDS = ['RowKey', 'state', 'pausedUntil', 'lastRefreshOkAt', 'authorizedAt'] as const;

/**
 * The `accounts` table, read by everyone and written only by AccountStateWriter. `cached()` serves the send
 * path, so that steady sending costs no storage read per message; every write through `patch` drops the
 * cached row, so the instance that wrote a new state (a new authorization, a revoked grant) sees it at once.
 */
export class AccountStatusTable {
  private readonly cache = new Map<string, { status: AccountStatus | undefined; readAt: number }>();

  constructor(
    private readonly table: TableClient,
    private readonly cacheTtlMs = 10_000,
  ) {}

  /** The row as read at most `cacheTtlMs` ago by this instance. */
  async cached(accountId: string): Promise<AccountStatus | undefined> {
    const hit = this.cache.get(accountId);
    if (hit && Date.now() - hit.readAt < this.cacheTtlMs) return hit.status;
    const status = await this.get(accountId);
    this.cache.set(accountId, { status, readAt: Date.now() });
    return status;
  }

  /** Drops the cached row (another writer on this instance changed it, or a caller knows it is out of date). */
  forget(accountId: string): void {
    this.cache.delete(accountId);
  }

  async get(accountId: string): Promise<AccountStatus | undefined> {
    const entity = await readRow<Record<string, unknown>>(this.table, PARTITION, accountId);
    return entity ? fromEntity(entity) : undefined;
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

  /** The rows whose ids lie between `first` and `last` (inclusive): one page of the status page in one query. */
  async listRange(first: string, last: string): Promise<AccountStatus[]> {
    const out: AccountStatus[] = [];
    const filter = odata`PartitionKey eq ${PARTITION} and RowKey ge ${first} and RowKey le ${last}`;
    for await (const entity of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
      out.push(fromEntity(entity));
    }
    return out;
  }

  /** Every row with only the fields that decide its effective state: the counts by state, at a fraction of `list`. */
  async listStates(): Promise<AccountStatus[]> {
    const out: AccountStatus[] = [];
    for await (const entity of this.table.listEntities<Record<string, unknown>>({
      queryOptions: { filter: `PartitionKey eq '${PARTITION}'`, select: [...STATE_FIELDS] },
    })) {
      out.push(fromEntity(entity));
    }
    return out;
  }

  /**
   * Merges the given fields into the row (creating it); `undefined` fields are left as they are, `null` clears.
   * Only AccountStateWriter calls this: it owns the rules of what goes together.
   */
  async patch(accountId: string, fields: StatusPatchFields): Promise<void> {
    const entity: Record<string, unknown> = { partitionKey: PARTITION, rowKey: accountId, updatedAt: new Date().toISOString() };
    for (const [key, value] of Object.entries(fields)) {
      if (key === 'accountId' || value === undefined) continue;
      entity[key] = value === null ? '' : value;
    }
    await this.table.upsertEntity(entity as never, 'Merge');
    // After the write: a read racing it would otherwise cache the old row again.
    this.cache.delete(accountId);
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
