/**
 * The allowed-senders document: for every configured account, the From addresses it allows and whether it can
 * send now. The app publishes it as blob `relay-senders/allowed-senders.json`; the relay (which may only read
 * that container) answers `550` or `451 4.7.0` in the SMTP dialogue from it, instead of `250` for a message the
 * app would then refuse. Nothing in it is secret: addresses, a state, and a pause's end.
 */
import { z } from 'zod';
import { sendDecision } from '../accounts/accountRules';
import type { AdminState } from '../accounts/accountConfigTable';
import type { AccountStatus } from '../accounts/accountStatus';
import type { Account } from '../config/account';

export const ALLOWED_SENDERS_BLOB = 'allowed-senders.json';

/** What a device can be told: the app's account states folded into what changes the relay's answer. */
export const PUBLISHED_STATES = ['ready', 'paused', 'needs_reauthorization', 'configuration_error'] as const;
export type PublishedState = (typeof PUBLISHED_STATES)[number];

const publishedAccountSchema = z
  .object({
    allowedFrom: z.array(z.string().min(3).max(320)).max(1000),
    state: z.enum(PUBLISHED_STATES),
    /** While paused: when the pause ends. */
    until: z.iso.datetime().optional(),
  })
  .strict();

export const allowedSendersSchema = z
  .object({
    version: z.literal(1),
    publishedAt: z.iso.datetime(),
    accounts: z.record(z.string(), publishedAccountSchema),
  })
  .strict();

export type AllowedSendersDocument = z.infer<typeof allowedSendersSchema>;
export type PublishedAccount = z.infer<typeof publishedAccountSchema>;

/** An account as the directory holds it: its configuration and whether an administrator paused it on the page. */
export interface PublishableAccount {
  account: Account;
  state: AdminState;
}

/**
 * The send path's own decision (accounts/accountRules), so that the relay refuses exactly what would wait:
 * degraded and stale accounts still send while their token lasts; an account nobody authorized yet (no status
 * row, or `not_authorized`) waits for an administrator as one whose grant was revoked does, and so does one an
 * administrator paused on the page (until it is resumed, so without `until`).
 */
export function publishedAccount(
  { account, state }: PublishableAccount,
  status: AccountStatus | undefined,
  now: number,
): PublishedAccount {
  const allowedFrom = [...account.allowedFrom];
  if (state === 'paused') return { allowedFrom, state: 'paused' };
  // The authorization writes the first status row: an account without one was never authorized.
  if (account.flow === 'authorization_code' && (!status || status.state === 'not_authorized'))
    return { allowedFrom, state: 'needs_reauthorization' };
  const decision = sendDecision(account.id, status, now);
  if (decision.open) return { allowedFrom, state: 'ready' };
  switch (decision.code) {
    case 'needs_reauthorization':
      return { allowedFrom, state: 'needs_reauthorization' };
    case 'config_error':
      return { allowedFrom, state: 'configuration_error' };
    default:
      return { allowedFrom, state: 'paused', ...(status?.pausedUntil ? { until: status.pausedUntil } : {}) };
  }
}

export function buildAllowedSenders(
  accounts: readonly PublishableAccount[],
  statuses: readonly AccountStatus[],
  now = new Date(),
): AllowedSendersDocument {
  const byId = new Map(statuses.map((status) => [status.accountId, status]));
  const entries = accounts.map((entry) => [entry.account.id, publishedAccount(entry, byId.get(entry.account.id), now.getTime())]);
  return { version: 1, publishedAt: now.toISOString(), accounts: Object.fromEntries(entries) };
}

/** The document as read from storage; a reason when it is not one. */
export function parseAllowedSenders(
  text: string,
): { ok: true; document: AllowedSendersDocument } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `not JSON: ${(error as Error).message}` };
  }
  const parsed = allowedSendersSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, reason: `${issue.path.join('.') || '(document)'}: ${issue.message}` };
  }
  return { ok: true, document: parsed.data };
}
