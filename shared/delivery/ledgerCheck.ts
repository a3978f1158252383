import type { Decoded } from '../message/decodeQueueMessage';
import type { DeliveryRecord } from '../storage/deliveryLedger';
import type { DeliveryOutcome, DeliveryServices, QueueMeta, RecordDraft } from './deliveryServices';
import { fail, finish } from './outcomes';

export type LedgerCheck =
  { done: DeliveryOutcome } | { done?: undefined; existing: DeliveryRecord | undefined; draft: RecordDraft };

/**
 * The ledger's view of one message, read only when needed: a new message is claimed by inserting its row (a
 * conflict means the ledger knows it, and only then is the row read); every other end of the pipeline (a
 * deferral, a failure) reads it first, so that it carries the counts of earlier attempts and never overwrites a
 * final outcome.
 */
export class LedgerView {
  private checked: Promise<LedgerCheck> | undefined;
  private result: LedgerCheck | undefined;
  /** The row of a message the ledger does not know yet. */
  readonly fresh: RecordDraft;

  constructor(
    private readonly services: DeliveryServices,
    private readonly decoded: Decoded,
    readonly id: string,
    private readonly meta: QueueMeta,
    private readonly now: number,
  ) {
    this.fresh = {
      id,
      attempts: 0,
      deferrals: 0,
      firstSeenAt: (meta.insertedAt ?? new Date(now)).toISOString(),
      queueMessageId: meta.queueMessageId,
    };
  }

  /** The ledger has been read (by check()). */
  get loaded(): LedgerCheck | undefined {
    return this.result;
  }

  /** Reads the row once and settles what it says (a duplicate, another attempt's claim); see checkLedger. */
  check(): Promise<LedgerCheck> {
    this.checked ??= checkLedger(this.services, this.decoded, this.id, this.meta, this.now).then((result) => {
      this.result = result;
      return result;
    });
    return this.checked;
  }

  /** Reads the row again: a conditional write lost, so what this attempt decided on is out of date. */
  recheck(): Promise<LedgerCheck> {
    this.checked = undefined;
    this.result = undefined;
    return this.check();
  }
}

/** How often a decision is taken again after its write lost, before the invocation fails and the host retries. */
export const MAX_DECISIONS = 8;

/**
 * What the ledger already knows of this message id, before anything else happens: sent or failed (a duplicate:
 * acknowledged, never sent again), an outcome this instance could not record yet, or a `sending` claim of
 * another attempt (still running: a copy waits on the queue without touching the row; dead: the mail may have
 * gone out, so it is not resent).
 */
export async function checkLedger(
  services: DeliveryServices,
  decoded: Decoded,
  id: string,
  meta: QueueMeta,
  now: number,
): Promise<LedgerCheck> {
  const { ledger, log } = services;
  for (let decision = 0; decision < MAX_DECISIONS; decision++) {
    const existing = await ledger.get(id);
    if (existing?.status === 'sent' || existing?.status === 'failed') {
      services.unrecorded.delete(id);
      log.info('mail.duplicate', { messageId: id, account: existing.account, status: existing.status });
      return { done: 'duplicate' };
    }
    const unrecorded = services.unrecorded.get(id);
    if (unrecorded && existing?.status === 'sending') {
      if (!(await finish(services, { ...unrecorded, etag: existing.etag }))) continue;
      services.unrecorded.delete(id);
      return { done: unrecorded.status === 'sent' ? 'sent' : 'failed' };
    }

    const draft: RecordDraft = {
      id,
      attempts: existing?.attempts ?? 0,
      deferrals: existing?.deferrals ?? 0,
      firstSeenAt: existing?.firstSeenAt ?? (meta.insertedAt ?? new Date(now)).toISOString(),
      queueMessageId: meta.queueMessageId,
      ...(existing?.account ? { account: existing.account } : {}),
      ...(existing?.lineSlot ? { lineSlot: existing.lineSlot } : {}),
      ...(existing?.etag ? { etag: existing.etag } : {}),
    };
    if (existing?.status !== 'sending') return { existing, draft };
    // This instance's own claim, unchanged since it ended unsent: nothing went out, so the message may be sent.
    if (existing.etag !== undefined && services.unsentClaims.get(id) === existing.etag) {
      services.unsentClaims.delete(id);
      log.info('mail.unsent_claim_released', { messageId: id, account: existing.account });
      return { existing, draft };
    }

    const sameQueueMessage = existing.queueMessageId === meta.queueMessageId;
    const leaseLive = existing.sendingUntil !== undefined && Date.parse(existing.sendingUntil) > now;
    if (!sameQueueMessage && leaseLive) {
      // A second copy of a message another attempt is sending. The row is the claim's: this copy waits on the queue
      // without writing, and comes back once that attempt is over to find its outcome.
      if (!decoded.ok) return { done: 'duplicate' };
      const { seconds } = await services.outbox.requeue(decoded.message, id, Date.parse(existing.sendingUntil!) - now + 1_000);
      log.info('mail.deferred', {
        messageId: id,
        account: existing.account,
        outcome: 'deferred',
        errorCode: 'in_progress',
        reason: 'Another attempt is sending this message.',
        retryInSeconds: seconds,
        countedAsAttempt: false,
      });
      return { done: 'deferred' };
    }
    // The attempt that claimed this message died between handing it to the server and recording the outcome.
    const ended = await fail(
      services,
      { ...draft, ...withoutBookkeeping(existing), etag: existing.etag },
      'delivery_unconfirmed',
      'An earlier attempt was interrupted after the message was handed to the SMTP server; it may have been delivered. It was not sent again, to avoid a duplicate. Enqueue it with a new id to send it anyway.',
    );
    if (ended !== 'lost') return { done: ended };
  }
  throw new Error(`The ledger row of message ${id} kept changing while it was read; the host retries the message.`);
}

function withoutBookkeeping(existing: DeliveryRecord): Partial<DeliveryRecord> {
  const { updatedAt: _updatedAt, status: _status, ...rest } = existing;
  return rest;
}
