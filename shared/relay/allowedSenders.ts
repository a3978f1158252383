/**
 * The allowed-senders document: for every configured account, the From addresses it allows and whether it can
 * send now. The app publishes it as blob `relay-senders/allowed-senders.json`; the relay (which may only read
 * that container) answers `550` or `451 4.7.0` in the SMTP dialogue from it, instead of `250` for a message the
 * app would then refuse. Nothing in it is secret: addresses, a state, and a pause's end.
 */
import { z } from 'zod';
import type { AccountState, AccountStatus } from '../accounts/accountStatus';
import type { Account } from '../config/account';

export const ALLOWED_SENDERS_BLOB = 'allowed-senders.json';

/** What a device can be told: the app's account states folded into what changes the relay's answer. */
export const PUBLISHED_STATES = ['ready', 'paused', 'needs_reauthorization', 'configuration_error'] as const;
export type PublishedState = (typeof PUBLISHED_STATES)[number];

const publishedAccount = z
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
    accounts: z.record(z.string(), publishedAccount),
  })
  .strict();

export type AllowedSendersDocument = z.infer<typeof allowedSendersSchema>;
export type PublishedAccount = z.infer<typeof publishedAccount>;

/** Degraded and stale accounts still send while their token lasts: for a device they are ready. */
export function publishedState(state: AccountState | undefined): PublishedState {
  switch (state) {
    case 'paused':
      return 'paused';
    case 'reauthorization_required':
    case 'not_authorized':
    case undefined:
      return 'needs_reauthorization';
    case 'configuration_error':
      return 'configuration_error';
    default:
      return 'ready';
  }
}

export function buildAllowedSenders(
  accounts: readonly Account[],
  statuses: readonly AccountStatus[],
  now = new Date(),
): AllowedSendersDocument {
  const byId = new Map(statuses.map((status) => [status.accountId, status]));
  const entries = accounts.map((account): [string, PublishedAccount] => {
    const status = byId.get(account.id);
    // A client-credentials account has no grant to wait for: without a status row it has simply not sent yet.
    const state = !status && account.flow === 'client_credentials' ? 'ready' : publishedState(status?.state);
    const until = state === 'paused' && status?.pausedUntil ? { until: status.pausedUntil } : {};
    return [account.id, { allowedFrom: [...account.allowedFrom], state, ...until }];
  });
  return { version: 1, publishedAt: now.toISOString(), accounts: Object.fromEntries(entries) };
}

/** The document as read from storage; a reason when it is not one. */
export function parseAllowedSenders(text: string): { ok: true; document: AllowedSendersDocument } | { ok: false; reason: string } {
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
