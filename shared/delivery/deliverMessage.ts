import type { QueueClient } from '@azure/storage-queue';
import type { ContainerClient } from '@azure/storage-blob';
import type { AccountProblem } from '../alerts/accountAlerts';
import type { AccountState, AccountStatus } from '../storage/accountStatusTable';
import { findAccount, type Account } from '../config';
import { AccountError, MessageError, OutboxError, TransientError } from '../errors';
import type { Logger } from '../log/logger';
import { decodeQueueMessage } from '../message/decodeQueueMessage';
import type { MailMessage } from '../message/messageSchema';
import type { RateBudget } from '../limits/rateBudget';
import { readAttachmentBlob } from '../storage/attachmentBlobs';
import type { DeliveryLedger, DeliveryRecord } from '../storage/deliveryLedger';
import { ConflictError } from '../storage/deliveryLedger';
import { encodeQueueJson, publishResult } from '../storage/resultsQueue';
import type { AccountSender, SendPermit, SentInfo } from '../smtp/accountSender';
import { classifySmtpFailure, type ReplyClass, type SmtpFailure } from '../smtp/classifyReply';
import type { TokenService } from '../tokens/tokenService';
import type { AccountGate } from './accountGate';
import { composeMail, type LoadedAttachment } from './composeMail';
import type { DeliveryPolicy } from './policy';

export interface DeliveryServices {
  accounts: readonly Account[];
  ledger: DeliveryLedger;
  outbox: QueueClient;
  results: QueueClient;
  attachments: ContainerClient;
  tokens: TokenService;
  gate: AccountGate;
  senderFor(account: Account): AccountSender;
  budgetFor(account: Account): RateBudget;
  policy: DeliveryPolicy;
  log: Logger;
  /** Tells the account's alert receivers (once per incident) that the send path stopped the account. */
  alert(account: Account, problem: AccountProblem, current?: AccountStatus): Promise<void>;
  /** Outcomes the SMTP server accepted but the ledger did not take yet (kept for the retry of the same message). */
  unrecorded: Map<string, DeliveryRecord>;
}

export interface QueueMeta {
  queueMessageId: string;
  dequeueCount: number;
  insertedAt?: Date;
}

export type DeliveryOutcome = 'sent' | 'failed' | 'deferred' | 'duplicate';

/**
 * One queue message, from trigger to record: decode → ledger check → account rules → token → connection →
 * rate budget → SMTP → ledger + result event. Every path ends sent, failed with a reason, or deferred (re-enqueued with a delay);
 * a message the ledger already knows as sent is never sent again.
 */
export async function deliverMessage(services: DeliveryServices, payload: unknown, meta: QueueMeta): Promise<DeliveryOutcome> {
  const { ledger, log } = services;
  const decoded = decodeQueueMessage(payload);
  const id = (decoded.ok ? decoded.message.id : decoded.id) ?? meta.queueMessageId;
  const now = Date.now();

  const existing = await ledger.get(id);
  if (existing?.status === 'sent' || existing?.status === 'failed') {
    log.info('mail.duplicate', { messageId: id, account: existing.account, status: existing.status });
    return 'duplicate';
  }
  const unrecorded = services.unrecorded.get(id);
  if (unrecorded) {
    await finish(services, unrecorded);
    services.unrecorded.delete(id);
    return unrecorded.status === 'sent' ? 'sent' : 'failed';
  }

  const base: Omit<DeliveryRecord, 'status' | 'updatedAt'> = {
    id,
    attempts: existing?.attempts ?? 0,
    deferrals: existing?.deferrals ?? 0,
    firstSeenAt: existing?.firstSeenAt ?? (meta.insertedAt ?? new Date(now)).toISOString(),
    queueMessageId: meta.queueMessageId,
    ...(existing?.account ? { account: existing.account } : {}),
  };

  if (existing?.status === 'sending') {
    const sameQueueMessage = existing.queueMessageId === meta.queueMessageId;
    const leaseLive = existing.sendingUntil !== undefined && Date.parse(existing.sendingUntil) > now;
    if (!sameQueueMessage && leaseLive) {
      // A second copy of a message another attempt is sending: look again once that attempt is over.
      if (!decoded.ok) return 'duplicate';
      return defer(
        services,
        decoded.message,
        { ...base, ...pick(existing) },
        Date.parse(existing.sendingUntil!) - now + 1_000,
        'in_progress',
        'Another attempt is sending this message.',
        false,
      );
    }
    // The attempt that claimed this message died between handing it to the server and recording the outcome.
    return fail(
      services,
      { ...base, ...pick(existing) },
      'delivery_unconfirmed',
      'An earlier attempt was interrupted after the message was handed to the SMTP server; it may have been delivered. It was not sent again, to avoid a duplicate. Enqueue it with a new id to send it anyway.',
    );
  }

  if (!decoded.ok)
    return fail(
      services,
      { ...base, ...(decoded.account ? { account: decoded.account } : {}) },
      'invalid_message',
      decoded.reason,
    );
  const message = decoded.message;
  const account = findAccount(services.accounts, message.account);
  if (!account) {
    return fail(
      services,
      { ...base, ...(message.account ? { account: message.account } : {}) },
      'unknown_account',
      message.account
        ? `There is no account "${message.account}". Known accounts: ${services.accounts.map((a) => a.id).join(', ')}.`
        : 'No account was given and no default account is configured.',
    );
  }
  const record: Omit<DeliveryRecord, 'status' | 'updatedAt'> = {
    ...base,
    account: account.id,
    subject: message.subject.slice(0, 200),
  };

  if (now - Date.parse(record.firstSeenAt) > services.policy.maxAgeMs) {
    return fail(
      services,
      record,
      'expired',
      `The message waited more than ${Math.round(services.policy.maxAgeMs / 3_600_000)} hours without being sent${existing?.reason ? `; last reason: ${existing.reason}` : ''}.`,
    );
  }

  let composed;
  try {
    const attachments = await loadAttachments(services, account, message);
    composed = composeMail(account, id, message, attachments);
  } catch (error) {
    if (error instanceof MessageError) return fail(services, record, error.code, error.message);
    return defer(
      services,
      message,
      record,
      services.policy.backoffMs(1),
      'transient',
      `Attachments could not be read: ${(error as Error).message}`,
      false,
    );
  }
  record.recipients = composed.recipients;
  record.messageId = composed.messageId;

  const gate = await services.gate.check(account.id);
  if (!gate.open)
    return defer(services, message, record, gate.retryAfterMs ?? services.policy.accountWaitMs, gate.code, gate.reason, false);

  let token;
  try {
    token = await services.tokens.get(account);
  } catch (error) {
    return deferForError(services, message, record, error);
  }

  // Claim the message: from here on, a crash leaves a `sending` row that stops a blind resend.
  const claim: Omit<DeliveryRecord, 'updatedAt'> = {
    ...record,
    status: 'sending',
    attempts: record.attempts + 1,
    sendingUntil: new Date(Date.now() + services.policy.sendingLeaseMs).toISOString(),
  };
  try {
    await ledger.put(claim, existing?.etag);
  } catch (error) {
    if (error instanceof ConflictError) {
      log.info('mail.duplicate', { messageId: id, account: account.id, status: 'claimed elsewhere' });
      return 'duplicate';
    }
    throw error;
  }

  const sender = services.senderFor(account);
  let sent: SentInfo | undefined;
  let failure: ReplyClass | undefined;
  let smtpReply: string | undefined;
  let retriedAuth = false;
  const budget = services.budgetFor(account);
  // The rate budget is taken once, while a connection is held (see AccountSender.send); the retry after a
  // refused token does not take it again.
  let permit: SendPermit | undefined = () => budget.acquire(composed.recipients, services.policy.maxInProcessWaitMs);
  for (;;) {
    try {
      const result = await sender.send(composed.options, token, services.policy.maxInProcessWaitMs, permit);
      permit = undefined;
      if (!result.ok) {
        return defer(
          services,
          message,
          { ...claim, attempts: record.attempts },
          result.retryAfterMs,
          result.code,
          result.reason ?? `All ${account.limits.concurrentConnections} SMTP connections of the account are busy.`,
          false,
        );
      }
      sent = result.value;
      break;
    } catch (error) {
      permit = undefined;
      failure = classifySmtpFailure(error as SmtpFailure);
      smtpReply = (error as SmtpFailure).response;
      if (failure.kind === 'auth_rejected' && !retriedAuth) {
        retriedAuth = true;
        log.warn('mail.auth_rejected', { messageId: id, account: account.id, reason: failure.reason });
        try {
          token = await services.tokens.get(account, { rejectedToken: token.accessToken });
        } catch (tokenError) {
          return deferForError(services, message, { ...claim, attempts: record.attempts }, tokenError);
        }
        continue;
      }
      break;
    }
  }

  if (sent) {
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
    log.info('mail.sent', {
      messageId: id,
      account: account.id,
      outcome: 'sent',
      smtpCode: Number(sent.response.slice(0, 3)) || undefined,
      attempts: done.attempts,
    });
    try {
      await finish(services, done);
    } catch (error) {
      services.unrecorded.set(id, done);
      throw error;
    }
    return 'sent';
  }

  const reply = failure!;
  const failed = { ...claim, ...(smtpReply ? { smtpReply } : {}) };
  switch (reply.kind) {
    case 'permanent':
      return fail(services, failed, reply.code, reply.reason);
    case 'throttled':
      return defer(
        services,
        message,
        { ...failed, attempts: record.attempts },
        reply.retryAfterMs,
        'throttled',
        reply.reason,
        false,
      );
    case 'transient':
      if (claim.attempts >= services.policy.maxAttempts)
        return fail(services, failed, 'gave_up', `Gave up after ${claim.attempts} attempts. Last: ${reply.reason}`);
      return defer(services, message, failed, services.policy.backoffMs(claim.attempts), 'transient', reply.reason, true);
    case 'auth_rejected':
      await stopAccount(services, account, {
        state: account.flow === 'client_credentials' ? 'configuration_error' : 'reauthorization_required',
        lastErrorCode: 'smtp_auth_rejected',
        lastError: `${reply.reason} A fresh token was refused too: check the mailbox's permissions and that SMTP AUTH is enabled, then authorize again.`,
      });
      return defer(
        services,
        message,
        { ...failed, attempts: record.attempts },
        services.policy.accountWaitMs,
        'needs_reauthorization',
        reply.reason,
        false,
      );
    case 'account':
      await stopAccount(services, account, {
        state: reply.code === 'smtp_auth_disabled' || reply.code === 'config_error' ? 'configuration_error' : 'paused',
        lastErrorCode: reply.code,
        lastError: reply.reason,
        pausedUntil: new Date(Date.now() + reply.pauseMs).toISOString(),
      });
      return defer(services, message, { ...failed, attempts: record.attempts }, reply.pauseMs, reply.code, reply.reason, false);
  }
}

/** Records why the account cannot send (its messages wait at the gate) and tells its alert receivers. */
async function stopAccount(
  services: DeliveryServices,
  account: Account,
  fields: { state: AccountState; lastErrorCode: string; lastError: string; pausedUntil?: string },
): Promise<void> {
  const before = await services.gate.update(account.id, fields);
  await services
    .alert(account, { state: fields.state, reason: fields.lastError, providerError: fields.lastErrorCode }, before)
    .catch((error: unknown) =>
      services.log.error('account.alert_failed', { account: account.id, reason: (error as Error).message }),
    );
}

async function loadAttachments(services: DeliveryServices, account: Account, message: MailMessage): Promise<LoadedAttachment[]> {
  const out: LoadedAttachment[] = [];
  for (const attachment of message.attachments ?? []) {
    const content =
      'blob' in attachment
        ? await readAttachmentBlob(services.attachments, attachment.blob, account.limits.maxMessageBytes)
        : Buffer.from(attachment.contentBase64, 'base64');
    out.push({
      filename: attachment.filename,
      content,
      ...(attachment.contentType ? { contentType: attachment.contentType } : {}),
      ...(attachment.contentId ? { contentId: attachment.contentId } : {}),
    });
  }
  return out;
}

function deferForError(
  services: DeliveryServices,
  message: MailMessage,
  record: Omit<DeliveryRecord, 'status' | 'updatedAt'>,
  error: unknown,
): Promise<DeliveryOutcome> {
  if (error instanceof AccountError) {
    // The token service has just recorded why the account cannot send: the next messages must meet that at the
    // gate, not a cached "ready" that sends them to the SMTP server with a dead token.
    if (record.account) services.gate.forget(record.account);
    return defer(services, message, record, services.policy.accountWaitMs, error.code, error.message, false);
  }
  if (error instanceof TransientError)
    return defer(
      services,
      message,
      record,
      error.details.retryAfterMs ?? services.policy.backoffMs(record.deferrals + 1),
      error.code,
      error.message,
      false,
    );
  if (error instanceof OutboxError)
    return defer(services, message, record, services.policy.accountWaitMs, error.code, error.message, false);
  throw error;
}

/** Re-enqueues a copy (with its id) to be seen again after `delayMs`, so waiting never uses up the host's dequeue count. */
async function defer(
  services: DeliveryServices,
  message: MailMessage,
  record: Omit<DeliveryRecord, 'status' | 'updatedAt'>,
  delayMs: number,
  code: string,
  reason: string,
  countedAsAttempt: boolean,
): Promise<DeliveryOutcome> {
  const seconds = Math.min(7 * 24 * 3600 - 60, Math.max(1, Math.ceil(delayMs / 1000)));
  const nextAttemptAt = new Date(Date.now() + seconds * 1000).toISOString();
  await services.outbox.sendMessage(encodeQueueJson({ ...message, id: record.id }), {
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
    countedAsAttempt,
  });
  return 'deferred';
}

async function fail(
  services: DeliveryServices,
  record: Omit<DeliveryRecord, 'status' | 'updatedAt'>,
  code: string,
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

/** The end of a message: the result event first, then the ledger (a crash between them repeats the event, never the mail). */
async function finish(services: DeliveryServices, record: DeliveryRecord): Promise<void> {
  if (record.status !== 'sent' && record.status !== 'failed') throw new Error('finish() needs a final status');
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

function pick(existing: DeliveryRecord): Partial<DeliveryRecord> {
  const { etag: _etag, updatedAt: _updatedAt, status: _status, ...rest } = existing;
  return rest;
}
