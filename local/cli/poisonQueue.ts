/**
 * Queue `mail-outbox-poison`: the messages the Functions host gave up on. Listing peeks at them (and joins what the
 * ledger knows of each); retrying moves them back to `mail-outbox` as they are, the copy first and then the
 * delete, so a crash between the two leaves two copies of one id, which the ledger sends once.
 */
import type { QueueClient } from '@azure/storage-queue';
import { decodeQueueMessage } from '../../shared/message/decodeQueueMessage';
import type { DeliveryLedger, DeliveryRecord } from '../../shared/storage/deliveryLedger';

export interface PoisonedMessage {
  queueMessageId: string;
  /** The message's id (or the queue message id when it has none that can be read). */
  id: string;
  /** The message's account, or the one the send path chose for it (the default account). */
  account: string | undefined;
  insertedOn: Date | undefined;
  /** What the ledger says of the id now, if anything. */
  ledger: Pick<DeliveryRecord, 'status' | 'code' | 'reason'> | undefined;
}

/** The queue service gives at most 32 messages per call. */
const PAGE = 32;
/** How long the messages looked at during a retry stay hidden from the host (they are all handled well before). */
const HOLD_SECONDS = 60;

/** The first 32 messages of the poison queue (peeked: nothing changes). */
export async function listPoisoned(poison: QueueClient, ledger: DeliveryLedger): Promise<PoisonedMessage[]> {
  if (!(await poison.exists())) return [];
  const { peekedMessageItems } = await poison.peekMessages({ numberOfMessages: PAGE });
  return Promise.all(
    peekedMessageItems.map(async (item) => {
      const { id, account } = identify(item.messageText, item.messageId);
      const row = await ledger.get(id);
      return {
        queueMessageId: item.messageId,
        id,
        account: account ?? row?.account,
        insertedOn: item.insertedOn,
        ledger: row ? { status: row.status, code: row.code, reason: row.reason } : undefined,
      };
    }),
  );
}

/**
 * Moves the poisoned messages whose id `wanted` accepts back to the outbox; returns their ids. The others are
 * held hidden while the queue is read through, then made visible again as they were.
 */
export async function retryPoisoned(
  poison: QueueClient,
  outbox: QueueClient,
  wanted: (id: string) => boolean,
): Promise<{ moved: string[]; left: number }> {
  if (!(await poison.exists())) return { moved: [], left: 0 };
  const moved: string[] = [];
  const held: Array<{ messageId: string; popReceipt: string }> = [];
  try {
    for (;;) {
      const { receivedMessageItems } = await poison.receiveMessages({ numberOfMessages: PAGE, visibilityTimeout: HOLD_SECONDS });
      if (receivedMessageItems.length === 0) break;
      for (const item of receivedMessageItems) {
        const { id } = identify(item.messageText, item.messageId);
        if (!wanted(id)) {
          held.push({ messageId: item.messageId, popReceipt: item.popReceipt });
          continue;
        }
        await outbox.sendMessage(item.messageText, { messageTimeToLive: -1 });
        await poison.deleteMessage(item.messageId, item.popReceipt);
        moved.push(id);
      }
    }
  } finally {
    for (const { messageId, popReceipt } of held)
      await poison.updateMessage(messageId, popReceipt, undefined, 0).catch(() => undefined);
  }
  return { moved, left: held.length };
}

function identify(text: string, queueMessageId: string): { id: string; account: string | undefined } {
  const decoded = decodeQueueMessage(text);
  return decoded.ok
    ? { id: decoded.message.id ?? queueMessageId, account: decoded.message.account }
    : { id: decoded.id ?? queueMessageId, account: decoded.account };
}
