import type { Account } from '../config/account';
import type { RateGrant, Ticket } from '../limits/rateBudget';
import type { MailMessage } from '../message/messageSchema';
import type { AccessTokenRecord } from '../oauth/tokenSet';
import type { SentInfo } from '../smtp/accountSender';
import type { ReplyClass } from '../smtp/classifyReply';
import type { DeliveryRecord } from '../storage/deliveryLedger';
import type { Carrier, CarrierLane } from './carriers';
import type { ComposedMail } from './composeMail';
import type { DeliveryOutcome, DeliveryServices, RecordDraft } from './deliveryServices';
import { MAX_DECISIONS, type LedgerCheck, type LedgerView } from './ledgerCheck';
import { defer, deferForError, endUnsent, expire, type Ended } from './outcomes';

export type Claim = RecordDraft & { status: 'sending' };

export type AttemptResult =
  | { kind: 'sent'; claim: Claim; sent: SentInfo }
  | { kind: 'refused'; claim: Claim; failure: ReplyClass; smtpReply?: string; accessToken: string }
  /** Ended before SMTP gave an answer: deferred (no connection, no budget, no token) or claimed elsewhere. */
  | { kind: 'done'; outcome: DeliveryOutcome };

/** Ends a message other than by a send, once the ledger was read; `end` gets the row to write. */
export type Settle = (
  end: (record: RecordDraft, existing: DeliveryRecord | undefined) => Promise<Ended>,
) => Promise<DeliveryOutcome>;

export interface AttemptLedger {
  ledger: LedgerView;
  /** What this attempt learned of the message (account, subject, recipients, Message-ID). */
  fields: Partial<RecordDraft>;
  settle: Settle;
  /** Ends a message this attempt claimed, when the claim's write lost: the row says what happened. */
  afterLost: () => Promise<DeliveryOutcome>;
}

/**
 * One attempt, top-down: a lane of the mailbox (an SMTP connection, or a Graph request slot: see carriers.ts); the
 * rate budget while it is held; the claim in the ledger (from there on a crash leaves a `sending` row that stops a
 * blind resend); the send; and when the server refuses the token, one refresh and one retry. Nothing is claimed before the budget is granted: a message that
 * waits for budget was never near the server. A message refused budget while others wait gets its place in the
 * mailbox's line and comes back then.
 */
export async function attemptSend(
  services: DeliveryServices,
  account: Account,
  message: MailMessage,
  attempt: AttemptLedger,
  composed: ComposedMail,
  carrier: Carrier,
  firstToken: AccessTokenRecord,
): Promise<AttemptResult> {
  const { log, policy } = services;
  const { settle } = attempt;
  const deferWith = (options: Parameters<typeof defer>[3]) =>
    settle((record) => defer(services, message, record, options)).then(done);

  const lane = await carrier.acquire(policy.maxInProcessWaitMs);
  if (!lane) return deferWith({ delayMs: 5_000, code: 'connection_limit', reason: carrier.busyReason });
  let waitForBudget: Parameters<typeof defer>[3];
  try {
    const grant = await takeBudget(services, account, attempt, composed.recipients);
    if (typeof grant === 'string') return done(grant);
    if (grant.ok) {
      const claimed = await claim(services, attempt);
      if (typeof claimed === 'string') return done(claimed);
      return await sendOnLane(services, account, message, attempt, { carrier, lane, claimed, firstToken }, log);
    }
    // Waiting is not an attempt, and nothing was claimed. Jitter spreads copies that share a window's end.
    waitForBudget = {
      delayMs: grant.retryAfterMs + Math.random() * Math.min(1_000, services.budgetFor(account).slotMs),
      code: 'rate_limited',
      reason: grant.reason,
      ...(grant.reservedAt !== undefined ? { lineSlot: grant.reservedAt } : {}),
    };
  } finally {
    lane.release();
  }
  return deferWith(waitForBudget);
}

async function sendOnLane(
  services: DeliveryServices,
  account: Account,
  message: MailMessage,
  attempt: AttemptLedger,
  held: { carrier: Carrier; lane: CarrierLane; claimed: Claim; firstToken: AccessTokenRecord },
  log: DeliveryServices['log'],
): Promise<AttemptResult> {
  const { carrier, lane, claimed } = held;
  let token = held.firstToken;
  for (let retried = false; ; retried = true) {
    try {
      return { kind: 'sent', claim: claimed, sent: await lane.send(token) };
    } catch (error) {
      const failure = carrier.classify(error);
      const smtpReply = carrier.replyOf(error);
      if (failure.kind !== 'auth_rejected' || retried)
        return { kind: 'refused', claim: claimed, failure, accessToken: token.accessToken, ...(smtpReply ? { smtpReply } : {}) };
      log.warn('mail.auth_rejected', {
        messageId: claimed.id,
        account: account.id,
        transport: carrier.transport,
        reason: failure.reason,
      });
      try {
        token = await services.tokens.get(account, { rejectedToken: token.accessToken, audience: carrier.audience });
      } catch (tokenError) {
        // Not sent: the claim becomes a deferral that does not count as an attempt.
        const unclaimed = { ...claimed, attempts: claimed.attempts - 1 };
        const ended = await endUnsent(services, claimed, () => deferForError(services, message, unclaimed, tokenError));
        return done(ended === 'lost' ? await attempt.afterLost() : ended);
      }
    }
  }
}

/**
 * The mailbox's rate budget. Without having read the ledger the message presents no ticket; when others wait for
 * the budget, it reads the row to learn whether it holds a place in their line, and asks again with that.
 */
async function takeBudget(
  services: DeliveryServices,
  account: Account,
  { ledger }: AttemptLedger,
  recipients: number,
): Promise<RateGrant | DeliveryOutcome> {
  const budget = services.budgetFor(account);
  const waitMs = services.policy.maxInProcessWaitMs;
  const known = ledger.loaded;
  const grant = await budget.acquire(recipients, waitMs, known ? ticketOf(known) : { known: false });
  if (grant.ok || !grant.needsTicket) return grant;
  const checked = await ledger.check();
  if (checked.done) return checked.done;
  return budget.acquire(recipients, waitMs, ticketOf(checked));
}

/**
 * Claims the message: an insert when the ledger has not seen it (the usual case, no read), otherwise a write with
 * the ETag of the row as read. A claim that loses reads again: another copy's claim or outcome wins.
 */
async function claim(services: DeliveryServices, { ledger, fields }: AttemptLedger): Promise<Claim | DeliveryOutcome> {
  const { policy, log } = services;
  const sendingUntil = new Date(Date.now() + policy.sendingLeaseMs).toISOString();
  if (!ledger.loaded) {
    const fresh: Claim = { ...ledger.fresh, ...fields, status: 'sending', attempts: 1, sendingUntil };
    const etag = await services.ledger.write(fresh);
    if (etag !== undefined) return { ...fresh, etag };
  }
  for (let decision = 0; decision < MAX_DECISIONS; decision++) {
    const checked = decision === 0 ? await ledger.check() : await ledger.recheck();
    if (checked.done) return checked.done;
    const record = { ...checked.draft, ...fields };
    if (Date.now() - Date.parse(record.firstSeenAt) > policy.maxAgeMs) {
      const ended = await expire(services, record, checked.existing?.reason);
      if (ended !== 'lost') return ended;
      continue;
    }
    // Its turn in the line is being used: the place is given up.
    const { lineSlot: _lineSlot, ...rest } = record;
    const next: Claim = { ...rest, status: 'sending', attempts: record.attempts + 1, sendingUntil };
    const etag = await services.ledger.write(next);
    if (etag !== undefined) return { ...next, etag };
    log.info('mail.claim_lost', { messageId: record.id, account: record.account });
  }
  throw new Error(`The ledger row of message ${ledger.id} kept changing while it was claimed; the host retries the message.`);
}

/** The message's place in the mailbox's line: the slot it was given when it was last refused budget. */
export function ticketOf(checked: LedgerCheck): Ticket {
  const row = checked.done ? undefined : checked.existing;
  const reservedAt = row?.status === 'deferred' && row.lineSlot ? Date.parse(row.lineSlot) : undefined;
  return reservedAt !== undefined && Number.isFinite(reservedAt) ? { known: true, reservedAt } : { known: true };
}

function done(outcome: DeliveryOutcome): AttemptResult {
  return { kind: 'done', outcome };
}
