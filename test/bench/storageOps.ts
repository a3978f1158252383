/**
 * Counts the storage operations this process makes, by patching the table and queue clients' methods: every
 * table call and every queue message put, not the host's own receive and delete (the pump's receiveMessages and
 * deleteMessage are not counted). A listing counts once per call.
 */
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';

const TABLE_METHODS = [
  'getEntity',
  'createEntity',
  'updateEntity',
  'upsertEntity',
  'deleteEntity',
  'listEntities',
  'submitTransaction',
] as const;
const QUEUE_METHODS = ['sendMessage'] as const;

export interface StorageOpCounter {
  readonly counts: Record<string, number>;
  total(): number;
  stop(): void;
}

export function countStorageOps(): StorageOpCounter {
  const counts: Record<string, number> = {};
  const restores: Array<() => void> = [];
  const patch = (proto: object, prefix: string, method: string) => {
    const target = proto as Record<string, unknown>;
    const original = target[method] as (...args: unknown[]) => unknown;
    target[method] = function (this: unknown, ...args: unknown[]) {
      counts[`${prefix}.${method}`] = (counts[`${prefix}.${method}`] ?? 0) + 1;
      return original.apply(this, args);
    };
    restores.push(() => (target[method] = original));
  };
  for (const method of TABLE_METHODS) patch(TableClient.prototype, 'table', method);
  for (const method of QUEUE_METHODS) patch(QueueClient.prototype, 'queue', method);
  return {
    counts,
    total: () => Object.values(counts).reduce((sum, n) => sum + n, 0),
    stop: () => restores.splice(0).forEach((restore) => restore()),
  };
}
