import { findAccount } from '../config/loadAccounts';
import { MessageError } from '../errors';
import { decodeQueueMessage } from '../message/decodeQueueMessage';
import { isMimeMessage } from '../message/messageSchema';
import { loadAttachments } from './attachments';
import { composeMail, type ComposedMail } from './composeMail';
import { composeMimeMail } from './composeMime';
import type { DeliveryOutcome, DeliveryServices, QueueMeta, RecordDraft } from './deliveryServices';
import { checkLedger } from './ledgerCheck';
import { defer, deferForError, fail, recordSent } from './outcomes';
import { describeMaxAge } from './policy';
import { settleRefusal } from './refusedAttempt';
import { attemptSend } from './sendAttempt';

export type { DeliveryOutcome, DeliveryServices, QueueMeta } from './deliveryServices';

/**
 * One queue message, from trigger to record. Every path ends sent, failed with a reason, or deferred
 * (re-enqueued with a delay); a message the ledger already knows as sent is never sent again.
 *
 *   1. decode          the queue message (base64 JSON, schema v1: fields, or a MIME blob)
 *   2. ledger          duplicate? claimed by another attempt?          (ledgerCheck.ts)
 *   3. account         known? message too old?
 *   4. compose         sender rules, attachments, size and recipient limits (composeMail.ts, attachments.ts);
 *                      a MIME message: the same rules on its headers, Bcc cut, sent as it is (composeMime.ts)
 *   5. gate            may the account send now?                        (accountGate.ts)
 *   6. token           from memory, Key Vault, or a refresh under the lease
 *   7. attempt         claim, connection, rate budget, SMTP, one refresh-and-retry on a refused token (sendAttempt.ts)
 *   8. outcome         sent / failed / deferred, result event and ledger  (outcomes.ts, refusedAttempt.ts)
 */
export async function deliverMessage(services: DeliveryServices, payload: unknown, meta: QueueMeta): Promise<DeliveryOutcome> {
  const decoded = decodeQueueMessage(payload);
  const id = (decoded.ok ? decoded.message.id : decoded.id) ?? meta.queueMessageId;
  const now = Date.now();

  const known = await checkLedger(services, decoded, id, meta, now);
  if (known.done) return known.done;
  const { existing, draft } = known;

  if (!decoded.ok)
    return fail(
      services,
      { ...draft, ...(decoded.account ? { account: decoded.account } : {}) },
      'invalid_message',
      decoded.reason,
    );
  const message = decoded.message;
  const account = findAccount(services.accounts, message.account);
  if (!account) {
    return fail(
      services,
      { ...draft, ...(message.account ? { account: message.account } : {}) },
      'unknown_account',
      message.account
        ? `There is no account "${message.account}". Known accounts: ${services.accounts.map((a) => a.id).join(', ')}.`
        : 'No account was given and no default account is configured.',
    );
  }
  const record: RecordDraft = {
    ...draft,
    account: account.id,
    ...(isMimeMessage(message) ? {} : { subject: message.subject.slice(0, 200) }),
  };
  if (now - Date.parse(record.firstSeenAt) > services.policy.maxAgeMs) {
    return fail(
      services,
      record,
      'expired',
      // The last reason is a sentence of its own ("... Authorize the mailbox again."): no second full stop.
      `The message waited more than ${describeMaxAge(services.policy.maxAgeMs)} without being sent (MESSAGE_EXPIRY_DAYS)${existing?.reason ? `; last reason: ${existing.reason.replace(/\.$/, '')}` : ''}.`,
    );
  }

  let composed: ComposedMail;
  try {
    composed = isMimeMessage(message)
      ? await composeMimeMail(services.mime, account, message)
      : composeMail(account, id, message, await loadAttachments(services.attachments, account, message));
  } catch (error) {
    if (error instanceof MessageError) return fail(services, record, error.code, error.message);
    return defer(services, message, record, {
      delayMs: services.policy.backoffMs(1),
      code: 'transient',
      reason: `${isMimeMessage(message) ? 'The MIME message' : 'Attachments'} could not be read: ${(error as Error).message}`,
    });
  }
  record.recipients = composed.recipients;
  if (composed.messageId) record.messageId = composed.messageId;
  if (composed.subject !== undefined) record.subject = composed.subject;

  const gate = await services.gate.check(account.id);
  if (!gate.open)
    return defer(services, message, record, {
      delayMs: gate.retryAfterMs ?? services.policy.accountWaitMs,
      code: gate.code,
      reason: gate.reason,
    });

  let token;
  try {
    token = await services.tokens.get(account);
  } catch (error) {
    return deferForError(services, message, record, error);
  }

  const attempt = await attemptSend(services, account, message, record, existing, composed, token);
  switch (attempt.kind) {
    case 'done':
      return attempt.outcome;
    case 'sent':
      return recordSent(services, attempt.claim, attempt.sent);
    case 'refused':
      return settleRefusal(services, account, message, attempt.claim, attempt);
  }
}
