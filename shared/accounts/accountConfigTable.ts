import { randomUUID } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { deleteIfUnchanged, readRow, writeIfUnchanged } from '../storage/conditionalWrite';

const PARTITION = 'account';
/** One row whose value changes with every write: instances compare it instead of reading every account. */
const VERSION_PARTITION = 'directory';
const VERSION_ROW = 'version';

/** Administrative state: `paused` holds the account's messages until an admin resumes it. */
export type AdminState = 'active' | 'paused';

/** A run-time account as stored in table `accountconfigs`: the configuration as typed (never a secret). */
export interface AccountConfigRow {
  id: string;
  /** The account's JSON as validated by the MAIL_ACCOUNTS schema. */
  config: Record<string, unknown>;
  state: AdminState;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
  /** When a client secret or certificate key typed on the page was written to the secret store. */
  clientSecretSetAt?: string;
  certificateKeySetAt?: string;
  etag: string;
}

interface Entity {
  config: string;
  state: string;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
  clientSecretSetAt?: string;
  certificateKeySetAt?: string;
}

/**
 * Table `accountconfigs`: one row per run-time account, and a version row that every write replaces, so that
 * an instance learns with one point read whether anything changed since it last listed the rows.
 */
export class AccountConfigTable {
  constructor(readonly table: TableClient) {}

  /** The version now; changes with every write below. Undefined before the first run-time account. */
  async version(): Promise<string | undefined> {
    const row = await readRow<{ value: string }>(this.table, VERSION_PARTITION, VERSION_ROW);
    return row?.value;
  }

  async list(): Promise<AccountConfigRow[]> {
    const rows: AccountConfigRow[] = [];
    for await (const entity of this.table.listEntities<Entity>({
      queryOptions: { filter: `PartitionKey eq '${PARTITION}'` },
    })) {
      const row = fromEntity(entity as Entity & { rowKey: string; etag: string });
      if (row) rows.push(row);
    }
    return rows;
  }

  async get(id: string): Promise<AccountConfigRow | undefined> {
    const entity = await readRow<Entity>(this.table, PARTITION, id);
    return entity ? fromEntity(entity) : undefined;
  }

  /** Inserts (no etag) or replaces the row if unchanged since read; false when another write got there first. */
  async write(row: Omit<AccountConfigRow, 'etag'>, etag: string | undefined): Promise<boolean> {
    const entity: Record<string, unknown> & { partitionKey: string; rowKey: string } = {
      partitionKey: PARTITION,
      rowKey: row.id,
      config: JSON.stringify(row.config),
      state: row.state,
      createdAt: row.createdAt,
      createdBy: row.createdBy,
      updatedAt: row.updatedAt,
      updatedBy: row.updatedBy,
      ...(row.clientSecretSetAt ? { clientSecretSetAt: row.clientSecretSetAt } : {}),
      ...(row.certificateKeySetAt ? { certificateKeySetAt: row.certificateKeySetAt } : {}),
    };
    const written = await writeIfUnchanged(this.table, entity, etag);
    if (written === undefined) return false;
    await this.bumpVersion();
    return true;
  }

  async delete(id: string, etag: string): Promise<boolean> {
    const deleted = await deleteIfUnchanged(this.table, PARTITION, id, etag);
    if (deleted) await this.bumpVersion();
    return deleted;
  }

  // After the row write: an instance that reads the new version then lists the rows sees the row.
  private async bumpVersion(): Promise<void> {
    await this.table.upsertEntity({ partitionKey: VERSION_PARTITION, rowKey: VERSION_ROW, value: randomUUID() }, 'Replace');
  }
}

function fromEntity(entity: Entity & { rowKey: string; etag: string }): AccountConfigRow | undefined {
  let config: unknown;
  try {
    config = JSON.parse(entity.config);
  } catch {
    config = undefined;
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) config = { id: entity.rowKey };
  return {
    id: entity.rowKey,
    config: config as Record<string, unknown>,
    state: entity.state === 'paused' ? 'paused' : 'active',
    createdAt: entity.createdAt,
    createdBy: entity.createdBy,
    updatedAt: entity.updatedAt,
    updatedBy: entity.updatedBy,
    ...(entity.clientSecretSetAt ? { clientSecretSetAt: entity.clientSecretSetAt } : {}),
    ...(entity.certificateKeySetAt ? { certificateKeySetAt: entity.certificateKeySetAt } : {}),
    etag: entity.etag,
  };
}
