import type { Provider } from '../config/presets';

/** What the app does about a failed token request (see classifyTokenEndpointError). */
export type TokenFailureKind = 'reauthorize' | 'config' | 'transient';

export interface ClassifyContext {
  provider?: Provider;
  /** Which request failed; changes the wording for `invalid_grant`. Default `refresh_token`. */
  grant?: 'authorization_code' | 'refresh_token' | 'client_credentials';
  /** When the mailbox was authorized (status row `authorizedAt`): a Google grant dying after ~7 days is a hint. */
  authorizedAt?: string | Date;
  now?: number;
}

/**
 * What the app does about each error a token endpoint can send: the tables `classifyTokenEndpointError` decides
 * from. Keys are the OAuth `error` value and, for Microsoft, the numeric AADSTS code, never the wording of
 * `error_description`. Reasons are our own sentences for a person: no provider text, no secrets.
 */
export interface Rule {
  kind: TokenFailureKind;
  /** A sentence, or one built from the context when the wording depends on the request (`invalid_grant`). */
  reason: string | ((context: ClassifyContext) => string);
}

const REAUTHORIZE_AGAIN = 'Authorize the mailbox again.';

/** Microsoft Entra ID (AADSTS) codes we know what to do about. They decide before the OAuth `error`. */
export const MICROSOFT_CODES: Readonly<Record<number, Rule>> = {
  700082: {
    kind: 'reauthorize',
    reason: `The refresh token expired because it was not used for 90 days. ${REAUTHORIZE_AGAIN}`,
  },
  70043: {
    kind: 'reauthorize',
    reason: `A Conditional Access sign-in frequency policy ended the session. ${REAUTHORIZE_AGAIN} To avoid this, ask the Entra administrator to exclude this app or the mailbox from the sign-in frequency policy.`,
  },
  50076: {
    kind: 'reauthorize',
    reason: `Conditional Access now requires multi-factor authentication for this mailbox. ${REAUTHORIZE_AGAIN} Complete MFA when asked.`,
  },
  50079: {
    kind: 'reauthorize',
    reason: `The mailbox user must register for multi-factor authentication. Register, then authorize the mailbox again.`,
  },
  53003: {
    kind: 'reauthorize',
    reason: `A Conditional Access policy blocked the sign-in. Ask the Entra administrator to allow this app (location, device or client app conditions), then authorize the mailbox again.`,
  },
  50173: {
    kind: 'reauthorize',
    reason: `The grant was revoked: the password was changed or the user's sessions were revoked. ${REAUTHORIZE_AGAIN}`,
  },
  50133: {
    kind: 'reauthorize',
    reason: `The session is no longer valid because the password expired or was changed. ${REAUTHORIZE_AGAIN}`,
  },
  50055: { kind: 'reauthorize', reason: `The mailbox user's password has expired. Change it, then authorize the mailbox again.` },
  50057: { kind: 'reauthorize', reason: `The mailbox user's account is disabled. Enable it, then authorize the mailbox again.` },
  50053: { kind: 'reauthorize', reason: `The mailbox user's account is locked. Unlock it, then authorize the mailbox again.` },
  50034: { kind: 'reauthorize', reason: `The mailbox user no longer exists in the directory. Check the account's user setting.` },
  54005: { kind: 'reauthorize', reason: 'The authorization code was already used. Start the authorization again.' },
  70008: {
    kind: 'reauthorize',
    reason: `The authorization code or refresh token has expired. ${REAUTHORIZE_AGAIN}`,
  },
  70000: {
    kind: 'reauthorize',
    reason: `The grant is no longer valid (revoked or issued for something else). ${REAUTHORIZE_AGAIN}`,
  },
  7000215: {
    kind: 'config',
    reason: "The client secret is wrong. Store the secret's Value (not its Secret ID) from the app registration in Key Vault.",
  },
  7000222: {
    kind: 'config',
    reason:
      'The client secret has expired. Create a new one in the app registration and store it in Key Vault, or better, switch to the managed identity (federated credential) or a certificate.',
  },
  7000218: { kind: 'config', reason: "The request carried no client credential. Check the account's clientAuth setting." },
  700016: {
    kind: 'config',
    reason:
      'The application (client ID) was not found in the tenant. Check clientId and tenantId; the app registration may have been deleted.',
  },
  65001: {
    kind: 'config',
    reason: 'The app lacks consent for the requested permissions. A tenant administrator must grant admin consent.',
  },
  90094: { kind: 'config', reason: 'The app needs admin consent. A tenant administrator must grant it.' },
  700027: {
    kind: 'config',
    reason:
      'The client assertion signature could not be verified: the certificate is not registered with the app, or the thumbprint is wrong.',
  },
  700024: { kind: 'config', reason: 'The client assertion is outside its validity window. Check the server clock.' },
  70021: {
    kind: 'config',
    reason:
      "No federated identity credential on the app registration matches the managed identity. Add one with issuer https://login.microsoftonline.com/<tenant>/v2.0, the identity's object ID as subject and audience api://AzureADTokenExchange.",
  },
  700211: { kind: 'config', reason: "The federated identity credential's issuer does not match the managed identity token." },
  700212: {
    kind: 'config',
    reason: "The federated identity credential's audience does not match (expected api://AzureADTokenExchange).",
  },
  700213: {
    kind: 'config',
    reason: "The federated identity credential's subject does not match the managed identity's object ID.",
  },
  500011: {
    kind: 'config',
    reason:
      'The resource named by the scope was not found in the tenant. Check the scopes (SMTP needs https://outlook.office.com/SMTP.Send, or https://outlook.office365.com/.default app-only).',
  },
  70011: { kind: 'config', reason: "The requested scope is invalid for this app. Check the account's scopes." },
  90002: { kind: 'config', reason: 'The tenant was not found. Check tenantId.' },
  50011: { kind: 'config', reason: 'The redirect URI is not registered with the app. Register the exact callback URL.' },
};

const DAY = 24 * 60 * 60 * 1000;

function invalidGrantReason(context: ClassifyContext): string {
  if (context.grant === 'authorization_code') {
    return 'The authorization code was refused: it was already used, has expired, or does not match this request. Start the authorization again.';
  }
  let reason = `The provider refused the refresh token: it expired or was revoked. ${REAUTHORIZE_AGAIN}`;
  if (context.provider === 'google' && context.authorizedAt !== undefined) {
    const age = (context.now ?? Date.now()) - new Date(context.authorizedAt).getTime();
    if (age >= 6 * DAY && age <= 8 * DAY) {
      reason +=
        ' The grant died about 7 days after consent: Google does this when the OAuth app\'s publishing status is "Testing". Publish the app ("In production") or use the Internal user type on Workspace, then authorize again.';
    }
  }
  return reason;
}

/** The OAuth `error` values (RFC 6749 5.2 and the providers' own) we know what to do about. */
export const OAUTH_ERRORS: Readonly<Record<string, Rule>> = {
  invalid_grant: { kind: 'reauthorize', reason: invalidGrantReason },
  interaction_required: { kind: 'reauthorize', reason: `The provider requires the user to sign in again. ${REAUTHORIZE_AGAIN}` },
  login_required: { kind: 'reauthorize', reason: `The provider requires the user to sign in again. ${REAUTHORIZE_AGAIN}` },
  invalid_client: {
    kind: 'config',
    reason:
      'The provider did not accept the client credentials: the client secret is wrong or expired, or the certificate or federated credential is not registered.',
  },
  unauthorized_client: {
    kind: 'config',
    reason: 'The app is not allowed to use this grant type, or it does not exist in this tenant. Check the app registration.',
  },
  deleted_client: {
    kind: 'config',
    reason: 'The OAuth client was deleted at the provider. Create a new one and update clientId.',
  },
  unsupported_grant_type: { kind: 'config', reason: 'The provider does not support this grant type for the app.' },
  invalid_scope: {
    kind: 'config',
    reason: "The provider refused the requested scopes. Check the account's scopes and the app's API permissions.",
  },
  invalid_request: { kind: 'config', reason: "The provider refused the request as malformed. Check the account's settings." },
  consent_required: {
    kind: 'config',
    reason: 'The app lacks consent for the requested permissions. An administrator must grant it.',
  },
  access_denied: { kind: 'config', reason: 'The provider denied access to the app. An administrator must allow it.' },
  admin_policy_enforced: {
    kind: 'config',
    reason: 'An administrator policy blocks this app. The Google Workspace admin must trust it.',
  },
  org_internal: { kind: 'config', reason: 'The OAuth app is limited to users of its own organization.' },
  temporarily_unavailable: { kind: 'transient', reason: 'The provider is temporarily unavailable. Trying again later.' },
  server_error: { kind: 'transient', reason: 'The provider had an internal error. Trying again later.' },
  slow_down: { kind: 'transient', reason: 'The provider asked us to slow down. Trying again later.' },
};

/** When no rule above applies: what the transport or the HTTP status says. */
export const FALLBACK_REASONS = {
  timeout: "The provider's token endpoint did not answer in time. Trying again later.",
  unreachable: (detail: string | undefined) =>
    `The provider's token endpoint is unreachable${detail ? ` (${detail})` : ''}. Trying again later.`,
  throttled: 'The provider is throttling requests. Trying again later.',
  serverTrouble: (status: number) => `The provider answered HTTP ${status}. Trying again later.`,
  notOAuth: 'The provider gave an answer that is not an OAuth response. Trying again later.',
  unknownError:
    'The provider refused the request with an error this app does not know. Check the app registration and the account settings.',
} as const;

/** 429 and 5xx: the provider is overloaded or failing, whatever the body says; trying later may work. */
export function isServerTrouble(status: number | undefined): status is number {
  return status === 429 || (status !== undefined && status >= 500);
}
