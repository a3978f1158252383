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
