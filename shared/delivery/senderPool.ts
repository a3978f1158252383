import type { TableClient } from '@azure/data-tables';
import type { Account } from '../config/account';
import { ConnectionSlots } from '../limits/connectionSlots';
import { RateBudget } from '../limits/rateBudget';
import { AccountSender } from '../smtp/accountSender';
import type { DeliveryPolicy } from './policy';

/**
 * Per account, this instance's SMTP connections (AccountSender) and its share of the cross-instance rate
 * budget, both coordinated through table `leases`. Kept for the life of the process, so warm instances reuse
 * their connections across invocations.
 */
export class SenderPool {
  private readonly senders = new Map<string, AccountSender>();
  private readonly budgets = new Map<string, RateBudget>();

  constructor(
    private readonly leases: TableClient,
    private readonly policy: DeliveryPolicy,
    private readonly holder: string,
  ) {}

  senderFor(account: Account): AccountSender {
    let sender = this.senders.get(account.id);
    if (!sender) {
      const slots = new ConnectionSlots(this.leases, account.id, () => account.limits.concurrentConnections, this.holder);
      sender = new AccountSender(account, slots, { idleMs: this.policy.connectionIdleMs, timeouts: this.policy.smtpTimeouts });
      this.senders.set(account.id, sender);
    }
    return sender;
  }

  budgetFor(account: Account): RateBudget {
    let budget = this.budgets.get(account.id);
    if (!budget) {
      budget = new RateBudget(this.leases, account.id, () => ({
        perWindow: account.limits.messagesPerMinute,
        windowMs: 60_000,
        ...(account.limits.recipientsPerDay ? { recipientsPerDay: account.limits.recipientsPerDay } : {}),
      }));
      this.budgets.set(account.id, budget);
    }
    return budget;
  }

  /** Closes the account's connections: their grant was replaced or revoked. */
  closeConnections(accountId: string): void {
    this.senders.get(accountId)?.closeConnections();
  }

  /** Closes every connection and gives back the connection slots (shutdown, tests). */
  async close(): Promise<void> {
    await Promise.all([...this.senders.values()].map((sender) => sender.close()));
  }
}
