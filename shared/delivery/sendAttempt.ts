import type { Account } from '../config/account';
import type { RateGrant, Ticket } from '../limits/rateBudget';
import type { MailMessage } from '../message/messageSchema';
import type { AccessTokenRecord } from '../oauth/tokenSet';
import type { SendPermit, SentInfo } from '../smtp/accountSender';
import { classifySmtpFailure, type ReplyClass, type SmtpFailure } from '../smtp/classifyReply';
import { ConflictError, type DeliveryRecord } from '../storage/deliveryLedger';
import type { ComposedMail } from './composeMail';
import type { DeliveryOutcome, DeliveryServices, RecordDraft } from './deliveryServices';
import type { LedgerCheck, LedgerView } from './ledgerCheck';
import { defer, deferForError, expire } from './outcomes';

export type AttemptResult =
  | { kind: 'sent'; claim: RecordDraft; sent: SentInfo }
  | { kind: 'refused'; claim: RecordDraft; failure: ReplyClass; smtpReply?: string; accessToken: string }
  /** Ended before SMTP gave an answer: deferred (no connection, no budget, no token) or claimed elsewhere. */
  | { kind: 'done'; outcome: DeliveryOutcome };

/** Ends a message other than by a send, once the ledger was read; `end` gets the row to write. */
export type Settle = (
  end: (record: RecordDraft, existing: DeliveryRecord | undefined) => Promise<DeliveryOutcome>,
) => Promise<DeliveryOutcome>;

export interface AttemptLedger {
  ledger: LedgerView;
  /** What this attempt learned of the message (account, subject, recipients, Message-ID). */
  fields: Partial<RecordDraft>;
  settle: Settle;
}

/**
 * One SMTP attempt: a connection, then the rate budget while it is held, then the claim in the ledger (from there
 * on a crash leaves a `sending` row that stops a blind resend), then SMTP; when the server refuses the token,
 * refresh once and retry once. Nothing is claimed before the budget is granted: a message that waits for budget
 * was never near the server. A message refused budget while others wait gets its place in the mailbox's line
 * and comes back then.
 */
export async function attemptSend(
  services: DeliveryServices,
  account: Account,
  message: MailMessage,
  { ledger, fields, settle }: AttemptLedger,
  composed: ComposedMail,
  firstToken: AccessTokenRecord,
): Promise<AttemptResult> {
  const { log, policy } = services;
  const sender = services.senderFor(account);
  const budget = services.budgetFor(account);
  let token = firstToken;
  let retriedAuth = false;
  let claim: (RecordDraft & { status: 'sending' }) | undefined;
  /** Set when the permit ended the message (a duplicate, another attempt's claim, too old). */
  let ended: DeliveryOutcome | undefined;
  const stop = (outcome: DeliveryOutcome) => {
    ended = outcome;
    return { ok: false as const, retryAfterMs: 0, reason: 'ended before sending' };
  };

  const takeBudget = async (): Promise<RateGrant | DeliveryOutcome> => {
    const known = ledger.loaded;
    const grant = await budget.acquire(
      composed.recipients,
      policy.maxInProcessWaitMs,
      known ? ticketOf(known) : { known: false },
    );
    if (grant.ok || !grant.needsTicket) return grant;
    // Others wait for this mailbox's budget: does this message hold a place in their line?
    const checked = await ledger.check();
    if (checked.done) return checked.done;
    return budget.acquire(composed.recipients, policy.maxInProcessWaitMs, ticketOf(checked));
  };

  const takeClaim = async (): Promise<DeliveryOutcome | undefined> => {
    const sendingUntil = new Date(Date.now() + policy.sendingLeaseMs).toISOString();
    if (!ledger.loaded) {
      // Claim by insert: the usual case, a message the ledger has not seen, costs no read.
      const fresh = { ...ledger.fresh, ...fields, status: 'sending' as const, attempts: 1, sendingUntil };
      try {
        await services.ledger.put(fresh);
        claim = fresh;
        return undefined;
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error;
      }
    }
    const checked = await ledger.check();
    if (checked.done) return checked.done;
    const record = { ...checked.draft, ...fields };
    if (Date.now() - Date.parse(record.firstSeenAt) > policy.maxAgeMs) return expire(services, record, checked.existing?.reason);
    const next = { ...record, status: 'sending' as const, attempts: record.attempts + 1, sendingUntil };
    try {
      await services.ledger.put(next, checked.existing?.etag);
    } catch (error) {
      if (error instanceof ConflictError) {
        log.info('mail.duplicate', { messageId: record.id, account: account.id, status: 'claimed elsewhere' });
        return 'duplicate';
      }
      throw error;
    }
    claim = next;
    return undefined;
  };

  // The rate budget is taken once, while a connection is held (see AccountSender.send), and the message is claimed
  // right after it; the retry after a refused token takes neither again.
  let permit: SendPermit | undefined = async () => {
    const grant = await takeBudget();
    if (typeof grant === 'string') return stop(grant);
    if (!grant.ok) return grant;
    const outcome = await takeClaim();
    return outcome ? stop(outcome) : { ok: true };
  };
  for (;;) {
    try {
      const result = await sender.send(composed.options, token, policy.maxInProcessWaitMs, permit);
      permit = undefined;
      if (ended) return { kind: 'done', outcome: ended };
      if (result.ok) return { kind: 'sent', claim: claim!, sent: result.value };
      // No connection or no budget: waiting is not an attempt, and nothing was claimed.
      const jitterMs = result.code === 'rate_limited' ? Math.random() * Math.min(1_000, budget.slotMs) : 0;
      return {
        kind: 'done',
        outcome: await settle((record) =>
          defer(services, message, record, {
            delayMs: result.retryAfterMs + jitterMs,
            code: result.code,
            reason: result.reason ?? `All ${account.limits.concurrentConnections} SMTP connections of the account are busy.`,
          }),
        ),
      };
    } catch (error) {
      permit = undefined;
      // Storage trouble while taking budget or the claim: nothing was sent; the host retries the invocation.
      if (!claim) throw error;
      const failure = classifySmtpFailure(error as SmtpFailure);
      const smtpReply = (error as SmtpFailure).response;
      if (failure.kind !== 'auth_rejected' || retriedAuth)
        return { kind: 'refused', claim, failure, accessToken: token.accessToken, ...(smtpReply ? { smtpReply } : {}) };
      retriedAuth = true;
      log.warn('mail.auth_rejected', { messageId: claim.id, account: account.id, reason: failure.reason });
      try {
        token = await services.tokens.get(account, { rejectedToken: token.accessToken });
      } catch (tokenError) {
        const unclaimed = { ...claim, attempts: claim.attempts - 1 };
        return { kind: 'done', outcome: await deferForError(services, message, unclaimed, tokenError) };
      }
    }
  }
}

/** The message's place in the mailbox's line: the slot it was given when it was last refused budget. */
function ticketOf(checked: LedgerCheck): Ticket {
  const row = checked.done ? undefined : checked.existing;
  const reservedAt =
    row?.status === 'deferred' && row.code === 'rate_limited' && row.nextAttemptAt ? Date.parse(row.nextAttemptAt) : undefined;
  return reservedAt !== undefined && Number.isFinite(reservedAt) ? { known: true, reservedAt } : { known: true };
}
