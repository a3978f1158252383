import type { Account, Provider, Transport } from '../config';
import type { AccountState, AccountStatus } from '../accounts/accountStatus';
import { effectiveState } from '../accounts/accountRules';
import { graphConsentMissing } from '../accounts/graphConsent';
import { NO_DELIVERIES, type DeliveryCounts, type DeliveryProblem, type DeliverySummary } from './deliveryCounts';
import { STATE_LABELS, stateSentence, type StateTone } from './stateText';

/**
 * What the admin sees of one account, in the HTML page and in `GET /api/accounts[/{id}]` alike. Built from a
 * whitelist of configuration and status fields: never a secret, a token, a secret name or a client id.
 * Absent values are `null`, so that every key is always there for JSON consumers.
 */
export interface AccountView {
  id: string;
  displayName: string;
  provider: Provider;
  flow: Account['flow'];
  isDefault: boolean;
  /** The authenticating identity (XOAUTH2 `user=`): the mailbox that must sign in. */
  user: string;
  from: string;
  allowedFrom: string[];
  /** client_credentials: the app gets its own token; there is no sign-in and no Authorize link. */
  appOnly: boolean;
  /** How mail leaves: `smtp`, `graph` (Microsoft Graph sendMail) or `auto`. */
  transport: Transport;
  /** "Re-authorize to enable Graph …" when the grant lacks Graph's Mail.Send; else null. */
  graphNotice: string | null;
  /** Transport `auto` after SMTP AUTH was found disabled: since when it sends through Graph, and why. */
  graphSince: { at: string; reason: string } | null;
  status: {
    /** The state to act on: the stored one, or `stale` when the grant has not been proven for over a day. */
    state: AccountState;
    /** As the status table has it. */
    storedState: AccountState;
    label: string;
    tone: StateTone;
    sentence: string;
  };
  authorizedUser: string | null;
  authorizedAt: string | null;
  /** The admin who completed the authorization (with Entra sign-in in front of the app). */
  authorizedBy: string | null;
  tokenExpiresAt: string | null;
  lastRefreshAt: string | null;
  lastRefreshOkAt: string | null;
  lastError: string | null;
  lastErrorCode: string | null;
  providerError: string | null;
  pausedUntil: string | null;
  counts: DeliveryCounts;
  /** The last failed and waiting messages of the last 24 hours, newest first. */
  recentProblems: DeliveryProblem[];
  links: { authorize: string | null; test: string };
}

export function accountView(
  account: Account,
  status: AccountStatus | undefined,
  deliveries: DeliverySummary | undefined,
  publicBaseUrl: string,
  now: number,
): AccountView {
  const storedState = status?.state ?? 'not_authorized';
  const state = effectiveState(status, now);
  const appOnly = account.flow === 'client_credentials';
  const base = `${publicBaseUrl}/api/accounts/${encodeURIComponent(account.id)}`;
  return {
    id: account.id,
    displayName: account.displayName,
    provider: account.provider,
    flow: account.flow,
    isDefault: account.isDefault,
    user: account.user,
    from: account.from,
    allowedFrom: [...account.allowedFrom],
    appOnly,
    transport: account.transport,
    graphNotice: graphConsentMissing(account, status) ?? null,
    graphSince:
      account.transport === 'auto' && status?.graphSince ? { at: status.graphSince, reason: status.graphReason ?? '' } : null,
    status: { state, storedState, ...STATE_LABELS[state], sentence: stateSentence(state, account, status, now) },
    authorizedUser: status?.authorizedUser ?? null,
    authorizedAt: status?.authorizedAt ?? null,
    authorizedBy: status?.authorizedBy ?? null,
    tokenExpiresAt: status?.tokenExpiresAt ?? null,
    lastRefreshAt: status?.lastRefreshAt ?? null,
    lastRefreshOkAt: status?.lastRefreshOkAt ?? null,
    lastError: status?.lastError ?? null,
    lastErrorCode: status?.lastErrorCode ?? null,
    providerError: status?.providerError ?? null,
    pausedUntil: status?.pausedUntil ?? null,
    counts: { ...(deliveries?.counts ?? NO_DELIVERIES) },
    recentProblems: deliveries?.recentProblems ?? [],
    links: { authorize: appOnly ? null : `${base}/authorize`, test: `${base}/test` },
  };
}
