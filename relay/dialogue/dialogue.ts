/**
 * What every step of the SMTP dialogue works with: the relay's parts (built once in startRelay) and the state
 * of one connection. Each step's checks live in their own file; dialogueChecks.ts lists them in order.
 */
import type { SMTPServerSession } from 'smtp-server';
import type { Logger } from '../../shared/log/logger';
import type { AccountSenders } from '../accountSenders';
import type { Device, ListenerKind, RelayConfig } from '../config';
import type { DeviceActivityLog } from '../deviceActivity';
import type { DeviceRegistry } from '../devices';
import type { LoginThrottle } from '../loginThrottle';
import type { MimeStore } from '../mimeStore';
import { replyError, type Reply } from '../replies';
import type { StorageHealth } from '../storageHealth';

export interface Dialogue {
  config: RelayConfig;
  registry: DeviceRegistry;
  throttle: LoginThrottle;
  senders: AccountSenders;
  activity: DeviceActivityLog;
  storageHealth: StorageHealth;
  store: MimeStore;
  log: Logger;
  sessions: Map<string, SessionState>;
  /** Commands off for every session (without a certificate: STARTTLS and AUTH). */
  disabledCommands: readonly string[];
}

export interface SessionState {
  listener: ListenerKind;
  remote: string;
  startedAt: number;
  tls: string | false;
  device?: string;
  /** The SASL mechanism of a successful login. */
  auth?: string;
  authFailures: number;
  lastAuthFailure?: string;
  /** Reason of the last command refused (not counting DATA outcomes, which have their own line). */
  lastRefusal?: string;
  queued: number;
  refused: number;
  deferred: number;
  lost: number;
  inData: boolean;
}

/** One command's facts, filled in by the checks as they pass (a device once known, the sender, ...). */
export interface CommandContext {
  session: SMTPServerSession;
  dialogue: Dialogue;
  device?: Device;
  /** MAIL FROM, lower case. */
  sender?: string;
  /** MAIL FROM's SIZE=, when given. */
  declaredSize?: number;
  /** RCPT TO. */
  recipient?: string;
}

/** A check refuses with a reply, or passes with undefined. */
export type CommandCheck = (context: CommandContext) => Reply | undefined;

export function need<K extends keyof CommandContext>(context: CommandContext, key: K): NonNullable<CommandContext[K]> {
  const value = context[key];
  if (value === undefined || value === null) throw new Error(`relay dialogue: ${String(key)} is checked before it is known`);
  return value;
}

/** Runs the checks in order; the first refusal is recorded and answered, else the command is accepted. */
export function runChecks(
  checks: readonly CommandCheck[],
  context: CommandContext,
  callback: (error?: Error | null) => void,
): void {
  for (const check of checks) {
    const reply = check(context);
    if (reply) return refuse(context.dialogue, context.session, callback, reply, context.device);
  }
  callback();
}

export function refuse(
  dialogue: Dialogue,
  session: SMTPServerSession,
  callback: (error?: Error | null) => void,
  reply: Reply,
  device?: Device,
): void {
  noteRefusal(dialogue, session, reply, device);
  callback(replyError(reply));
}

/** A refusal goes into the session's log line and the device's activity (what the status page shows). */
export function noteRefusal(dialogue: Dialogue, session: SMTPServerSession, reply: Reply, device?: Device): void {
  const state = dialogue.sessions.get(session.id);
  if (state) state.lastRefusal = reply.reason;
  const known = device ?? (state?.device ? dialogue.registry.byDeviceName(state.device) : undefined);
  dialogue.activity.refused(known, reply, session.remoteAddress);
}
