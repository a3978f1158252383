/**
 * Timer schedules as the Functions host reads them (NCRONTAB): five fields, or six with seconds first;
 * day-of-month and day-of-week must both match (NCrontab, unlike Vixie cron's either); no `?`, `L`, `W` or `#`;
 * evaluated in UTC, since Flex Consumption (Linux) ignores WEBSITE_TIME_ZONE. The timer trigger (locally) and
 * the refresh code both use this, so they agree on when the next run is.
 */
import { Cron } from 'croner';

const OPTIONS = { mode: '5-or-6-parts', timezone: 'UTC', domAndDow: true } as const;

/** One field: `*`, numbers or three-letter names, with ranges and steps, in a list. */
const ITEM = String.raw`(?:\*|\d+|[A-Za-z]{3})(?:-(?:\d+|[A-Za-z]{3}))?(?:/\d+)?`;
const FIELD = new RegExp(`^${ITEM}(?:,${ITEM})*$`);

/** A paused schedule (for `nextRun`), or a running one that calls `run` at each occurrence. Throws when invalid. */
export function ncrontab(schedule: string, run?: () => void): Cron {
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6)
    throw new Error(`"${schedule}" is not an NCRONTAB schedule: it needs six fields (seconds first) or five.`);
  const bad = fields.find((field) => !FIELD.test(field));
  if (bad !== undefined) throw new Error(`"${schedule}" is not an NCRONTAB schedule: "${bad}" is not a field NCrontab reads.`);
  return run ? new Cron(schedule, OPTIONS, () => run()) : new Cron(schedule, { ...OPTIONS, paused: true });
}

/** The first occurrence after `after`, or undefined when there is none. */
export function nextOccurrence(schedule: string, after: Date): Date | undefined {
  return ncrontab(schedule).nextRun(after) ?? undefined;
}
