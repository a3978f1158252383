import type { TableClient } from '@azure/data-tables';
import { readRow, writeIfUnchanged } from '../storage/conditionalWrite';

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

export type RateGrant =
  | { ok: true }
  | {
      ok: false;
      retryAfterMs: number;
      reason: string;
      /** A place in the waiting line was reserved for the message: come back at `retryAfterMs` and present it. */
      reservedAt?: number;
      /** The caller did not say whether it holds a place in the line (see Ticket): ask again with one. */
      needsTicket?: true;
    };

/**
 * What a caller knows of its place in the waiting line. Without a ticket the budget is a plain sliding window.
 * With one, a message that holds no place may take budget only while nobody waits; otherwise it gets the next free
 * send slot (its place in the line) and comes back then; at its slot it goes before every newcomer.
 */
export interface Ticket {
  /** False: the caller has not looked (a refusal then asks it to, instead of reserving). */
  known: boolean;
  /** The slot the message reserved earlier (epoch ms), if it holds one. */
  reservedAt?: number;
}

interface Waiter extends BudgetCaller {
  resolve(grant: RateGrant): void;
}

/** A reservation is honoured from this long before its slot (queue visibility has a granularity of a second). */
const EARLY_MS = 2_000;
/** How long a caller with a ticket waits in-process for the window, at most; longer waits take a place in line. */
const TICKET_WAIT_MS = 2_500;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export class RateBudget {
  private readonly waiters: Waiter[] = [];
  private draining = false;
  private readonly bucketMs: number;
  private readonly guardMs: number;
  /** Budget this instance took ahead (counted in the shared row already), granted without a round trip. */
  private spare = { count: 0, until: 0 };
  /** Ends the drain's wait for the window early. */
  private wake: (() => void) | undefined;

  constructor(
    private readonly table: TableClient,
    /** Whose budget: the provider's limits belong to the mailbox (see mailboxKey), not to an account id. */
    private readonly key: string,
    private readonly limits: () => RateLimits,
    options: { bucketMs?: number; guardMs?: number } = {},
  ) {
    const { windowMs } = limits();
    this.bucketMs = options.bucketMs ?? Math.max(10, Math.floor(windowMs / 100));
    this.guardMs = options.guardMs ?? Math.min(2_000, Math.max(250, Math.floor(windowMs / 100)));
  }

  /**
   * Takes one message (with `recipients` recipients) from the budget, waiting at most `maxWaitMs`. With a
   * `ticket`, a message that must wait is given a place in the line (see Ticket) instead of a common retry time.
   */
  acquire(recipients: number, maxWaitMs: number, ticket?: Ticket): Promise<RateGrant> {
    if (this.spare.count > 0 && Date.now() < this.spare.until && this.waiters.length === 0) {
      this.spare.count--;
      return Promise.resolve({ ok: true });
    }
    return new Promise((resolve) => {
      this.waiters.push({ recipients, deadline: Date.now() + maxWaitMs, ticket, resolve });
      // A drain waiting for the window to free wakes up for a newcomer: it may be refused (or given a place) now.
      if (!this.draining) void this.drain();
      else this.wake?.();
    });
  }

  /** Time between two send slots of the line: slots so spaced never put more than the budget in a window. */
  get slotMs(): number {
    const { perWindow, windowMs } = this.limits();
    return Math.ceil((windowMs + this.bucketMs + this.guardMs) / perWindow);
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.waiters.length > 0) {
        const waitMs = await this.grantOnce();
        if (waitMs > 0)
          await new Promise<void>((resolve) => {
            const wake = () => {
              clearTimeout(timer);
              this.wake = undefined;
              resolve();
            };
            const timer = setTimeout(wake, waitMs);
            this.wake = wake;
          });
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
    const row = await this.read();
    const waiters = this.waiters.splice(0);
    const decision = decideGrants(row, waiters, this.limits(), Date.now(), {
      bucketMs: this.bucketMs,
      guardMs: this.guardMs,
      slotMs: this.slotMs,
    });
    if (decision.next) {
      const written = await writeIfUnchanged(
        this.table,
        { partitionKey: this.partition(), rowKey: 'window', ...decision.next },
        row.etag,
      );
      if (written === undefined) {
        this.waiters.unshift(...waiters); // lost the race: read again, decide again
        return 0;
      }
      if (decision.spare) this.spare = decision.spare;
    }
    for (const waiter of decision.granted) waiter.resolve({ ok: true });
    for (const { waiter, grant } of decision.refused) waiter.resolve(grant);
    // Callers that came while the row was written have not been looked at yet: at once, not after the wait.
    const newcomers = this.waiters.length;
    this.waiters.push(...decision.stay);
    if (this.waiters.length === 0 || newcomers > 0 || decision.granted.length > 0) return 0;
    return decision.waitMs;
  }

  private async read(): Promise<BudgetRow> {
    const entity = await readRow<{ buckets?: string; dayBuckets?: string; line?: number }>(
      this.table,
      this.partition(),
      'window',
    );
    if (!entity) return { buckets: [], dayBuckets: [], line: 0 };
    return {
      etag: entity.etag,
      buckets: JSON.parse(entity.buckets ?? '[]') as Array<[number, number]>,
      dayBuckets: JSON.parse(entity.dayBuckets ?? '[]') as Array<[number, number]>,
      line: Number(entity.line ?? 0),
    };
  }

  private partition(): string {
    return `rate-${this.key}`;
  }
}

/** The shared row of a mailbox's budget: counts in time buckets, and the last reserved slot of its line. */
export interface BudgetRow {
  etag?: string;
  buckets: Array<[number, number]>;
  dayBuckets: Array<[number, number]>;
  /** The last reserved send slot of the waiting line (epoch ms); 0: nobody waits. */
  line: number;
}

/** What decideGrants needs to know of a caller. */
export interface BudgetCaller {
  recipients: number;
  /** Until when it may wait in-process (epoch ms). */
  deadline: number;
  ticket: Ticket | undefined;
}

export interface GrantDecision<W extends BudgetCaller> {
  granted: W[];
  /** Told now: a place in the line, a time to come back, or to present its ticket. */
  refused: Array<{ waiter: W; grant: Extract<RateGrant, { ok: false }> }>;
  /** Keep waiting in-process for the window. */
  stay: W[];
  /** The row to write (conditionally) before anyone is told; none when nothing changed. */
  next?: { buckets: string; dayBuckets: string; line: number };
  /** Budget taken ahead for this instance, counted in `next`. */
  spare?: { count: number; until: number };
  /** How long until the window frees, for those who stay. */
  waitMs: number;
}

/**
 * Who gets budget now, who waits, and who gets a place in the line: a pure decision over the shared row, so that
 * it can be tested without storage. Holders of a slot go first (oldest slot first), then everybody else in
 * arrival order; a caller with a ticket that holds no place may take budget only while nobody waits.
 */
export function decideGrants<W extends BudgetCaller>(
  row: BudgetRow,
  waiters: readonly W[],
  limits: RateLimits,
  now: number,
  tuning: { bucketMs: number; guardMs: number; slotMs: number },
): GrantDecision<W> {
  const { perWindow, windowMs, recipientsPerDay } = limits;
  const { bucketMs, guardMs, slotMs } = tuning;
  const buckets = row.buckets.filter(([start]) => start + bucketMs + windowMs + guardMs > now);
  const dayBuckets = row.dayBuckets.filter(([start]) => start + HOUR + DAY > now);
  let used = buckets.reduce((sum, [, count]) => sum + count, 0);
  let dayUsed = dayBuckets.reduce((sum, [, count]) => sum + count, 0);
  // Somebody holds a later slot: newcomers queue behind them.
  const lineWaits = row.line > now;
  const holdsSlot = (w: W) => w.ticket?.reservedAt !== undefined && w.ticket.reservedAt <= now + EARLY_MS;
  const mayTake = (w: W) => !w.ticket || !lineWaits || holdsSlot(w);

  const granted: W[] = [];
  const left: W[] = [];
  const refused: GrantDecision<W>['refused'] = [];
  const order = [...waiters].sort(
    (a, b) => Number(holdsSlot(b)) - Number(holdsSlot(a)) || (a.ticket?.reservedAt ?? 0) - (b.ticket?.reservedAt ?? 0),
  );
  for (const waiter of order) {
    if (used >= perWindow || !mayTake(waiter)) {
      left.push(waiter);
      continue;
    }
    if (recipientsPerDay !== undefined && dayUsed + waiter.recipients > recipientsPerDay) {
      const oldest = dayBuckets[0]?.[0] ?? now;
      refused.push({
        waiter,
        grant: {
          ok: false,
          retryAfterMs: Math.max(60_000, oldest + HOUR + DAY - now),
          reason: `The account's budget of ${recipientsPerDay} recipients per 24 hours is used up.`,
        },
      });
      continue;
    }
    granted.push(waiter);
    used += 1;
    dayUsed += waiter.recipients;
  }

  // Nobody waits and most of the window is free: take some budget ahead, so that the next messages of this
  // instance need no round trip. It is counted at the end of its short life, which only ever counts it late.
  let spare = 0;
  const spareLifeMs = Math.min(5_000, Math.floor(windowMs / 12));
  if (
    granted.length > 0 &&
    left.length === 0 &&
    !lineWaits &&
    recipientsPerDay === undefined &&
    spareLifeMs > guardMs + bucketMs
  ) {
    const room = Math.floor(perWindow / 2) - used;
    spare = Math.min(500, Math.floor(perWindow / 20), Math.max(0, room));
    if (spare < 10) spare = 0;
  }

  // Who must wait longer than it may is refused now; with a ticket, that is a place in the line.
  const freeAt = used < perWindow ? now : (buckets[0]?.[0] ?? now) + bucketMs + windowMs + guardMs;
  const stay: W[] = [];
  let line = row.line;
  const reason = `The account's budget of ${perWindow} messages per ${Math.round(windowMs / 1000)} s is used up.`;
  for (const waiter of left) {
    const waitMs = Math.max(1, (mayTake(waiter) ? freeAt : Math.max(freeAt, row.line)) - now);
    // With a ticket, a long wait is spent in the queue, not in an invocation that other mailboxes' messages need.
    const deadline = waiter.ticket ? Math.min(waiter.deadline, now + TICKET_WAIT_MS) : waiter.deadline;
    if (!(deadline < now + waitMs || (waiter.ticket && !mayTake(waiter)))) {
      stay.push(waiter);
      continue;
    }
    if (waiter.ticket?.known && !holdsSlot(waiter)) {
      line = Math.max(line + slotMs, freeAt, now);
      refused.push({ waiter, grant: { ok: false, retryAfterMs: line - now, reason, reservedAt: line } });
    } else if (waiter.ticket && !waiter.ticket.known) {
      refused.push({ waiter, grant: { ok: false, retryAfterMs: 0, reason, needsTicket: true } });
    } else {
      // Without a ticket, or holding a slot already (kept: it stays first in the line), retry once the window frees.
      refused.push({ waiter, grant: { ok: false, retryAfterMs: Math.max(1, freeAt - now), reason } });
    }
  }

  const placed = line !== row.line;
  const decision: GrantDecision<W> = { granted, refused, stay, waitMs: Math.max(1, freeAt - now) };
  if (granted.length > 0 || placed || spare > 0) {
    if (granted.length > 0 || spare > 0) {
      addTo(buckets, Math.floor(now / bucketMs) * bucketMs, granted.length);
      if (spare > 0) addTo(buckets, Math.floor((now + spareLifeMs) / bucketMs) * bucketMs, spare);
      addTo(
        dayBuckets,
        Math.floor(now / HOUR) * HOUR,
        granted.reduce((sum, w) => sum + w.recipients, 0),
      );
    }
    decision.next = { buckets: JSON.stringify(buckets), dayBuckets: JSON.stringify(dayBuckets), line };
    if (spare > 0) decision.spare = { count: spare, until: now + spareLifeMs - guardMs };
  }
  return decision;
}

function addTo(buckets: Array<[number, number]>, start: number, count: number): void {
  if (count === 0) return;
  const same = buckets.find(([at]) => at === start);
  if (same) same[1] += count;
  else {
    buckets.push([start, count]);
    buckets.sort((a, b) => a[0] - b[0]);
  }
}
