/**
 * The parts of host.json and of the app settings the Functions host applies to triggers, read the way the
 * host reads them, so the local runner behaves like `func start` and like Azure.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../shared/errors';
import type { Env } from '../../shared/settings';
import type { QueueTriggerOptions } from './queueTrigger';
import { REPO_ROOT } from '../localConfig';

export interface HostJson {
  extensions?: {
    http?: { routePrefix?: string };
    queues?: {
      batchSize?: number;
      visibilityTimeout?: string;
      maxDequeueCount?: number;
      maxPollingInterval?: string;
      messageEncoding?: 'base64' | 'none';
    };
  };
}

export function readHostJson(file = path.join(REPO_ROOT, 'host.json')): HostJson {
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

/** host.json's `extensions.queues`, with the host's own defaults where a value is missing. */
export function queueTriggerOptions(host: HostJson): QueueTriggerOptions {
  const queues = host.extensions?.queues ?? {};
  return {
    batchSize: Math.min(32, queues.batchSize ?? 16),
    // The host's default is 0 (retry at once); the local trigger hides a message for this long while it runs, so keep a floor.
    visibilityTimeoutSeconds: Math.max(1, timeSpanSeconds(queues.visibilityTimeout ?? '00:00:00')),
    maxDequeueCount: queues.maxDequeueCount ?? 5,
    maxPollingIntervalMs: Math.max(100, timeSpanSeconds(queues.maxPollingInterval ?? '00:01:00') * 1000),
    messageEncoding: queues.messageEncoding ?? 'base64',
  };
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
