import { RestError, type TableClient } from '@azure/data-tables';

/**
 * Cross-instance message rate: at most `perWindow` messages in any sliding window of `windowMs`
 * (Exchange Online: 30 per minute) and at most `recipientsPerDay` recipients in any 24 hours.
 * The counts live in one row of table `leases`, updated with ETags, in time buckets: a bucket leaves the
 * window only when all of it has, plus a small guard for the time between the grant and the server's count,
 * so the provider never sees more than its budget. Waiters in this process are served together, one
 * storage round trip per batch, so a busy instance does not fight itself for the row.
 */
export interface RateLimits {
  perWindow: number;
  windowMs: number;
  recipientsPerDay?: number;
}

export type RateGrant = { ok: true } | { ok: false; retryAfterMs: number; reason: string };

interface Waiter {
  recipients: number;
  deadline: number;
  resolve(grant: RateGrant): void;
}

interface Row {
  etag?: string;
  buckets: Array<[number, number]>;
  dayBuckets: Array<[number, number]>;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export class RateBudget {
  private readonly waiters: Waiter[] = [];
  private draining = false;
  private readonly bucketMs: number;
  private readonly guardMs: number;

  constructor(
    private readonly table: TableClient,
    private readonly accountId: string,
    private readonly limits: () => RateLimits,
    options: { bucketMs?: number; guardMs?: number } = {},
  ) {
    const { windowMs } = limits();
    this.bucketMs = options.bucketMs ?? Math.max(10, Math.floor(windowMs / 100));
    this.guardMs = options.guardMs ?? Math.min(2_000, Math.max(250, Math.floor(windowMs / 100)));
  }

  /** Takes one message (with `recipients` recipients) from the budget, waiting at most `maxWaitMs`. */
  acquire(recipients: number, maxWaitMs: number): Promise<RateGrant> {
    return new Promise((resolve) => {
      this.waiters.push({ recipients, deadline: Date.now() + maxWaitMs, resolve });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.waiters.length > 0) {
        const waitMs = await this.grantOnce();
        if (waitMs > 0) await sleep(waitMs);
      }
    } catch (error) {
      for (const waiter of this.waiters.splice(0)) {
        waiter.resolve({
          ok: false,
          retryAfterMs: 5_000,
          reason: `The shared rate budget could not be read (${(error as Error).message}).`,
        });
      }
    } finally {
      this.draining = false;
    }
  }

  /** One read-modify-write; returns how long to wait before the next try (0: try again now). */
  private async grantOnce(): Promise<number> {
    const { perWindow, windowMs, recipientsPerDay } = this.limits();
    const row = await this.read();
    const now = Date.now();
    const buckets = row.buckets.filter(([start]) => start + this.bucketMs + windowMs + this.guardMs > now);
    const dayBuckets = row.dayBuckets.filter(([start]) => start + HOUR + DAY > now);
    let used = buckets.reduce((sum, [, count]) => sum + count, 0);
    let dayUsed = dayBuckets.reduce((sum, [, count]) => sum + count, 0);

    const granted: Waiter[] = [];
    while (this.waiters.length > 0 && used < perWindow) {
      const waiter = this.waiters[0]!;
      if (recipientsPerDay !== undefined && dayUsed + waiter.recipients > recipientsPerDay) {
        this.waiters.shift();
        const oldest = dayBuckets[0]?.[0] ?? now;
        waiter.resolve({
          ok: false,
          retryAfterMs: Math.max(60_000, oldest + HOUR + DAY - now),
          reason: `The account's budget of ${recipientsPerDay} recipients per 24 hours is used up.`,
        });
        continue;
      }
      this.waiters.shift();
      granted.push(waiter);
      used += 1;
      dayUsed += waiter.recipients;
    }

    if (granted.length > 0) {
      const bucket = Math.floor(now / this.bucketMs) * this.bucketMs;
      const hour = Math.floor(now / HOUR) * HOUR;
      addTo(buckets, bucket, granted.length);
      addTo(
        dayBuckets,
        hour,
        granted.reduce((sum, w) => sum + w.recipients, 0),
      );
      if (await this.write(row.etag, buckets, dayBuckets)) {
        for (const waiter of granted) waiter.resolve({ ok: true });
        return 0;
      }
      this.waiters.unshift(...granted); // lost the race: read again
      return 0;
    }
    if (this.waiters.length === 0) return 0;

    const nextFree = (buckets[0]?.[0] ?? now) + this.bucketMs + windowMs + this.guardMs - now;
    const waitMs = Math.max(1, nextFree);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (waiter.deadline < now + waitMs) {
        this.waiters.splice(i, 1);
        waiter.resolve({
          ok: false,
          retryAfterMs: waitMs,
          reason: `The account's budget of ${perWindow} messages per ${Math.round(windowMs / 1000)} s is used up.`,
        });
      }
    }
    return this.waiters.length > 0 ? waitMs : 0;
  }

  private async read(): Promise<Row> {
    try {
      const entity = await this.table.getEntity<{ buckets?: string; dayBuckets?: string }>(this.partition(), 'window');
      return {
        etag: entity.etag,
        buckets: JSON.parse(entity.buckets ?? '[]') as Array<[number, number]>,
        dayBuckets: JSON.parse(entity.dayBuckets ?? '[]') as Array<[number, number]>,
      };
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return { buckets: [], dayBuckets: [] };
      throw error;
    }
  }

  private async write(
    etag: string | undefined,
    buckets: Array<[number, number]>,
    dayBuckets: Array<[number, number]>,
  ): Promise<boolean> {
    const entity = {
      partitionKey: this.partition(),
      rowKey: 'window',
      buckets: JSON.stringify(buckets),
      dayBuckets: JSON.stringify(dayBuckets),
    };
    try {
      if (etag) await this.table.updateEntity(entity, 'Replace', { etag });
      else await this.table.createEntity(entity);
      return true;
    } catch (error) {
      if (error instanceof RestError && (error.statusCode === 409 || error.statusCode === 412)) return false;
      throw error;
    }
  }

  private partition(): string {
    return `rate-${this.accountId}`;
  }
}

function addTo(buckets: Array<[number, number]>, start: number, count: number): void {
  const last = buckets[buckets.length - 1];
  if (last && last[0] === start) last[1] += count;
  else buckets.push([start, count]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
