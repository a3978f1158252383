import type { TableClient } from '@azure/data-tables';
import { deleteIfUnchanged, readRow, writeIfUnchanged } from '../storage/conditionalWrite';

/**
 * Cross-instance connection slots: an account may hold at most `limit` SMTP connections across all instances
 * (Exchange Online: 3). Each slot is a row in table `leases` held by one instance until it expires; a holder
 * renews its slots while its connections are open, so a crashed instance frees them within `leaseMs`.
 */
export interface SlotOptions {
  leaseMs?: number;
  renewEveryMs?: number;
}

export class ConnectionSlots {
  private readonly held = new Map<number, string>(); // slot → etag
  private renewTimer: NodeJS.Timeout | undefined;
  /** The renewal in flight: it gives the rows new ETags, so a release waits for it. */
  private renewing: Promise<void> | undefined;
  private readonly leaseMs: number;
  private readonly renewEveryMs: number;

  constructor(
    private readonly table: TableClient,
    /** Whose slots: the mailbox, not the account id (see mailboxKey in delivery/senderPool.ts). */
    private readonly key: string,
    private readonly limit: () => number,
    private readonly holder: string,
    options: SlotOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.renewEveryMs = options.renewEveryMs ?? Math.floor(this.leaseMs / 3);
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** Leases one free slot; undefined when all `limit` slots are held (by anyone). */
  async tryAcquire(): Promise<number | undefined> {
    const partitionKey = this.partition();
    const rows = new Map<number, { etag: string; expiresAt: number }>();
    for await (const entity of this.table.listEntities<{ expiresAt?: number }>({
      queryOptions: { filter: `PartitionKey eq '${partitionKey}'` },
    })) {
      rows.set(Number(entity.rowKey), { etag: entity.etag, expiresAt: Number(entity.expiresAt ?? 0) });
    }
    const now = Date.now();
    for (let slot = 0; slot < this.limit(); slot++) {
      if (this.held.has(slot)) continue;
      const row = rows.get(slot);
      if (row && row.expiresAt > now) continue;
      const entity = { partitionKey, rowKey: String(slot), holder: this.holder, expiresAt: now + this.leaseMs };
      const etag = await writeIfUnchanged(this.table, entity, row?.etag);
      if (etag === undefined) continue; // taken by another instance meanwhile: try the next slot
      this.held.set(slot, etag || '*');
      this.startRenewing();
      return slot;
    }
    return undefined;
  }

  async release(slot: number): Promise<void> {
    if (!this.held.has(slot)) return;
    await this.renewing;
    const etag = this.held.get(slot);
    if (etag === undefined) return;
    this.held.delete(slot);
    if (this.held.size === 0) this.stopRenewing();
    if (await deleteIfUnchanged(this.table, this.partition(), String(slot), etag)) return;
    // Changed or gone since: still ours (a renewal raced the release), taken over after our lease expired, or
    // already deleted. Read again and delete it only if it is still ours.
    await this.deleteIfStillOurs(slot);
  }

  private async deleteIfStillOurs(slot: number): Promise<void> {
    try {
      const row = await readRow<{ holder?: string }>(this.table, this.partition(), String(slot));
      if (row?.holder === this.holder) await deleteIfUnchanged(this.table, this.partition(), String(slot), row.etag);
    } catch {
      // Storage trouble: the lease expires by itself.
    }
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.held.keys()].map((slot) => this.release(slot)));
  }

  private async renew(): Promise<void> {
    for (const [slot, etag] of this.held) {
      const entity = {
        partitionKey: this.partition(),
        rowKey: String(slot),
        holder: this.holder,
        expiresAt: Date.now() + this.leaseMs,
      };
      try {
        const renewed = await writeIfUnchanged(this.table, entity, etag);
        // Lost: someone took the slot after our lease expired (we were stalled). Stop using it.
        if (renewed === undefined) this.onLost?.(slot);
        else if (this.held.has(slot)) this.held.set(slot, renewed || '*');
      } catch {
        // Storage trouble: try again at the next renewal, the lease has time left.
      }
    }
  }

  /** Called when a slot was lost (the holder must close that connection). */
  onLost?: (slot: number) => void;

  private partition(): string {
    return `slots-${this.key}`;
  }

  private startRenewing(): void {
    if (this.renewTimer) return;
    this.renewTimer = setInterval(() => {
      if (this.renewing) return;
      this.renewing = this.renew().finally(() => (this.renewing = undefined));
    }, this.renewEveryMs);
    this.renewTimer.unref();
  }

  private stopRenewing(): void {
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }
}
