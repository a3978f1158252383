import type { AccountStatus, AccountStatusTable } from '../storage/accountStatusTable';

/** The runtime service key of the instance's gate (see deliveryServices), for those who change an account's state. */
export const ACCOUNT_GATE_SERVICE = 'gate';

export type GateDecision = { open: true } | { open: false; code: string; reason: string; retryAfterMs?: number };

/**
 * Whether an account may send now, from its status row, cached briefly so that steady sending costs no
 * storage read per message. An account waiting for an admin holds its messages back without touching the
 * token endpoint or the SMTP server.
 */
export class AccountGate {
  private readonly cache = new Map<string, { status: AccountStatus | undefined; readAt: number }>();

  constructor(
    private readonly table: AccountStatusTable,
    private readonly ttlMs = 10_000,
  ) {}

  async check(accountId: string): Promise<GateDecision> {
    const status = await this.status(accountId);
    if (!status) return { open: true };
    switch (status.state) {
      case 'reauthorization_required':
        return {
          open: false,
          code: 'needs_reauthorization',
          reason: `Account "${accountId}" needs to be authorized again: ${status.lastError ?? 'the grant is no longer valid'}.`,
        };
      case 'configuration_error':
        return {
          open: false,
          code: 'config_error',
          reason: `Account "${accountId}" has a configuration problem: ${status.lastError ?? 'see the admin page'}.`,
        };
      case 'paused': {
        const until = status.pausedUntil ? Date.parse(status.pausedUntil) : 0;
        if (until > Date.now())
          return {
            open: false,
            code: status.lastErrorCode ?? 'paused',
            reason: `Account "${accountId}" is paused until ${status.pausedUntil}: ${status.lastError ?? ''}`.trim(),
            retryAfterMs: until - Date.now(),
          };
        return { open: true };
      }
      default:
        return { open: true };
    }
  }

  /** Records a state change made by the send path, updates the cache at once, and returns the status before it. */
  async update(accountId: string, fields: Partial<AccountStatus>): Promise<AccountStatus | undefined> {
    const before = await this.table.get(accountId);
    await this.table.patch(accountId, fields);
    this.cache.delete(accountId);
    return before;
  }

  forget(accountId: string): void {
    this.cache.delete(accountId);
  }

  private async status(accountId: string): Promise<AccountStatus | undefined> {
    const cached = this.cache.get(accountId);
    if (cached && Date.now() - cached.readAt < this.ttlMs) return cached.status;
    const status = await this.table.get(accountId);
    this.cache.set(accountId, { status, readAt: Date.now() });
    return status;
  }
}
