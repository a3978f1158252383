import { AccountError, OutboxError, TransientError } from '../errors';
import type { MailMessage } from '../message/messageSchema';
import { publishResult } from '../message/resultEvent';
import type { SentInfo } from '../smtp/accountSender';
import type { DeliveryRecord } from '../storage/deliveryLedger';
import type { DeliveryOutcome, DeliveryServices, RecordDraft } from './deliveryServices';
import type { DeferredCode, FailedCode, SentCode } from '../outcomeCodes';
import { describeMaxAge } from './policy';

/**
 * The three ends of an attempt: sent, failed for good, or deferred (still queued, back after a delay). Each is a
 * conditional write of the ledger row (with the ETag in `record.etag`, or an insert when there was none): `lost`
 * means another attempt wrote the row first, and the caller reads it again and decides again.
 */
export type Ended = DeliveryOutcome | 'lost';

export interface DeferOptions {
  delayMs: number;
  code: DeferredCode;
  reason: string;
  /** A transient SMTP failure counts towards maxAttempts; waiting for budget, a connection or an admin does not. */
  countedAsAttempt?: boolean;
  /** The place in the mailbox's waiting line that the rate budget reserved for the message (epoch ms). */
  lineSlot?: number;
}

/**
 * Re-enqueues a copy (with its id) to be seen again after `delayMs`, so waiting never uses up the host's dequeue
 * count, and records it. The copy goes first: a crash between the two leaves a copy that finds the row as it was.
 * If the row changed meanwhile, the copy is taken back and the caller decides again.
 */
export async function defer(
  services: DeliveryServices,
  message: MailMessage,
  record: RecordDraft,
  options: DeferOptions,
): Promise<Ended> {
  const { code, reason } = options;
  // Waited long enough: a message's age is judged on its ledger row, which a copy on the queue does not carry.
  if (Date.now() - Date.parse(record.firstSeenAt) > services.policy.maxAgeMs) return expire(services, record, reason);
  const { copy, nextAttemptAt, seconds } = await services.outbox.requeue(message, record.id, options.delayMs);
  const deferred: Omit<DeliveryRecord, 'updatedAt'> = {
    ...record,
    status: 'deferred',
    deferrals: record.deferrals + 1,
    code,
    reason,
    nextAttemptAt,
    waitingCopy: copy,
    ...(options.lineSlot !== undefined ? { lineSlot: new Date(options.lineSlot).toISOString() } : {}),
  };
  delete deferred.sendingUntil;
  let written: string | undefined;
  try {
    written = await services.ledger.write(deferred);
  } catch (error) {
    // Not recorded: the retry of this message decides again, and must not meet a second copy of it later.
    await services.outbox.remove(copy).catch(() => undefined);
    throw error;
  }
  if (written === undefined) {
    await services.outbox.remove(copy);
    return 'lost';
  }
  services.log.info('mail.deferred', {
    messageId: record.id,
    account: record.account,
    outcome: 'deferred',
    errorCode: code,
    reason,
    retryInSeconds: seconds,
    countedAsAttempt: options.countedAsAttempt ?? false,
  });
  return 'deferred';
}

/** Defers for an error of the token service: the account's problem decides how long the message waits. */
export function deferForError(
  services: DeliveryServices,
  message: MailMessage,
  record: RecordDraft,
  error: unknown,
): Promise<Ended> {
  if (error instanceof AccountError) {
    // The token service has just recorded why the account cannot send: the next messages must meet that at the
    // gate, not a cached "ready" that sends them to the SMTP server with a dead token.
    if (record.account) services.gate.forget(record.account);
    return defer(services, message, record, {
      delayMs: services.policy.accountWaitMs,
      code: error.code,
      reason: error.message,
    });
  }
  if (error instanceof TransientError)
    return defer(services, message, record, {
      delayMs: error.details.retryAfterMs ?? services.policy.backoffMs(record.deferrals + 1),
      code: error.code,
      reason: error.message,
    });
  // Our own checks that are not about the account or passing trouble (e.g. the configuration): wait for a fix.
  if (error instanceof OutboxError)
    return defer(services, message, record, {
      delayMs: services.policy.accountWaitMs,
      code: 'config_error',
      reason: error.message,
    });
  throw error;
}

export async function fail(services: DeliveryServices, record: RecordDraft, code: FailedCode, reason: string): Promise<Ended> {
  const failed: DeliveryRecord = { ...record, status: 'failed', code, reason, updatedAt: '' };
  delete failed.sendingUntil;
  services.log.warn('mail.failed', {
    messageId: record.id,
    account: record.account,
    outcome: 'failed',
    errorCode: code,
    reason,
    smtpCode: Number(record.smtpReply?.slice(0, 3)) || undefined,
  });
  return (await finish(services, failed)) ? 'failed' : 'lost';
}

/** Fails a message that waited longer than the policy allows. */
export function expire(services: DeliveryServices, record: RecordDraft, lastReason?: string): Promise<Ended> {
  return fail(
    services,
    record,
    'expired',
    // The last reason is a sentence of its own ("... Authorize the mailbox again."): no second full stop.
    `The message waited more than ${describeMaxAge(services.policy.maxAgeMs)} without being sent (MESSAGE_EXPIRY_DAYS)${lastReason ? `; last reason: ${lastReason.replace(/\.$/, '')}` : ''}.`,
  );
}

/** Records a mail the server accepted, on the claim's row; `lost` when another attempt ended the message meanwhile. */
export async function recordSent(services: DeliveryServices, claim: RecordDraft, sent: SentInfo): Promise<Ended> {
  const done: DeliveryRecord = {
    ...claim,
    status: 'sent',
    smtpReply: sent.response,
    sentAt: new Date().toISOString(),
    updatedAt: '',
    ...(sent.rejected.length > 0
      ? { code: 'partially_rejected', reason: `Refused recipients: ${sent.rejected.join(', ')}` }
      : {}),
  };
  delete done.sendingUntil;
  services.log.info('mail.sent', {
    messageId: done.id,
    account: done.account,
    outcome: 'sent',
    smtpCode: Number(sent.response.slice(0, 3)) || undefined,
    attempts: done.attempts,
  });
  try {
    return (await finish(services, done)) ? 'sent' : 'lost';
  } catch (error) {
    // The server has the mail: the retry of this invocation must record it, never send it again.
    services.unrecorded.set(done.id, done);
    throw error;
  }
}

/** Claims remembered at most, so that retries that land on other instances cannot grow the map without end. */
const MAX_UNSENT_CLAIMS = 10_000;

/**
 * Ends a claimed message that was not sent (a refusal, a token that could not be had). When the ending's write
 * fails, the claim is remembered as unsent so that the retry of the message sends it, instead of taking the
 * `sending` row for a mail that may have gone out (`delivery_unconfirmed`).
 */
export async function endUnsent(services: DeliveryServices, claim: RecordDraft, end: () => Promise<Ended>): Promise<Ended> {
  try {
    return await end();
  } catch (error) {
    const claims = services.unsentClaims;
    if (claim.etag !== undefined) {
      if (claims.size >= MAX_UNSENT_CLAIMS) claims.delete(claims.keys().next().value!);
      claims.set(claim.id, claim.etag);
    }
    throw error;
  }
}

/**
 * The end of a message: the result event first, then the ledger (a crash between them repeats the event, never
 * the mail). False when the row changed since `record.etag`: another attempt ended the message first.
 */
export async function finish(services: DeliveryServices, record: DeliveryRecord): Promise<boolean> {
  if (record.status !== 'sent' && record.status !== 'failed') throw new Error('finish() needs a final status');
  const publish = services.resultEvents === 'all' || (services.resultEvents === 'failures' && record.status === 'failed');
  if (publish)
    await publishResult(services.results, {
      version: 1,
      id: record.id,
      status: record.status,
      attempts: record.attempts,
      at: new Date().toISOString(),
      ...(record.account ? { account: record.account } : {}),
      ...(record.code ? { code: record.code as SentCode | FailedCode } : {}),
      ...(record.reason ? { reason: record.reason } : {}),
      ...(record.smtpReply ? { smtpReply: record.smtpReply } : {}),
      ...(record.messageId ? { messageId: record.messageId } : {}),
    });
  const { updatedAt: _updatedAt, ...row } = record;
  return (await services.ledger.write(row)) !== undefined;
}
