import { createHash } from 'node:crypto';

/**
 * Room per account in the refresh run: with few accounts the run ends in seconds; with many it is capped by
 * REFRESH_SPREAD_MINUTES. At this spacing even a revoking provider costs Key Vault 10 writes a second, a third
 * of its 300 per 10 seconds.
 */
export const ACCOUNT_SPACING_MS = 100;

export interface PlannedRefresh<T> {
  item: T;
  /** When, after the run's start, this account is refreshed. */
  offsetMs: number;
}

/** How long this run spreads over: room for each account, never more than allowed nor half the time to the next run. */
export function spreadWindowMs(accounts: number, maxSpreadMs: number, untilNextRunMs: number): number {
  return Math.max(0, Math.min(accounts * ACCOUNT_SPACING_MS, maxSpreadMs, untilNextRunMs / 2));
}

/** The same place in every run for an account (a hash of its id), so its refreshes stay an interval apart. */
export function accountOffsetMs(accountId: string, windowMs: number): number {
  const fraction = createHash('sha256').update(accountId).digest().readUInt32BE(0) / 2 ** 32;
  return Math.floor(fraction * windowMs);
}

/** The run's order: by offset, so that the accounts arrive evenly over the window, never in a burst. */
export function planRefreshes<T>(items: readonly T[], idOf: (item: T) => string, windowMs: number): PlannedRefresh<T>[] {
  return items
    .map((item) => ({ item, offsetMs: accountOffsetMs(idOf(item), windowMs) }))
    .sort((a, b) => a.offsetMs - b.offsetMs || (idOf(a.item) < idOf(b.item) ? -1 : 1));
}
