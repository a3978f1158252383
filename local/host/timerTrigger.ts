/**
 * The timer trigger: an NCRONTAB schedule read by the same rules as the app's refresh code (shared/ncrontab.ts:
 * five or six fields, day-of-month and day-of-week together, UTC, as on Flex Consumption); a run is skipped while
 * the previous one is still going, as the host's singleton lock does.
 */
import type { Timer } from '@azure/functions';
import type { Cron } from 'croner';
import { ncrontab } from '../../shared/ncrontab';

export interface TimerTriggerOptions {
  schedule: string;
  runOnStartup: boolean;
  /** Runs the function; a rejection is reported through `onError`. */
  run: (timer: Timer) => Promise<void>;
  onError: (error: unknown) => void;
}

export interface TimerTrigger {
  nextRun(): Date | undefined;
  stop(): Promise<void>;
}

export function startTimerTrigger(options: TimerTriggerOptions): TimerTrigger {
  let last: Date | undefined;
  let running: Promise<void> | undefined;

  const fire = () => {
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

  const job: Cron = ncrontab(options.schedule, fire);
  if (options.runOnStartup) fire();

  return {
    nextRun: () => job.nextRun() ?? undefined,
    async stop() {
      job.stop();
      await running;
    },
  };
}
