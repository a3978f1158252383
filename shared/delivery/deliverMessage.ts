import { graphConsentMissing } from '../accounts/graphConsent';
import { findAccount } from '../config/loadAccounts';
import { MessageError } from '../errors';
import { decodeQueueMessage } from '../message/decodeQueueMessage';
import { isMimeMessage } from '../message/messageSchema';
import { loadAttachments } from './attachments';
import { composeMail, type ComposedMail } from './composeMail';
import { composeMimeMail } from './composeMime';
import { chooseCarrier, type Carrier } from './carriers';
import type { DeliveryOutcome, DeliveryServices, QueueMeta, RecordDraft } from './deliveryServices';
import { LedgerView, MAX_DECISIONS } from './ledgerCheck';
import { defer, deferForError, endUnsent, expire, fail, recordSent } from './outcomes';
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
 *   6. transport       SMTP or Microsoft Graph (the account's transport; `auto` after SMTP AUTH was found
 *                      disabled), or SMTP for what Graph cannot carry                        (carriers.ts)
 *   7. token           of the transport's audience: from memory, the store, or a refresh under the lease
 *   8. attempt         lane (connection or request slot), rate budget (or a place in the mailbox's line), claim, SMTP, one
 *                      refresh-and-retry on a refused token                                  (sendAttempt.ts)
 *   9. outcome         sent / failed / deferred, result event and ledger  (outcomes.ts, refusedAttempt.ts)
 */
export async function deliverMessage(services: DeliveryServices, payload: unknown, meta: QueueMeta): Promise<DeliveryOutcome> {
  const decoded = decodeQueueMessage(payload);
  const id = (decoded.ok ? decoded.message.id : decoded.id) ?? meta.queueMessageId;
  const now = Date.now();
  const ledger = new LedgerView(services, decoded, id, meta, now);
  /** What this attempt learned of the message, laid over the ledger's row. */
  const fields: Partial<RecordDraft> = {};
  /**
   * Ends the message other than by a send: after the ledger was read (a duplicate ends here), with a write
   * conditional on what was read; when that write loses, the row is read again and the end decided again.
   */
  const settle: Settle = async (end) => {
    for (let decision = 0; decision < MAX_DECISIONS; decision++) {
      const known = decision === 0 ? await ledger.check() : await ledger.recheck();
      if (known.done) return known.done;
      const ended = await end({ ...known.draft, ...fields }, known.existing);
      if (ended !== 'lost') return ended;
    }
    throw new Error(`The ledger row of message ${id} kept changing; the host retries the message.`);
  };
  /** After this attempt's claim, its outcome write lost: another attempt ended the message (its claim had expired). */
  const afterLost = async (): Promise<DeliveryOutcome> => {
    const known = await ledger.recheck();
    if (known.done) return known.done;
    throw new Error(`The ledger row of message ${id} changed under this attempt's claim; the host retries the message.`);
  };
  // An outcome this instance could not record yet: the ledger check records it.
  if (services.unrecorded.has(id)) return settle(() => Promise.reject(new Error('unreachable: recorded above')));

  if (!decoded.ok) {
    if (decoded.account) fields.account = decoded.account;
    return settle((record) => fail(services, record, 'invalid_message', decoded.reason));
  }
  const message = decoded.message;
  let account = findAccount(services.accounts, message.account);
  if (!account && services.refreshAccounts) {
    await services.refreshAccounts();
    account = findAccount(services.accounts, message.account);
  }
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

  const status = services.gate.statusOf(account.id);
  let carrier: Carrier;
  try {
    carrier = await chooseCarrier(services, account, status, id, composed);
  } catch (error) {
    if (error instanceof MessageError) return settle((record) => fail(services, record, error.code, error.message));
    throw error;
  }
  const consentMissing = carrier.transport === 'graph' ? graphConsentMissing(account, status) : undefined;
  if (consentMissing)
    return settle((record) =>
      defer(services, message, record, {
        delayMs: services.policy.accountWaitMs,
        code: 'needs_reauthorization',
        reason: consentMissing,
      }),
    );

  let token;
  try {
    token = await services.tokens.get(account, carrier.audience === 'graph' ? { audience: 'graph' } : {});
  } catch (error) {
    return settle((record) => deferForError(services, message, record, error));
  }

  const attempt = await attemptSend(services, account, message, { ledger, fields, settle, afterLost }, composed, carrier, token);
  if (attempt.kind === 'done') return attempt.outcome;
  const ended =
    attempt.kind === 'sent'
      ? await recordSent(services, attempt.claim, attempt.sent)
      : await endUnsent(services, attempt.claim, () => settleRefusal(services, account, message, attempt.claim, attempt));
  return ended === 'lost' ? afterLost() : ended;
}
