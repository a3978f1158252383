import type { Account } from '../config/account';
import type { MailMessage } from '../message/messageSchema';
import type { AccessTokenRecord } from '../oauth/tokenSet';
import type { SendPermit, SentInfo } from '../smtp/accountSender';
import { classifySmtpFailure, type ReplyClass, type SmtpFailure } from '../smtp/classifyReply';
import { ConflictError, type DeliveryRecord } from '../storage/deliveryLedger';
import type { ComposedMail } from './composeMail';
import type { DeliveryOutcome, DeliveryServices, RecordDraft } from './deliveryServices';
import { defer, deferForError } from './outcomes';

export type AttemptResult =
  | { kind: 'sent'; claim: RecordDraft; sent: SentInfo }
  | { kind: 'refused'; claim: RecordDraft; failure: ReplyClass; smtpReply?: string; accessToken: string }
  /** Ended before SMTP gave an answer: deferred (no connection, no budget, no token) or claimed elsewhere. */
  | { kind: 'done'; outcome: DeliveryOutcome };

/**
 * One SMTP attempt: claim the message in the ledger (from here on a crash leaves a `sending` row that stops a
 * blind resend), send it on one of the account's connections with the rate budget taken while the connection is
 * held, and when the server refuses the token, refresh once and retry once.
 */
export async function attemptSend(
  services: DeliveryServices,
  account: Account,
  message: MailMessage,
  record: RecordDraft,
  existing: DeliveryRecord | undefined,
  composed: ComposedMail,
  firstToken: AccessTokenRecord,
): Promise<AttemptResult> {
  const { ledger, log, policy } = services;
  const claim: RecordDraft & { status: 'sending' } = {
    ...record,
    status: 'sending',
    attempts: record.attempts + 1,
    sendingUntil: new Date(Date.now() + policy.sendingLeaseMs).toISOString(),
  };
  try {
    await ledger.put(claim, existing?.etag);
  } catch (error) {
    if (error instanceof ConflictError) {
      log.info('mail.duplicate', { messageId: record.id, account: account.id, status: 'claimed elsewhere' });
      return { kind: 'done', outcome: 'duplicate' };
    }
    throw error;
  }
  // Waiting (for a connection, for budget, for a token) is not an attempt.
  const unclaimed = { ...claim, attempts: record.attempts };

  const sender = services.senderFor(account);
  const budget = services.budgetFor(account);
  let token = firstToken;
  let retriedAuth = false;
  // The rate budget is taken once, while a connection is held (see AccountSender.send); the retry after a
  // refused token does not take it again.
  let permit: SendPermit | undefined = () => budget.acquire(composed.recipients, policy.maxInProcessWaitMs);
  for (;;) {
    try {
      const result = await sender.send(composed.options, token, policy.maxInProcessWaitMs, permit);
      permit = undefined;
      if (result.ok) return { kind: 'sent', claim, sent: result.value };
      return {
        kind: 'done',
        outcome: await defer(services, message, unclaimed, {
          delayMs: result.retryAfterMs,
          code: result.code,
          reason: result.reason ?? `All ${account.limits.concurrentConnections} SMTP connections of the account are busy.`,
        }),
      };
    } catch (error) {
      permit = undefined;
      const failure = classifySmtpFailure(error as SmtpFailure);
      const smtpReply = (error as SmtpFailure).response;
      if (failure.kind !== 'auth_rejected' || retriedAuth)
        return { kind: 'refused', claim, failure, accessToken: token.accessToken, ...(smtpReply ? { smtpReply } : {}) };
      retriedAuth = true;
      log.warn('mail.auth_rejected', { messageId: record.id, account: account.id, reason: failure.reason });
      try {
        token = await services.tokens.get(account, { rejectedToken: token.accessToken });
      } catch (tokenError) {
        return { kind: 'done', outcome: await deferForError(services, message, unclaimed, tokenError) };
      }
    }
  }
}
