/**
 * A small stand-in for the Functions host: serves whatever `functions/` registered (see functionRegistry),
 * HTTP under the route prefix (function keys checked when LOCAL_FUNCTION_KEY is set), storage queue triggers
 * with host.json's queue settings and poison queues, and timer triggers on their NCRONTAB schedules, in UTC.
 * Binding properties may name app settings (`%NAME%`).
 */
import type { QueueClient } from '@azure/storage-queue';
import { readSetting, type Env } from '../../shared/settings';
import { createStorageClients } from '../../shared/storage/storageClients';
import type {
  FunctionDefinition,
  HttpFunctionDefinition,
  QueueFunctionDefinition,
  TimerFunctionDefinition,
} from './functionRegistry';
import {
  MESSAGE_LEASE_SECONDS,
  queueTriggerOptions,
  readHostJson,
  resolveAppSettings,
  routePrefix,
  type HostJson,
} from './hostSettings';
import { startFunctionsHttpServer } from './httpServer';
import { invocationContext } from './invocationContext';
import { startQueueTrigger, type QueueTriggerOptions, type TriggerMetadata } from './queueTrigger';
import { startTimerTrigger } from './timerTrigger';

export interface RunnerOptions {
  host: string;
  port: number;
  /** App settings: `%NAME%` references, storage connections, LOCAL_FUNCTION_KEY. */
  env: Env;
  definitions: readonly FunctionDefinition[];
  /** Default: the project's host.json. */
  hostJson?: HostJson;
  /** How long a received queue message stays hidden, renewed at half (the host's fixed 10 minutes); tests shorten it. */
  messageLeaseSeconds?: number;
  /** Where invocation lines go (default: the console). */
  log?: (line: string) => void;
}

export interface Runner {
  readonly url: string;
  /** One line per function, as `func start` lists them. */
  readonly summary: string[];
  stop(): Promise<void>;
}

/** The opt-in local function key: set, it is required like a key in Azure; unset, keys are not checked. */
export const LOCAL_FUNCTION_KEY = 'LOCAL_FUNCTION_KEY';

interface Stoppable {
  stop(): Promise<void>;
}

export async function startRunner(options: RunnerOptions): Promise<Runner> {
  const hostJson = options.hostJson ?? readHostJson();
  const log = options.log ?? ((line: string) => console.log(line));
  const prefix = routePrefix(hostJson);
  const running: Stoppable[] = [];
  const summary: string[] = [];
  const stopAll = async () => {
    for (const item of running.reverse()) await item.stop();
  };

  try {
    const http = options.definitions.filter((d): d is HttpFunctionDefinition => d.kind === 'http');
    const functionKey = readSetting(options.env, LOCAL_FUNCTION_KEY);
    const server = await startFunctionsHttpServer({
      host: options.host,
      port: options.port,
      routePrefix: prefix,
      functions: http,
      ...(functionKey ? { functionKey } : {}),
      log,
    });
    running.push(server);
    for (const fn of http) {
      const path = [prefix, fn.route].filter(Boolean).join('/');
      summary.push(
        `${fn.name}: [${fn.methods.join(',')}] ${server.url}/${path}${fn.authLevel === 'anonymous' ? '' : functionKey ? ` (${fn.authLevel} key)` : ` (${fn.authLevel} key in Azure)`}`,
      );
    }

    const queueOptions = {
      ...queueTriggerOptions(hostJson),
      leaseSeconds: options.messageLeaseSeconds ?? MESSAGE_LEASE_SECONDS,
    };
    for (const fn of options.definitions) {
      if (fn.kind === 'storageQueue') {
        const queueName = resolveAppSettings(fn.queueName, options.env, `Function ${fn.name}: queueName`);
        running.push(await startQueueFunction(fn, queueName, options.env, queueOptions, log));
        summary.push(`${fn.name}: queueTrigger (${queueName}, poison queue ${queueName}-poison)`);
      } else if (fn.kind === 'timer') {
        const schedule = resolveAppSettings(fn.schedule, options.env, `Function ${fn.name}: schedule`);
        const timer = startTimerFunction(fn, schedule, log);
        running.push(timer);
        // Flex Consumption runs on Linux, where WEBSITE_TIME_ZONE is not supported: schedules stay in UTC.
        const ignoredZone = readSetting(options.env, 'WEBSITE_TIME_ZONE');
        summary.push(
          `${fn.name}: timerTrigger (${schedule} UTC, next ${timer.nextRun()?.toISOString() ?? 'never'})` +
            (ignoredZone ? `; WEBSITE_TIME_ZONE=${ignoredZone} is ignored, as on Flex Consumption` : ''),
        );
      } else if (fn.kind === 'unsupported') {
        summary.push(`${fn.name}: ${fn.trigger} trigger, not run by the local runner`);
      }
    }
    return { url: server.url, summary, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

async function startQueueFunction(
  fn: QueueFunctionDefinition,
  queueName: string,
  env: Env,
  options: QueueTriggerOptions,
  log: (line: string) => void,
): Promise<Stoppable> {
  const storage = createStorageClients(env, fn.connection);
  const queue: QueueClient = storage.queue(queueName);
  const poison: QueueClient = storage.queue(`${queueName}-poison`);
  await Promise.all([queue.createIfNotExists(), poison.createIfNotExists()]);
  return startQueueTrigger(
    queue,
    poison,
    async (payload: unknown, metadata: TriggerMetadata) => {
      const started = Date.now();
      const label = `${fn.name} ${metadata.id} (try ${metadata.dequeueCount})`;
      try {
        await fn.handler(payload, invocationContext(fn.name, 'queueTrigger', { ...metadata }));
        log(`${label} done in ${Date.now() - started} ms`);
      } catch (error) {
        const last = metadata.dequeueCount >= options.maxDequeueCount;
        const next = last ? `; moved to ${queueName}-poison` : `; tried again in ${options.visibilityTimeoutSeconds} s`;
        log(`${label} failed: ${(error as Error)?.message ?? String(error)}${next}`);
        throw error;
      }
    },
    options,
    (error) => log(`${fn.name}: the queue ${queueName} refused an operation: ${(error as Error)?.message ?? String(error)}`),
  );
}

function startTimerFunction(fn: TimerFunctionDefinition, schedule: string, log: (line: string) => void) {
  return startTimerTrigger({
    schedule,
    runOnStartup: fn.runOnStartup,
    run: async (timer) => {
      const started = Date.now();
      await fn.handler(timer, invocationContext(fn.name, 'timerTrigger'));
      log(`${fn.name} ran in ${Date.now() - started} ms`);
    },
    onError: (error) => log(`${fn.name} failed: ${(error as Error)?.message ?? String(error)}`),
  });
}
