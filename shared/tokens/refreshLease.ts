import type { TableClient } from '@azure/data-tables';
import { deleteIfUnchanged, readRow, writeIfUnchanged } from '../storage/conditionalWrite';

/**
 * One refresh per account at a time, across all instances: a row in table `leases` that an instance holds
 * until it releases it or the lease expires. With refresh-token rotation, two parallel refreshes would make
 * one of them lose the new refresh token (and some providers revoke the whole grant on reuse).
 */
export class RefreshLease {
  constructor(
    private readonly table: TableClient,
    private readonly holder: string,
    private readonly leaseMs = 60_000,
  ) {}

  /** Runs `work` while holding the account's lease, waiting up to `waitMs` for another holder to finish. */
  async withLease<T>(accountId: string, waitMs: number, work: () => Promise<T>): Promise<T | undefined> {
    const deadline = Date.now() + waitMs;
    let etag: string | undefined;
    while ((etag = await this.tryAcquire(accountId)) === undefined) {
      if (Date.now() > deadline) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    try {
      return await work();
    } finally {
      await deleteIfUnchanged(this.table, partition(accountId), 'lease', etag).catch(() => undefined);
    }
  }

  private async tryAcquire(accountId: string): Promise<string | undefined> {
    const entity = {
      partitionKey: partition(accountId),
      rowKey: 'lease',
      holder: this.holder,
      expiresAt: Date.now() + this.leaseMs,
    };
    const created = await writeIfUnchanged(this.table, entity, undefined);
    if (created !== undefined) return created;
    const current = await readRow<{ expiresAt?: number }>(this.table, entity.partitionKey, 'lease');
    if (!current || Number(current.expiresAt ?? 0) > Date.now()) return undefined;
    // The holder died: take over its expired lease, unless someone else just did.
    return writeIfUnchanged(this.table, entity, current.etag);
  }
}

const partition = (accountId: string) => `refresh-${accountId}`;
