import { odata, type TableClient } from '@azure/data-tables';
import type { OutcomeCode } from '../outcomeCodes';
import { readRow, writeIfUnchanged } from './conditionalWrite';

/**
 * Table `deliveries`: one row per message id. It makes retries idempotent (a sent message is never sent
 * again) and is the audit trail a person reads. Never holds a body or a secret.
 */
export type DeliveryStatus = 'sending' | 'sent' | 'failed' | 'deferred';

export interface DeliveryRecord {
  id: string;
  status: DeliveryStatus;
  account?: string;
  /** The SMTP relay's device, for a message that came through the relay. */
  device?: string;
  /** SMTP attempts (throttling and account waits are not attempts). */
  attempts: number;
  deferrals: number;
  code?: OutcomeCode;
  reason?: string;
  smtpReply?: string;
  /** The RFC 5322 Message-ID we gave the mail. */
  messageId?: string;
  queueMessageId?: string;
  subject?: string;
  recipients?: number;
  firstSeenAt: string;
  updatedAt: string;
  sentAt?: string;
  /** While status is `sending`: until when the attempt holds the message. */
  sendingUntil?: string;
  nextAttemptAt?: string;
  /** While deferred: the waiting copy on the queue (id and pop receipt), so that it can be made visible early. */
  waitingCopy?: string;
  /**
   * The message's place in its mailbox's waiting line (the send slot the rate budget reserved for it). It is kept
   * through every later deferral that is not its turn being used (connections busy, the account gate), until the
   * budget grants it.
   */
  lineSlot?: string;
  /** The row's version as read; a write with it fails once anybody else wrote the row. */
  etag?: string;
}

const ROW = 'd';

/**
 * Every write is conditional (see conditionalWrite.ts): with the ETag of the row it was decided on, or an insert
 * when there was no row. Nothing is ever written unconditionally, so a write decided on an old state (a deferral
 * decided before another copy claimed the message, a claim decided before the outcome was written) loses.
 */
export class DeliveryLedger {
  constructor(readonly table: TableClient) {}

  async get(id: string): Promise<DeliveryRecord | undefined> {
    const entity = await readRow<Record<string, unknown>>(this.table, ledgerKey(id), ROW);
    return entity ? fromEntity(id, entity) : undefined;
  }

  /**
   * Writes the whole row if nobody changed it since `record.etag` was read (no etag: only if there is no row yet).
   * Returns the row's new ETag, or `undefined` when another attempt wrote first: read again and decide again.
   */
  write(record: Omit<DeliveryRecord, 'updatedAt'>): Promise<string | undefined> {
    return writeIfUnchanged(this.table, toEntity(record), record.etag);
  }

  /** The account's deferred rows (a full scan: for a new authorization, not for every message). */
  waitingOf(accountId: string): AsyncIterable<DeliveryRecord> {
    return this.rows(odata`account eq ${accountId} and status eq 'deferred'`);
  }

  /** Rows updated since `since`, for the admin page's counts. */
  updatedSince(since: Date): AsyncIterable<DeliveryRecord> {
    return this.rows(`updatedAt ge '${since.toISOString()}'`);
  }

  private async *rows(filter: string): AsyncIterable<DeliveryRecord> {
    for await (const entity of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
      yield fromEntity(String(entity.messageKey ?? entity.partitionKey), entity);
    }
  }
}

/** Table keys may not contain / \ # ? or control characters: percent-encode those (and %). */
export function ledgerKey(id: string): string {
  return id.replace(/[%/\\#?\x00-\x1f\x7f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}

function toEntity(record: Omit<DeliveryRecord, 'updatedAt'>) {
  const entity: Record<string, unknown> = { partitionKey: ledgerKey(record.id), rowKey: ROW, messageKey: record.id };
  for (const [key, value] of Object.entries(record)) {
    if (key === 'id' || key === 'etag' || value === undefined) continue;
    entity[key] = value;
  }
  entity.updatedAt = new Date().toISOString();
  return entity as { partitionKey: string; rowKey: string };
}

function fromEntity(id: string, entity: Record<string, unknown>): DeliveryRecord {
  const record: Record<string, unknown> = { id };
  for (const [key, value] of Object.entries(entity)) {
    if (['partitionKey', 'rowKey', 'messageKey', 'timestamp', 'odata.metadata'].includes(key)) continue;
    record[key] = value;
  }
  record.attempts = Number(record.attempts ?? 0);
  record.deferrals = Number(record.deferrals ?? 0);
  return record as unknown as DeliveryRecord;
}
