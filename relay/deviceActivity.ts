/**
 * Per device: messages queued and refused, the last message and the last refusal with its reason, written to
 * blob `relay-activity/<hostname>.json` a few seconds after something happened, where the status page reads
 * it. One entry per configured device and one for connections that never became a device, so the report stays
 * small whatever the traffic (a flood of wrong passwords only changes a count and the last refusal). Counts
 * start at zero when the relay starts.
 */
import type { BlockBlobClient } from '@azure/storage-blob';
import type { Logger } from '../shared/log/logger';
import { NO_DEVICE, type DeviceActivity, type RelayActivity } from '../shared/relay/relayActivity';
import type { Device } from './config';
import type { Reply } from './replies';
import type { StorageHealth } from './storageHealth';

export const ACTIVITY_FLUSH_MS = 5_000;

export class DeviceActivityLog {
  private readonly entries = new Map<string, DeviceActivity>();
  private readonly startedAt = new Date().toISOString();
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly relay: string,
    devices: readonly Device[],
    private readonly target: BlockBlobClient | undefined,
    private readonly log: Logger,
    private readonly health?: StorageHealth,
  ) {
    for (const device of devices)
      this.entries.set(device.name, { device: device.name, account: device.account, queued: 0, refused: 0 });
    this.entries.set(NO_DEVICE, { device: NO_DEVICE, queued: 0, refused: 0 });
  }

  queued(device: Device, id: string): void {
    const entry = this.entries.get(device.name);
    if (!entry) return;
    entry.queued++;
    entry.lastMessage = { at: new Date().toISOString(), id };
    this.dirty = true;
  }

  refused(device: Device | undefined, reply: Reply, remote: string): void {
    const entry = this.entries.get(device?.name ?? NO_DEVICE);
    if (!entry) return;
    entry.refused++;
    entry.lastRefusal = {
      at: new Date().toISOString(),
      reason: reply.reason.slice(0, 64),
      reply: `${reply.responseCode} ${reply.message}`.slice(0, 400),
      remote: remote.slice(0, 64),
    };
    this.dirty = true;
  }

  snapshot(): RelayActivity {
    return {
      version: 1,
      relay: this.relay,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
      devices: [...this.entries.values()].map((entry) => structuredClone(entry)),
    };
  }

  /** Writes the report now, then whenever something changed, at most every `intervalMs`. */
  start(intervalMs = ACTIVITY_FLUSH_MS): void {
    if (!this.target) return;
    this.dirty = true;
    void this.flush();
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** The last report, on shutdown. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  flush(): Promise<void> {
    if (!this.target || !this.dirty) return this.writing;
    this.dirty = false;
    const target = this.target;
    this.writing = this.writing.then(async () => {
      const body = JSON.stringify(this.snapshot());
      try {
        await target.upload(body, Buffer.byteLength(body), { blobHTTPHeaders: { blobContentType: 'application/json' } });
        this.health?.ok('activity report');
      } catch (error) {
        this.dirty = true;
        const reason = `${(error as { statusCode?: number }).statusCode ?? ''} ${(error as Error).message.split('\n')[0]}`.trim();
        if (!this.health?.problems().some((p) => p.part === 'activity report'))
          this.log.warn('relay.activity_write_failed', { blob: target.url.split('?')[0], reason });
        this.health?.failed('activity report', reason);
      }
    });
    return this.writing;
  }
}
