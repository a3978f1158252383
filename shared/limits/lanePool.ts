import type { ConnectionSlots } from './connectionSlots';

/** What the pool needs of a lane; the sender adds what it keeps on one (an SMTP transport, say). */
export interface PooledLane {
  /** The cross-instance slot the lane holds (ConnectionSlots). */
  slot: number;
  busy: boolean;
  /** Closed as soon as its current use is done (the grant it was opened with is no longer current). */
  retired?: boolean;
  idleTimer?: NodeJS.Timeout;
}

export interface LanePoolOptions<L extends PooledLane> {
  /** How many lanes the mailbox may have across instances (read at each opening: the account may change). */
  limit(): number;
  /** A lane stays open this long after its last use, so a burst does not pay a slot round trip per message. */
  idleMs: number;
  /** A new lane on a slot just taken (busy). */
  create(slot: number): L;
  /** Frees what the sender keeps on the lane (closes a connection); the pool gives the slot back. */
  dispose?(lane: L): void;
}

/**
 * The lanes of one mailbox in this instance, each holding one of its cross-instance slots: SMTP connections
 * (AccountSender) or Graph request slots (GraphSender). A lane is taken for one message, kept open between
 * messages, and closed with its slot given back after `idleMs` without use. A sender that finds no free lane
 * asks for a slot of its own, up to the limit, so sends arriving while a lane opens open the next one instead
 * of queueing behind it.
 */
export class LanePool<L extends PooledLane> {
  private readonly lanes: L[] = [];
  private readonly waiters: Array<() => void> = [];
  /** Slot requests on their way to storage: each may become a lane, so they count towards the limit. */
  private opening = 0;
  private closed = false;

  constructor(
    private readonly slots: ConnectionSlots,
    private readonly options: LanePoolOptions<L>,
  ) {
    // Another instance took over a slot we held (its lease ran out): an idle lane on it closes.
    slots.onLost = (slot) => {
      const lane = this.lanes.find((l) => l.slot === slot);
      if (lane && !lane.busy) void this.closeLane(lane);
    };
  }

  get size(): number {
    return this.lanes.length;
  }

  /** A free lane before `deadline` (epoch ms), or undefined when every slot of the mailbox stayed taken. */
  async acquire(deadline: number): Promise<L | undefined> {
    for (;;) {
      const free = this.takeFree();
      if (free) return free;
      if (!this.closed && this.lanes.length + this.opening < this.options.limit()) {
        const lane = (await this.tryOpen()) ?? this.takeFree();
        if (lane) return lane;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return undefined;
      // Wait for one of our lanes to come free, or look again for a slot another instance gave back.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(remaining, this.lanes.length > 0 ? 2_000 : 500));
        const waiters = this.waiters;
        function done() {
          clearTimeout(timer);
          const at = waiters.indexOf(done);
          if (at !== -1) waiters.splice(at, 1);
          resolve();
        }
        waiters.push(done);
      });
    }
  }

  release(lane: L): void {
    lane.busy = false;
    if (lane.retired || this.closed || !this.lanes.includes(lane)) void this.closeLane(lane);
    else {
      // Whoever takes the lane next clears this.
      lane.idleTimer = setTimeout(() => void this.closeLane(lane), this.options.idleMs);
      lane.idleTimer.unref();
    }
    this.waiters[0]?.();
  }

  /** Closes every idle lane now and every busy one when its use is done. */
  retireAll(): void {
    for (const lane of [...this.lanes]) {
      if (lane.busy) lane.retired = true;
      else void this.closeLane(lane);
    }
  }

  /** Closes every lane; resolves once their slots are given back, so another instance can take them. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.lanes].map((lane) => this.closeLane(lane)));
    await this.slots.releaseAll();
  }

  private takeFree(): L | undefined {
    const free = this.lanes.find((lane) => !lane.busy);
    if (!free) return undefined;
    free.busy = true;
    if (free.idleTimer) clearTimeout(free.idleTimer);
    return free;
  }

  private async tryOpen(): Promise<L | undefined> {
    this.opening++;
    let slot: number | undefined;
    try {
      slot = await this.slots.tryAcquire();
    } finally {
      this.opening--;
    }
    if (slot === undefined) return undefined;
    if (this.closed) {
      await this.slots.release(slot);
      return undefined;
    }
    const lane = this.options.create(slot);
    this.lanes.push(lane);
    return lane;
  }

  /** The promise settles once the lane's slot is given back. */
  private closeLane(lane: L): Promise<void> {
    const index = this.lanes.indexOf(lane);
    if (index === -1) return Promise.resolve();
    this.lanes.splice(index, 1);
    if (lane.idleTimer) clearTimeout(lane.idleTimer);
    this.options.dispose?.(lane);
    return this.slots.release(lane.slot);
  }
}
