/**
 * The parts of host.json and of the app settings the Functions host applies to triggers, read the way the
 * host reads them (with its defaults and limits), so the local runner behaves like `func start` and like Azure.
 * host.json is read in one place: `readHostJson()`; everything else takes the object it returns.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../shared/errors';
import type { Env } from '../../shared/settings';
import { REPO_ROOT } from '../localConfig';
import type { QueueTriggerOptions } from './queueTrigger';

export interface HostJson {
  extensions?: {
    http?: { routePrefix?: string };
    queues?: {
      batchSize?: number;
      newBatchThreshold?: number;
      visibilityTimeout?: string;
      maxDequeueCount?: number;
      maxPollingInterval?: string;
      messageEncoding?: 'base64' | 'none';
    };
  };
}

export const HOST_JSON_FILE = path.join(REPO_ROOT, 'host.json');

/**
 * How long the host hides a message it received (QueueListener: a fixed 10 minutes, not a setting), renewed at
 * half that while the invocation runs. host.json's `visibilityTimeout` is something else: the delay before a
 * failed message is tried again.
 */
export const MESSAGE_LEASE_SECONDS = 600;

export function readHostJson(file = HOST_JSON_FILE): HostJson {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as HostJson;
  } catch (error) {
    throw new ConfigError(`Cannot read ${file}: ${(error as Error).message}`);
  }
}

/** `api` unless host.json says otherwise; may be empty. */
export function routePrefix(host: HostJson): string {
  return (host.extensions?.http?.routePrefix ?? 'api').replace(/^\/+|\/+$/g, '');
}

/**
 * host.json's `extensions.queues`, with the host's own defaults where a value is missing, refused where the host
 * refuses it. `processorCount` matters for one default only: newBatchThreshold is batchSize / 2 per core.
 */
export function queueTriggerOptions(host: HostJson, processorCount = os.availableParallelism()): QueueTriggerOptions {
  const queues = host.extensions?.queues ?? {};
  const batchSize = whole('batchSize', queues.batchSize ?? 16, 1, 32);
  const encoding = queues.messageEncoding ?? 'base64';
  if (encoding !== 'base64' && encoding !== 'none')
    throw new ConfigError(`host.json extensions.queues.messageEncoding: "${String(encoding)}" is neither "base64" nor "none".`);
  const maxPollingIntervalMs = timeSpanSeconds(queues.maxPollingInterval ?? '00:01:00') * 1000;
  if (maxPollingIntervalMs < 100)
    throw new ConfigError('host.json extensions.queues.maxPollingInterval: must not be less than 00:00:00.1.');
  return {
    batchSize,
    newBatchThreshold: whole('newBatchThreshold', queues.newBatchThreshold ?? Math.floor(batchSize / 2) * processorCount, 0),
    // The queue service takes whole seconds.
    visibilityTimeoutSeconds: Math.ceil(timeSpanSeconds(queues.visibilityTimeout ?? '00:00:00')),
    maxDequeueCount: whole('maxDequeueCount', queues.maxDequeueCount ?? 5, 1),
    maxPollingIntervalMs,
    messageEncoding: encoding,
    leaseSeconds: MESSAGE_LEASE_SECONDS,
  };
}

function whole(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ConfigError(
      `host.json extensions.queues.${name}: ${value} is not a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}.`,
    );
  return value;
}

/** .NET TimeSpan text as host.json uses it: `hh:mm:ss`, `d.hh:mm:ss`, optional fraction. */
export function timeSpanSeconds(text: string): number {
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$/.exec(text.trim());
  if (!match) throw new ConfigError(`host.json: "${text}" is not a time span (hh:mm:ss).`);
  const [, days = '0', hours = '0', minutes = '0', seconds = '0'] = match;
  return Number(days) * 86_400 + Number(hours) * 3_600 + Number(minutes) * 60 + Number(seconds);
}

/** Resolves `%NAME%` app setting references in a binding property, failing like the host when one is unset. */
export function resolveAppSettings(value: string, env: Env, what: string): string {
  return value.replace(/%([^%]+)%/g, (_match, name: string) => {
    const setting = env[name]?.trim();
    if (!setting) throw new ConfigError(`${what} refers to the app setting ${name} ("%${name}%"), which is not set.`);
    return setting;
  });
}
