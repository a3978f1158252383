/**
 * Failed logins per client address: each failure within the window makes the next answer slower, and after
 * `maxFailures` the address is refused outright (without checking the password) until the block expires.
 * In memory, per relay process: enough against guessing; a restart, SIGUSR2 (main.ts) or `unblock` (the health
 * port's /logins routes) lifts blocks.
 */
import type { LoginFailurePolicy } from './config';

interface Entry {
  failures: number[];
  blockedUntil: number;
}

/** A client address with recent failed logins, as the `unblock` command lists it. */
export interface BlockedAddress {
  address: string;
  failures: number;
  /** Seconds until the block ends; 0 while the address may still try. */
  blockedForSeconds: number;
}

/** Addresses kept at most; the oldest are forgotten first, so a flood of addresses cannot exhaust memory. */
const MAX_ENTRIES = 50_000;

export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly policy: LoginFailurePolicy,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds the address stays refused; 0 when it may try. */
  blockedFor(address: string): number {
    const entry = this.entries.get(address);
    return entry ? Math.max(0, entry.blockedUntil - this.now()) : 0;
  }

  /** Records a failure; returns how long to wait before answering, and whether the address is now blocked. */
  fail(address: string): { delayMs: number; blocked: boolean; failures: number } {
    const now = this.now();
    const entry = this.entries.get(address) ?? { failures: [], blockedUntil: 0 };
    this.entries.delete(address); // re-insert: the Map's order is then least recently failed first
    entry.failures = entry.failures.filter((t) => t > now - this.policy.windowMs);
    entry.failures.push(now);
    const failures = entry.failures.length;
    const blocked = failures >= this.policy.maxFailures;
    if (blocked) {
      entry.blockedUntil = now + this.policy.blockMs;
      entry.failures = [];
    }
    this.entries.set(address, entry);
    this.prune(now);
    return { delayMs: Math.min(this.policy.delayStepMs * failures, this.policy.maxDelayMs), blocked, failures };
  }

  /** Forgets the failures and the block of one client address (as clientKey gives it), or of all; returns how many. */
  unblock(address?: string): number {
    if (address === undefined) {
      const count = this.entries.size;
      this.entries.clear();
      return count;
    }
    return this.entries.delete(address) ? 1 : 0;
  }

  /** Addresses blocked now or with failures in the window, the longest blocked first (at most `limit`). */
  list(limit = 100): BlockedAddress[] {
    const now = this.now();
    const listed: BlockedAddress[] = [];
    for (const [address, entry] of this.entries) {
      const blockedForSeconds = Math.ceil(Math.max(0, entry.blockedUntil - now) / 1000);
      // A block starts the count again: while it lasts, it stands for the failures that caused it.
      const recent = entry.failures.filter((t) => t > now - this.policy.windowMs).length;
      const failures = blockedForSeconds > 0 ? Math.max(recent, this.policy.maxFailures) : recent;
      if (failures > 0 || blockedForSeconds > 0) listed.push({ address, failures, blockedForSeconds });
    }
    return listed.sort((a, b) => b.blockedForSeconds - a.blockedForSeconds || b.failures - a.failures).slice(0, limit);
  }

  /** Entries are in the order of their last failure, so the stale ones are at the front. */
  private prune(now: number): void {
    for (const [address, entry] of this.entries) {
      const stale = entry.blockedUntil <= now && (entry.failures.at(-1) ?? 0) <= now - this.policy.windowMs;
      if (!stale && this.entries.size <= MAX_ENTRIES) return;
      this.entries.delete(address);
    }
  }
}
