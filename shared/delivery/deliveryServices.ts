import { alertAccountProblem } from '../alerts/accountAlerts';
import type { Account } from '../config';
import { ConnectionSlots } from '../limits/connectionSlots';
import { RateBudget } from '../limits/rateBudget';
import { CONTAINERS, QUEUES, TABLES } from '../names';
import { service, type Runtime } from '../runtime';
import { AccountSender } from '../smtp/accountSender';
import { DeliveryLedger } from '../storage/deliveryLedger';
import { tokenServiceFor } from '../tokens/tokenServiceFor';
import { INSTANCE_ID } from '../instanceId';
import { ACCOUNT_GATE_SERVICE, AccountGate } from './accountGate';
import type { DeliveryServices } from './deliverMessage';
import { DEFAULT_POLICY, type DeliveryPolicy } from './policy';

/** The send path's collaborators, built once per runtime and kept warm across invocations. */
export function deliveryServices(runtime: Runtime, policy: DeliveryPolicy = DEFAULT_POLICY): DeliveryServices {
  return service(runtime, 'delivery', () => {
    const leases = runtime.storage.table(TABLES.leases);
    const senders = new Map<string, AccountSender>();
    const budgets = new Map<string, RateBudget>();
    return {
      accounts: runtime.accounts,
      ledger: new DeliveryLedger(runtime.storage.table(TABLES.deliveries)),
      outbox: runtime.storage.queue(QUEUES.outbox),
      results: runtime.storage.queue(QUEUES.results),
      attachments: runtime.storage.container(CONTAINERS.attachments),
      tokens: tokenServiceFor(runtime),
      gate: service(runtime, ACCOUNT_GATE_SERVICE, () => new AccountGate(runtime.accountStatus)),
      policy,
      log: runtime.log,
      unrecorded: new Map(),
      alert: (account, problem, current) => alertAccountProblem(runtime, account, problem, current),
      senderFor(account: Account) {
        let sender = senders.get(account.id);
        if (!sender) {
          const slots = new ConnectionSlots(leases, account.id, () => account.limits.concurrentConnections, INSTANCE_ID);
          sender = new AccountSender(account, slots, { idleMs: policy.connectionIdleMs, timeouts: policy.smtpTimeouts });
          senders.set(account.id, sender);
        }
        return sender;
      },
      budgetFor(account: Account) {
        let budget = budgets.get(account.id);
        if (!budget) {
          budget = new RateBudget(leases, account.id, () => ({
            perWindow: account.limits.messagesPerMinute,
            windowMs: 60_000,
            ...(account.limits.recipientsPerDay ? { recipientsPerDay: account.limits.recipientsPerDay } : {}),
          }));
          budgets.set(account.id, budget);
        }
        return budget;
      },
    };
  });
}

/** Closes every SMTP connection and gives back the connection slots (tests, local runner shutdown). */
export async function closeDelivery(runtime: Runtime): Promise<void> {
  const services = runtime.services.get('delivery') as DeliveryServices | undefined;
  if (!services) return;
  await Promise.all(runtime.accounts.map((account) => services.senderFor(account).close()));
}
