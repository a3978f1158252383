import type { Account } from '../config/account';
import type { MailMessage } from '../message/messageSchema';
import { appOnlyRefusalHint } from '../oauth/clientCredentials';
import type { ReplyClass } from '../smtp/classifyReply';
import type { DeliveryServices, RecordDraft } from './deliveryServices';
import { defer, fail, type Ended } from './outcomes';

/**
 * What an SMTP refusal means for the message and its account: permanent replies fail the message; throttling
 * and transient trouble defer it; a refused fresh token or an account problem (SMTP AUTH disabled, quota,
 * mailbox full) stops the account (its messages wait at the gate, its receivers are told) and defers it.
 */
export async function settleRefusal(
  services: DeliveryServices,
  account: Account,
  message: MailMessage,
  claim: RecordDraft,
  refusal: { failure: ReplyClass; smtpReply?: string; accessToken?: string },
): Promise<Ended> {
  const { failure: reply } = refusal;
  const failed = { ...claim, ...(refusal.smtpReply ? { smtpReply: refusal.smtpReply } : {}) };
  // Only a transient SMTP failure counts as an attempt.
  const notAnAttempt = { ...failed, attempts: claim.attempts - 1 };
  switch (reply.kind) {
    case 'permanent':
      return fail(services, failed, reply.code, reply.reason);
    case 'throttled':
      return defer(services, message, notAnAttempt, { delayMs: reply.retryAfterMs, code: 'throttled', reason: reply.reason });
    case 'transient':
      if (claim.attempts >= services.policy.maxAttempts)
        return fail(services, failed, 'gave_up', `Gave up after ${claim.attempts} attempts. Last: ${reply.reason}`);
      return defer(services, message, failed, {
        delayMs: services.policy.backoffMs(claim.attempts),
        code: 'transient',
        reason: reply.reason,
        countedAsAttempt: true,
      });
    case 'auth_rejected': {
      const appOnly = account.flow === 'client_credentials';
      await services.accountStates.markProblem(account, {
        state: appOnly ? 'configuration_error' : 'reauthorization_required',
        code: 'smtp_auth_rejected',
        reason: appOnly
          ? `${reply.reason} ${appOnlyRefusalHint(account, refusal.accessToken)}`
          : `${reply.reason} A fresh token was refused too: check the mailbox's permissions and that SMTP AUTH is enabled, then authorize again.`,
      });
      return defer(services, message, notAnAttempt, {
        delayMs: services.policy.accountWaitMs,
        code: appOnly ? 'config_error' : 'needs_reauthorization',
        reason: reply.reason,
      });
    }
    case 'account':
      if (reply.code === 'smtp_auth_disabled' && account.transport === 'auto') {
        // SMTP AUTH is off for this tenant or mailbox: the account goes on through Graph, and so does this message.
        await services.accountStates.markSwitchedToGraph(account, reply.reason);
        services.gate.forget(account.id);
        return defer(services, message, notAnAttempt, { delayMs: 1_000, code: 'transport_switched', reason: reply.reason });
      }
      await services.accountStates.markProblem(account, {
        state: reply.code === 'smtp_auth_disabled' || reply.code === 'config_error' ? 'configuration_error' : 'paused',
        code: reply.code,
        reason: reply.reason,
        pausedUntil: new Date(Date.now() + reply.pauseMs).toISOString(),
      });
      return defer(services, message, notAnAttempt, { delayMs: reply.pauseMs, code: reply.code, reason: reply.reason });
  }
}
