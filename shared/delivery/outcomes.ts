import { AccountError, OutboxError, TransientError } from '../errors';
import type { MailMessage } from '../message/messageSchema';
import { encodeQueueJson } from '../message/queueJson';
import { publishResult } from '../message/resultEvent';
import type { SentInfo } from '../smtp/accountSender';
import type { DeliveryRecord } from '../storage/deliveryLedger';
import type { DeliveryOutcome, DeliveryServices, RecordDraft } from './deliveryServices';
import type { DeferredCode, FailedCode } from './outcomeCodes';
import { describeMaxAge } from './policy';

/** The three ends of an attempt: sent, failed for good, or deferred (still queued, back after a delay). */

export interface DeferOptions {
  delayMs: number;
  code: DeferredCode;
  reason: string;
  /** A transient SMTP failure counts towards maxAttempts; waiting for budget, a connection or an admin does not. */
  countedAsAttempt?: boolean;
}

/** Re-enqueues a copy (with its id) to be seen again after `delayMs`, so waiting never uses up the host's dequeue count. */
export async function defer(
  services: DeliveryServices,
  message: MailMessage,
  record: RecordDraft,
  options: DeferOptions,
): Promise<DeliveryOutcome> {
  const { code, reason } = options;
  // Waited long enough: a message's age is judged on its ledger row, which a copy on the queue does not carry.
  if (Date.now() - Date.parse(record.firstSeenAt) > services.policy.maxAgeMs) return expire(services, record, reason);
  const seconds = Math.min(7 * 24 * 3600 - 60, Math.max(1, Math.ceil(options.delayMs / 1000)));
  const nextAttemptAt = new Date(Date.now() + seconds * 1000).toISOString();
  const copy = await services.outbox.sendMessage(encodeQueueJson({ ...message, id: record.id }), {
    visibilityTimeout: seconds,
    messageTimeToLive: -1,
  });
  const deferred: Omit<DeliveryRecord, 'updatedAt'> = {
    ...record,
    status: 'deferred',
    deferrals: record.deferrals + 1,
    code,
    reason,
    nextAttemptAt,
    waitingCopy: `${copy.messageId} ${copy.popReceipt}`,
  };
  delete deferred.sendingUntil;
  await services.ledger.record(deferred);
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
): Promise<DeliveryOutcome> {
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

export async function fail(
  services: DeliveryServices,
  record: RecordDraft,
  code: FailedCode,
  reason: string,
): Promise<DeliveryOutcome> {
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
  await finish(services, failed);
  return 'failed';
}

/** Fails a message that waited longer than the policy allows. */
export function expire(services: DeliveryServices, record: RecordDraft, lastReason?: string): Promise<DeliveryOutcome> {
  return fail(
    services,
    record,
    'expired',
    // The last reason is a sentence of its own ("... Authorize the mailbox again."): no second full stop.
    `The message waited more than ${describeMaxAge(services.policy.maxAgeMs)} without being sent (MESSAGE_EXPIRY_DAYS)${lastReason ? `; last reason: ${lastReason.replace(/\.$/, '')}` : ''}.`,
  );
}

export async function recordSent(services: DeliveryServices, claim: RecordDraft, sent: SentInfo): Promise<DeliveryOutcome> {
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
    await finish(services, done);
  } catch (error) {
    // The server has the mail: the retry of this invocation must record it, never send it again.
    services.unrecorded.set(done.id, done);
    throw error;
  }
  return 'sent';
}

/** The end of a message: the result event first, then the ledger (a crash between them repeats the event, never the mail). */
export async function finish(services: DeliveryServices, record: DeliveryRecord): Promise<void> {
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
      ...(record.code ? { code: record.code } : {}),
      ...(record.reason ? { reason: record.reason } : {}),
      ...(record.smtpReply ? { smtpReply: record.smtpReply } : {}),
      ...(record.messageId ? { messageId: record.messageId } : {}),
    });
  const { updatedAt: _updatedAt, etag: _etag, ...row } = record;
  await services.ledger.record(row);
}
