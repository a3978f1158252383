/** What the admin sees per account. Never holds a secret. */
export type AccountState =
  'not_authorized' | 'ready' | 'reauthorization_required' | 'configuration_error' | 'degraded' | 'paused' | 'stale';

export interface AccountStatus {
  accountId: string;
  state: AccountState;
  /** The signed-in identity shown to people (email / preferred_username). */
  authorizedUser?: string;
  /** The stable identity: Microsoft `tid/oid`, Google `sub`. */
  authorizedUserId?: string;
  authorizedAt?: string;
  /** The admin who completed the authorization, when the app sits behind Entra sign-in. */
  authorizedBy?: string;
  scopes?: string;
  tokenExpiresAt?: string;
  lastRefreshAt?: string;
  lastRefreshOkAt?: string;
  lastErrorCode?: string;
  lastError?: string;
  /** The provider's own error, e.g. `invalid_grant AADSTS700082`. */
  providerError?: string;
  consecutiveFailures?: number;
  pausedUntil?: string;
  /**
   * Transport `auto`: when the SMTP server said SMTP AUTH is disabled (5.7.139), and what it said. From then on the
   * account sends through Microsoft Graph, until it is authorized again.
   */
  graphSince?: string;
  graphReason?: string;
  /** The incident an alert was already sent for (one alert per incident). */
  alertedIncident?: string;
  updatedAt?: string;
}

/** The states in which an account's messages wait for an admin (or for a pause to end). */
export type ProblemState = 'reauthorization_required' | 'configuration_error' | 'paused' | 'degraded' | 'stale';

/** A change to the row: `undefined` leaves a field as it is, `null` clears it. */
export type StatusPatchFields = { [K in keyof AccountStatus]?: AccountStatus[K] | null };
