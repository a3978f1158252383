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
      // Two account ids for one mailbox share its connection limit: the slots are the mailbox's.
      const slots = new ConnectionSlots(
        this.leases,
        mailboxKey(account),
        () => account.limits.concurrentConnections,
        this.holder,
      );
      sender = new AccountSender(account, slots, { idleMs: this.policy.connectionIdleMs, timeouts: this.policy.smtpTimeouts });
      this.senders.set(account.id, sender);
    }
    return sender;
  }

  /** The rate budget of the account's mailbox: shared by every account id that authenticates as it. */
  budgetFor(account: Account): RateBudget {
    const key = mailboxKey(account);
    let budget = this.budgets.get(key);
    if (!budget) {
      const windowMs = this.policy.rateWindowMs ?? 60_000;
      budget = new RateBudget(this.leases, key, () => ({
        perWindow: Math.max(1, Math.round((account.limits.messagesPerMinute * windowMs) / 60_000)),
        windowMs,
        ...(account.limits.recipientsPerDay ? { recipientsPerDay: account.limits.recipientsPerDay } : {}),
      }));
      this.budgets.set(key, budget);
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

/**
 * The provider's limits belong to the mailbox, the user that authenticates at the provider's SMTP server, not to
 * our account id: `provider:host:user`, made safe for a table key (no / \ # ? or control characters).
 */
export function mailboxKey(account: Account): string {
  const key = `${account.provider}:${account.smtp.host}:${account.user.toLowerCase()}`;
  return key.replace(/[%/\\#?\x00-\x1f\x7f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}
