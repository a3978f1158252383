import { ConfigError } from '../errors';
import { nextOccurrence } from '../ncrontab';
import { DEFAULT_REFRESH_SCHEDULE, readSetting, type Env } from '../settings';

/** The refresh timer's schedule (NCRONTAB with seconds, as the Functions host reads it), default hourly. */
export function refreshSchedule(env: Env): string {
  return readSetting(env, 'REFRESH_SCHEDULE') ?? DEFAULT_REFRESH_SCHEDULE;
}

/**
 * When the timer fires next after `now`. In UTC: Linux Flex Consumption ignores WEBSITE_TIME_ZONE, so the
 * host's timer runs on UTC, and the local host computes its runs with this same function.
 */
export function nextRunAfter(schedule: string, now: Date): Date {
  return nextOccurrence(schedule, now) ?? new Date(now.getTime() + 3_600_000);
}

/** Default: the run's spread and its work end within host.json's 10-minute functionTimeout. */
export const DEFAULT_REFRESH_SPREAD_MINUTES = 8;

/** The most the refresh run may spread its accounts over, in milliseconds (REFRESH_SPREAD_MINUTES). */
export function refreshSpreadMs(env: Env): number {
  const raw = readSetting(env, 'REFRESH_SPREAD_MINUTES');
  if (raw === undefined) return DEFAULT_REFRESH_SPREAD_MINUTES * 60_000;
  const minutes = Number(raw);
  if (!Number.isFinite(minutes) || minutes < 0 || minutes > 55) {
    throw new ConfigError(`REFRESH_SPREAD_MINUTES: "${raw}" is not a number of minutes from 0 to 55.`);
  }
  return minutes * 60_000;
}

/** Default: enough in flight to keep 20 starts a second when one refresh takes a few hundred milliseconds. */
export const DEFAULT_REFRESH_CONCURRENCY = 8;

/** Refreshes the run keeps in flight at once (REFRESH_CONCURRENCY). */
export function refreshConcurrency(env: Env): number {
  const raw = readSetting(env, 'REFRESH_CONCURRENCY');
  if (raw === undefined) return DEFAULT_REFRESH_CONCURRENCY;
  const count = Number(raw);
  if (!Number.isInteger(count) || count < 1 || count > 32) {
    throw new ConfigError(`REFRESH_CONCURRENCY: "${raw}" is not a whole number from 1 to 32.`);
  }
  return count;
}
