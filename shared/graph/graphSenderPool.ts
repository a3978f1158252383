import type { TableClient } from '@azure/data-tables';
import type { Account } from '../config/account';
import { ConnectionSlots } from '../limits/connectionSlots';
import { DEFAULT_GRAPH_TIMEOUT_MS, GraphSender, graphSlotsKey, type GraphSenderOptions } from './graphSender';

export const DEFAULT_GRAPH_SENDER_OPTIONS: GraphSenderOptions = { timeoutMs: DEFAULT_GRAPH_TIMEOUT_MS, idleMs: 30_000 };

/**
 * Per account, this instance's GraphSender, for the life of the process (as SenderPool keeps the SMTP senders).
 * Two account ids of one mailbox and app share its 4 Graph slots: the slots are keyed by graphSlotsKey.
 */
export class GraphSenderPool {
  private readonly senders = new Map<string, GraphSender>();

  constructor(
    private readonly leases: TableClient,
    private readonly holder: string,
    private readonly options: GraphSenderOptions = DEFAULT_GRAPH_SENDER_OPTIONS,
  ) {}

  senderFor(account: Account): GraphSender {
    let sender = this.senders.get(account.id);
    if (!sender) {
      const slots = new ConnectionSlots(
        this.leases,
        graphSlotsKey(account),
        () => account.graph?.concurrentRequests ?? 4,
        this.holder,
      );
      sender = new GraphSender(account, slots, this.options);
      this.senders.set(account.id, sender);
    }
    return sender;
  }

  /** Gives back every Graph slot (shutdown, tests). */
  async close(): Promise<void> {
    await Promise.all([...this.senders.values()].map((sender) => sender.close()));
  }
}
