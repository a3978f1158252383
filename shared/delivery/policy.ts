import { ConfigError } from '../errors';
import { readSetting, type Env } from '../settings';

/** How long things wait. Defaults suit Exchange Online and Gmail; tests shorten them. */
export interface DeliveryPolicy {
  /** SMTP attempts before a message that keeps failing transiently is failed for good. */
  maxAttempts: number;
  /** A message waiting longer than this (e.g. for re-authorization) is failed `expired`; setting MESSAGE_EXPIRY_DAYS. */
  maxAgeMs: number;
  /** Delay before SMTP attempt n+1 after a transient failure. */
  backoffMs(attempt: number): number;
  /** Delay while the account cannot send (not authorized, re-authorization required, configuration error). */
  accountWaitMs: number;
  /** How long an invocation may wait in-process for rate budget or a connection before deferring instead. */
  maxInProcessWaitMs: number;
  /** How long a `sending` claim holds a message; longer than the worst SMTP timeout. */
  sendingLeaseMs: number;
  /** Idle SMTP connections are closed (and their slot given back) after this. */
  connectionIdleMs: number;
  smtpTimeouts: { connectionMs: number; greetingMs: number; socketMs: number };
  /** The window of `messagesPerMinute` (a minute; tests and benchmarks compress time with a shorter one). */
  rateWindowMs?: number;
}

const MINUTE = 60_000;

export const DEFAULT_POLICY: DeliveryPolicy = {
  maxAttempts: 10,
  maxAgeMs: 7 * 24 * 60 * MINUTE,
  backoffMs: (attempt) => Math.min(60 * MINUTE, 30_000 * 2 ** Math.max(0, attempt - 1)) * (0.8 + Math.random() * 0.4),
  accountWaitMs: 5 * MINUTE,
  maxInProcessWaitMs: 20_000,
  sendingLeaseMs: 5 * MINUTE,
  connectionIdleMs: 10_000,
  smtpTimeouts: { connectionMs: 15_000, greetingMs: 15_000, socketMs: 60_000 },
};

export const DEFAULT_MESSAGE_EXPIRY_DAYS = 7;

/**
 * The default policy with what app settings change: `MESSAGE_EXPIRY_DAYS`, how long a message may wait unsent
 * (for a mailbox to be authorized again, a throttled account, a server that keeps failing) before it fails `expired`.
 */
export function policyFromSettings(env: Env, base: DeliveryPolicy = DEFAULT_POLICY): DeliveryPolicy {
  const text = readSetting(env, 'MESSAGE_EXPIRY_DAYS');
  if (text === undefined) return base;
  const days = Number(text);
  if (!Number.isFinite(days) || days <= 0 || days > 365) {
    throw new ConfigError(
      `MESSAGE_EXPIRY_DAYS must be a number of days above 0 and at most 365 (default ${DEFAULT_MESSAGE_EXPIRY_DAYS}); it is "${text}".`,
    );
  }
  return { ...base, maxAgeMs: Math.round(days * 24 * 60 * MINUTE) };
}

/** `7 days`, `12 hours`, `3 seconds`: how long a message may wait, for its `expired` reason. */
export function describeMaxAge(ms: number): string {
  const units: [string, number][] = [
    ['day', 24 * 60 * MINUTE],
    ['hour', 60 * MINUTE],
    ['minute', MINUTE],
    ['second', 1_000],
  ];
  const [name, size] = units.find(([, size]) => ms >= size) ?? units.at(-1)!;
  const count = Math.round((ms / size) * 10) / 10;
  return `${count} ${name}${count === 1 ? '' : 's'}`;
}
