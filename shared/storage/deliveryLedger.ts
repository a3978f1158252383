import { odata, RestError, type TableClient } from '@azure/data-tables';

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
  code?: string;
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
  etag?: string;
}

const ROW = 'd';

export class ConflictError extends Error {
  constructor() {
    super('The delivery row was changed by another attempt.');
  }
}

export class DeliveryLedger {
  constructor(readonly table: TableClient) {}

  async get(id: string): Promise<DeliveryRecord | undefined> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(ledgerKey(id), ROW);
      return fromEntity(id, entity);
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw error;
    }
  }

  /**
   * Writes the whole row if nobody changed it since `etag` was read (no etag: only if it does not exist yet).
   * Throws ConflictError when another attempt got there first.
   */
  async put(record: Omit<DeliveryRecord, 'etag' | 'updatedAt'>, etag?: string): Promise<string> {
    const entity = toEntity(record);
    try {
      const response = etag ? await this.table.updateEntity(entity, 'Replace', { etag }) : await this.table.createEntity(entity);
      return response.etag ?? '';
    } catch (error) {
      if (error instanceof RestError && (error.statusCode === 409 || error.statusCode === 412)) throw new ConflictError();
      throw error;
    }
  }

  /** Unconditional write, for the outcome of an attempt that holds the row. */
  async record(record: Omit<DeliveryRecord, 'etag' | 'updatedAt'>): Promise<void> {
    await this.table.upsertEntity(toEntity(record), 'Replace');
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

function toEntity(record: Omit<DeliveryRecord, 'etag' | 'updatedAt'>) {
  const entity: Record<string, unknown> = { partitionKey: ledgerKey(record.id), rowKey: ROW, messageKey: record.id };
  for (const [key, value] of Object.entries(record)) {
    if (key === 'id' || value === undefined) continue;
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
