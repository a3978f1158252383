/**
 * The last outcome of each kind of storage request the relay makes (the identity's token, the message writes,
 * the allowed-senders read, the activity report), for GET /health: `ok` only while none of them last failed,
 * so that a relay whose identity or network is broken does not look healthy until a printer tries.
 */
export interface StorageProblem {
  part: string;
  reason: string;
  since: string;
}

export class StorageHealth {
  private readonly failing = new Map<string, StorageProblem>();

  ok(part: string): void {
    this.failing.delete(part);
  }

  failed(part: string, reason: string): void {
    if (!this.failing.has(part)) this.failing.set(part, { part, reason: reason.slice(0, 200), since: new Date().toISOString() });
  }

  problems(): StorageProblem[] {
    return [...this.failing.values()];
  }
}
