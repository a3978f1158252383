import type { AccountStatus } from './accountStatus';
import type { AccountStatusTable } from './accountStatusTable';

/** How long the status page's counts by state may lag behind the status table. */
export const STATE_INDEX_TTL_MS = 30_000;

/**
 * Every account's state-deciding status fields, listed in one projected scan and kept for a short while, so that
 * the status page's counts by state and its state filter do not scan the whole table on every view (10,000
 * accounts: about a second of listing). The page's own accounts are read fresh (`listRange`).
 */
export class AccountStateIndex {
  private snapshot: { byId: Map<string, AccountStatus>; readAt: number } | undefined;
  private reading: Promise<Map<string, AccountStatus>> | undefined;

  constructor(
    private readonly status: AccountStatusTable,
    private readonly ttlMs = STATE_INDEX_TTL_MS,
  ) {}

  async states(): Promise<Map<string, AccountStatus>> {
    if (this.snapshot && Date.now() - this.snapshot.readAt < this.ttlMs) return this.snapshot.byId;
    this.reading ??= this.status
      .listStates()
      .then((rows) => {
        const byId = new Map(rows.map((row) => [row.accountId, row]));
        this.snapshot = { byId, readAt: Date.now() };
        return byId;
      })
      .finally(() => (this.reading = undefined));
    return this.reading;
  }

  /** An account's state changed here (an admin action): the next view lists again. */
  forget(): void {
    this.snapshot = undefined;
  }
}
