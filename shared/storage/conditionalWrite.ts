import { RestError, type TableClient, type TableEntity } from '@azure/data-tables';

/**
 * The one rule for every row that several instances share (ledger, rate budget, connection slots, refresh lease,
 * authorization requests): write only with the ETag that was read, or insert only if the row is absent. A write
 * that loses the race returns `undefined`: the caller reads again and decides again; it never retries blindly.
 */

/** Table entities as read, with the ETag a conditional write needs. */
export type ReadEntity<T extends object> = T & { partitionKey: string; rowKey: string; etag: string };

/** Reads one row; `undefined` when there is none. */
export async function readRow<T extends object>(
  table: TableClient,
  partitionKey: string,
  rowKey: string,
): Promise<ReadEntity<T> | undefined> {
  try {
    return (await table.getEntity<T>(partitionKey, rowKey)) as ReadEntity<T>;
  } catch (error) {
    if (isStatus(error, 404)) return undefined;
    throw error;
  }
}

/**
 * Replaces the row if it still has `etag`; without an etag, inserts it if absent. Returns the row's new ETag, or
 * `undefined` when another writer got there first (409 on insert; 412 or 404 on replace).
 */
export async function writeIfUnchanged<T extends object>(
  table: TableClient,
  entity: TableEntity<T>,
  etag: string | undefined,
  /** `Merge` keeps the fields the entity does not name. */
  mode: 'Replace' | 'Merge' = 'Replace',
): Promise<string | undefined> {
  try {
    const response = etag ? await table.updateEntity(entity, mode, { etag }) : await table.createEntity(entity);
    return response.etag ?? '';
  } catch (error) {
    // An insert loses to a row that appeared (409); a replace to a row changed (412) or deleted (404) meanwhile.
    if (etag ? isStatus(error, 412) || isStatus(error, 404) : isStatus(error, 409)) return undefined;
    throw error;
  }
}

/** Deletes the row if it still has `etag`. False when it was changed or is gone already. */
export async function deleteIfUnchanged(
  table: TableClient,
  partitionKey: string,
  rowKey: string,
  etag: string,
): Promise<boolean> {
  try {
    await table.deleteEntity(partitionKey, rowKey, { etag });
    return true;
  } catch (error) {
    if (isStatus(error, 412) || isStatus(error, 404)) return false;
    throw error;
  }
}

function isStatus(error: unknown, status: number): boolean {
  return error instanceof RestError && error.statusCode === status;
}
