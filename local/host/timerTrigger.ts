/**
 * The timer trigger: a six-field NCRONTAB schedule (`{second} {minute} {hour} {day} {month} {day-of-week}`),
 * evaluated in UTC as Azure does unless WEBSITE_TIME_ZONE / TZ says otherwise; a run is skipped while the
 * previous one is still going, as the host's singleton lock does.
 */
import { Cron } from 'croner';
import type { Timer } from '@azure/functions';

export interface TimerTriggerOptions {
  schedule: string;
  runOnStartup: boolean;
  timeZone?: string;
  /** Runs the function; a rejection is reported through `onError`. */
  run: (timer: Timer) => Promise<void>;
  onError: (error: unknown) => void;
}

export interface TimerTrigger {
  nextRun(): Date | undefined;
  stop(): Promise<void>;
}

export function startTimerTrigger(options: TimerTriggerOptions): TimerTrigger {
  if (options.schedule.trim().split(/\s+/).length !== 6)
    throw new Error(`"${options.schedule}" is not an NCRONTAB schedule: it needs six fields, starting with seconds.`);
  let last: Date | undefined;
  let running: Promise<void> | undefined;

  const fire = (job: Cron) => {
    if (running) return;
    const now = new Date();
    const timer: Timer = {
      isPastDue: false,
      schedule: { adjustForDST: false },
      scheduleStatus: {
        last: (last ?? now).toISOString(),
        next: (job.nextRun() ?? now).toISOString(),
        lastUpdated: now.toISOString(),
      },
    };
    last = now;
    running = options
      .run(timer)
      .catch(options.onError)
      .finally(() => {
        running = undefined;
      });
  };

  // NCrontab requires day-of-month and day-of-week to match together (Vixie cron takes either).
  const job: Cron = new Cron(
    options.schedule,
    { mode: '6-part', timezone: options.timeZone ?? 'UTC', domAndDow: true },
    (self: Cron) => fire(self),
  );
  if (options.runOnStartup) fire(job);

  return {
    nextRun: () => job.nextRun() ?? undefined,
    async stop() {
      job.stop();
      await running;
    },
  };
}
