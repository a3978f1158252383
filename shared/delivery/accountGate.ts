import { sendDecision, type SendDecision } from '../accounts/accountRules';
import type { AccountStatus } from '../accounts/accountStatus';
import type { AccountStatusTable } from '../accounts/accountStatusTable';

/**
 * The send path's view of an account's status: may it send now (the rule lives in accounts/accountRules), read
 * from the status table's short cache. It also notices, within that cache's lifetime, when another instance
 * replaced the account's grant or stopped the account, and calls `dropSessions` so that connections and tokens
 * of the old grant are not used any longer.
 */
export class AccountGate {
  private readonly seen = new Map<string, { grant: string | undefined; open: boolean; status: AccountStatus | undefined }>();
  /** A status read on its way: concurrent invocations of a cold instance share it instead of each reading the row. */
  private readonly reading = new Map<string, ReturnType<AccountStatusTable['cached']>>();

  constructor(
    private readonly status: AccountStatusTable,
    private readonly dropSessions: (accountId: string) => void,
    /** An administrator paused the account (run-time accounts): it waits whatever its status row says. */
    private readonly adminPause: (accountId: string) => SendDecision | undefined = () => undefined,
  ) {}

  async check(accountId: string): Promise<SendDecision> {
    const paused = this.adminPause(accountId);
    if (paused) return paused;
    let read = this.reading.get(accountId);
    if (!read) {
      read = this.status.cached(accountId).finally(() => {
        if (this.reading.get(accountId) === read) this.reading.delete(accountId);
      });
      this.reading.set(accountId, read);
    }
    const status = await read;
    const decision = sendDecision(accountId, status, Date.now());
    const grant = status?.authorizedAt;
    const before = this.seen.get(accountId);
    if (before && (before.grant !== grant || (before.open && !decision.open))) this.dropSessions(accountId);
    this.seen.set(accountId, { grant, open: decision.open, status });
    return decision;
  }

  /** The status row the last check read (for the transport an `auto` account uses now). */
  statusOf(accountId: string): AccountStatus | undefined {
    return this.seen.get(accountId)?.status;
  }

  /** The status row changed on this instance: read it again before the next message. */
  forget(accountId: string): void {
    this.reading.delete(accountId);
    this.status.forget(accountId);
  }
}
