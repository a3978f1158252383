import { findAccount } from '../config/loadAccounts';
import { MessageError } from '../errors';
import { decodeQueueMessage } from '../message/decodeQueueMessage';
import { isMimeMessage } from '../message/messageSchema';
import { loadAttachments } from './attachments';
import { composeMail, type ComposedMail } from './composeMail';
import { composeMimeMail } from './composeMime';
import type { DeliveryOutcome, DeliveryServices, QueueMeta, RecordDraft } from './deliveryServices';
import { LedgerView } from './ledgerCheck';
import { defer, deferForError, expire, fail, recordSent } from './outcomes';
import { settleRefusal } from './refusedAttempt';
import { attemptSend, type Settle } from './sendAttempt';

export type { DeliveryOutcome, DeliveryServices, QueueMeta } from './deliveryServices';

/**
 * One queue message, from trigger to record. Every path ends sent, failed with a reason, or deferred
 * (re-enqueued with a delay); a message the ledger already knows as sent is never sent again.
 *
 *   1. decode          the queue message (base64 JSON, schema v1: fields, or a MIME blob)
 *   2. ledger          read only when needed (LedgerView, ledgerCheck.ts): a new message is claimed by insert in 7;
 *                      any other end reads it first (duplicate? claimed by another attempt? earlier counts)
 *   3. account         known? message too old?
 *   4. compose         sender rules, attachments, size and recipient limits (composeMail.ts, attachments.ts);
 *                      a MIME message: the same rules on its headers, Bcc cut, sent as it is (composeMime.ts)
 *   5. gate            may the account send now?                        (accountGate.ts)
 *   6. token           from memory, Key Vault, or a refresh under the lease
 *   7. attempt         connection, rate budget (or a place in the mailbox's line), claim, SMTP, one
 *                      refresh-and-retry on a refused token                                  (sendAttempt.ts)
 *   8. outcome         sent / failed / deferred, result event and ledger  (outcomes.ts, refusedAttempt.ts)
 */
export async function deliverMessage(services: DeliveryServices, payload: unknown, meta: QueueMeta): Promise<DeliveryOutcome> {
  const decoded = decodeQueueMessage(payload);
  const id = (decoded.ok ? decoded.message.id : decoded.id) ?? meta.queueMessageId;
  const now = Date.now();
  const ledger = new LedgerView(services, decoded, id, meta, now);
  /** What this attempt learned of the message, laid over the ledger's row. */
  const fields: Partial<RecordDraft> = {};
  /** Ends the message other than by a send: after the ledger was read (a duplicate ends here). */
  const settle: Settle = async (end) => {
    const known = await ledger.check();
    if (known.done) return known.done;
    return end({ ...known.draft, ...fields }, known.existing);
  };
  // An outcome this instance could not record yet: the ledger check records it.
  if (services.unrecorded.has(id)) return settle(() => Promise.reject(new Error('unreachable: recorded above')));

  if (!decoded.ok) {
    if (decoded.account) fields.account = decoded.account;
    return settle((record) => fail(services, record, 'invalid_message', decoded.reason));
  }
  const message = decoded.message;
  const account = findAccount(services.accounts, message.account);
  if (!account) {
    if (message.account) fields.account = message.account;
    return settle((record) =>
      fail(
        services,
        record,
        'unknown_account',
        message.account
          ? `There is no account "${message.account}". Known accounts: ${services.accounts.map((a) => a.id).join(', ')}.`
          : 'No account was given and no default account is configured.',
      ),
    );
  }
  fields.account = account.id;
  if (isMimeMessage(message) && message.device) fields.device = message.device;
  if (!isMimeMessage(message)) fields.subject = message.subject.slice(0, 200);
  // The queue message's own age first (no read); a copy deferred earlier is checked again on its ledger row.
  if (now - Date.parse(ledger.fresh.firstSeenAt) > services.policy.maxAgeMs) {
    return settle((record, existing) => expire(services, record, existing?.reason));
  }

  let composed: ComposedMail;
  try {
    composed = isMimeMessage(message)
      ? await composeMimeMail(services.mime, account, message)
      : composeMail(account, id, message, await loadAttachments(services.attachments, account, message));
  } catch (error) {
    if (error instanceof MessageError) return settle((record) => fail(services, record, error.code, error.message));
    return settle((record) =>
      defer(services, message, record, {
        delayMs: services.policy.backoffMs(1),
        code: 'transient',
        reason: `${isMimeMessage(message) ? 'The MIME message' : 'Attachments'} could not be read: ${(error as Error).message}`,
      }),
    );
  }
  fields.recipients = composed.recipients;
  if (composed.messageId) fields.messageId = composed.messageId;
  if (composed.subject !== undefined) fields.subject = composed.subject;

  const gate = await services.gate.check(account.id);
  if (!gate.open)
    return settle((record) =>
      defer(services, message, record, {
        delayMs: gate.retryAfterMs ?? services.policy.accountWaitMs,
        code: gate.code,
        reason: gate.reason,
      }),
    );

  let token;
  try {
    token = await services.tokens.get(account);
  } catch (error) {
    return settle((record) => deferForError(services, message, record, error));
  }

  const attempt = await attemptSend(services, account, message, { ledger, fields, settle }, composed, token);
  switch (attempt.kind) {
    case 'done':
      return attempt.outcome;
    case 'sent':
      return recordSent(services, attempt.claim, attempt.sent);
    case 'refused':
      return settleRefusal(services, account, message, attempt.claim, attempt);
  }
}
