import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';

export type AuditAction = 'create' | 'update' | 'pause' | 'resume' | 'delete';

/** One changed field: values are the configuration's own (never a secret: those say only "set"). */
export interface AuditChange {
  field: string;
  from?: string;
  to?: string;
}

export interface AuditEntry {
  at: string;
  /** The signed-in administrator, or "function key". */
  who: string;
  accountId: string;
  action: AuditAction;
  changes: AuditChange[];
  /** What else happened (e.g. "grant revoked at the provider", "secrets deleted"). */
  note?: string;
}

const PARTITION = 'audit';
const MAX_VALUE_CHARS = 200;
// Row keys sort ascending: the inverted time puts the newest first, so "the last N" is the first page.
const MAX_TIME = 9_999_999_999_999;

/** Table `accountaudit`: who changed which run-time account, when and what. Written only by accountAdmin. */
export class AccountAuditTable {
  constructor(readonly table: TableClient) {}

  async record(entry: AuditEntry): Promise<void> {
    const inverted = String(MAX_TIME - Date.parse(entry.at)).padStart(13, '0');
    await this.table.createEntity({
      partitionKey: PARTITION,
      rowKey: `${inverted}-${randomBytes(4).toString('hex')}`,
      at: entry.at,
      who: entry.who,
      accountId: entry.accountId,
      action: entry.action,
      changes: JSON.stringify(entry.changes),
      ...(entry.note ? { note: entry.note } : {}),
    });
  }

  /** The newest entries, newest first: one page of one partition, however long the trail. */
  async recent(limit = 20): Promise<AuditEntry[]> {
    const pages = this.table
      .listEntities<Record<string, string>>({ queryOptions: { filter: `PartitionKey eq '${PARTITION}'` } })
      .byPage({ maxPageSize: limit });
    for await (const page of pages) return page.slice(0, limit).map(fromEntity);
    return [];
  }
}

function fromEntity(entity: Record<string, string>): AuditEntry {
  let changes: AuditChange[];
  try {
    changes = JSON.parse(entity.changes ?? '[]') as AuditChange[];
  } catch {
    changes = [];
  }
  return {
    at: entity.at ?? '',
    who: entity.who ?? '',
    accountId: entity.accountId ?? '',
    action: (entity.action ?? 'update') as AuditAction,
    changes,
    ...(entity.note ? { note: entity.note } : {}),
  };
}

/** The fields that differ between two configurations, as dotted paths with their values as JSON text. */
export function configChanges(
  before: Record<string, unknown> | undefined,
  after: Record<string, unknown> | undefined,
): AuditChange[] {
  const a = flatten(before ?? {});
  const b = flatten(after ?? {});
  const fields = [...new Set([...a.keys(), ...b.keys()])].sort();
  const changes: AuditChange[] = [];
  for (const field of fields) {
    const from = a.get(field);
    const to = b.get(field);
    if (from === to) continue;
    changes.push({ field, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) });
  }
  return changes;
}

function flatten(value: Record<string, unknown>, prefix = '', out = new Map<string, string>()): Map<string, string> {
  for (const [key, inner] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (inner && typeof inner === 'object' && !Array.isArray(inner)) flatten(inner as Record<string, unknown>, path, out);
    else if (inner !== undefined) {
      const text = typeof inner === 'string' ? inner : JSON.stringify(inner);
      out.set(path, text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text);
    }
  }
  return out;
}
