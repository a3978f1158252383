import type { Provider } from '../config';

/**
 * Classifies a failed token endpoint request (code exchange, refresh, client credentials) into what the app
 * should do about it. Decisions come from the OAuth `error` field and, for Microsoft, the numeric AADSTS codes
 * (`error_codes`), never from the wording of `error_description`, which providers change and localize.
 *
 * - `reauthorize`: the grant is gone (expired, revoked, blocked): a person must authorize the mailbox again.
 * - `config`: the client is misconfigured (secret wrong or expired, app missing, consent missing): an admin
 *   must fix the app registration or the settings; authorizing again would not help.
 * - `transient`: the provider is unreachable or overloaded: retry later, no state change, no alert.
 */
export type TokenFailureKind = 'reauthorize' | 'config' | 'transient';

export interface TokenEndpointFailure {
  kind: TokenFailureKind;
  /** The OAuth `error` (e.g. `invalid_grant`), or `network_error`, `timeout`, `http_<status>` without one. */
  code: string;
  /** Microsoft: the AADSTS code that decided, e.g. `AADSTS700082`. */
  providerCode?: string;
  /** A sentence for a person: what happened and what to do. Never contains provider text or secrets. */
  reason: string;
  /** HTTP status of the token endpoint's answer, when there was one. */
  status?: number;
}

export interface ClassifyContext {
  provider?: Provider;
  /** Which request failed; changes the wording for `invalid_grant`. Default `refresh_token`. */
  grant?: 'authorization_code' | 'refresh_token' | 'client_credentials';
  /** When the mailbox was authorized (status row `authorizedAt`): a Google grant dying after ~7 days is a hint. */
  authorizedAt?: string | Date;
  now?: number;
}

interface Rule {
  kind: TokenFailureKind;
  reason: string;
}

const REAUTHORIZE_AGAIN = 'Authorize the mailbox again.';

/** Microsoft Entra ID (AADSTS) codes we know what to do about. */
const MICROSOFT_CODES: Record<number, Rule> = {
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

const OAUTH_ERRORS: Record<string, Rule> = {
  invalid_grant: { kind: 'reauthorize', reason: '' /* wording depends on the grant, see invalidGrantReason */ },
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

const DAY = 24 * 60 * 60 * 1000;

export function classifyTokenEndpointError(error: unknown, context: ClassifyContext = {}): TokenEndpointFailure {
  const found = extract(error);
  if (found.network) {
    return {
      kind: 'transient',
      code: found.network,
      reason:
        found.network === 'timeout'
          ? "The provider's token endpoint did not answer in time. Trying again later."
          : `The provider's token endpoint is unreachable${found.networkDetail ? ` (${found.networkDetail})` : ''}. Trying again later.`,
    };
  }
  const status = found.status;
  const statusPart = status !== undefined ? { status } : {};
  if (!found.error) {
    if (status === 429 || (status !== undefined && status >= 500)) {
      return {
        kind: 'transient',
        code: `http_${status}`,
        reason:
          status === 429
            ? 'The provider is throttling requests. Trying again later.'
            : `The provider answered HTTP ${status}. Trying again later.`,
        ...statusPart,
      };
    }
    return {
      kind: 'transient',
      code: status !== undefined ? `http_${status}` : 'unexpected_response',
      reason: 'The provider gave an answer that is not an OAuth response. Trying again later.',
      ...statusPart,
    };
  }

  const oauthError = found.error;
  const msCode = pickMicrosoftCode(found.codes);
  if (msCode !== undefined) {
    const rule = MICROSOFT_CODES[msCode];
    if (rule) return { kind: rule.kind, code: oauthError, providerCode: `AADSTS${msCode}`, reason: rule.reason, ...statusPart };
  }
  const providerCode = found.codes.length > 0 ? { providerCode: `AADSTS${found.codes.at(-1)}` } : {};
  const rule = OAUTH_ERRORS[oauthError];
  if (oauthError === 'invalid_grant') {
    return { kind: 'reauthorize', code: oauthError, reason: invalidGrantReason(context), ...providerCode, ...statusPart };
  }
  if (rule) return { kind: rule.kind, code: oauthError, reason: rule.reason, ...providerCode, ...statusPart };
  if (status === 429 || (status !== undefined && status >= 500)) {
    return {
      kind: 'transient',
      code: oauthError,
      reason: `The provider answered HTTP ${status}. Trying again later.`,
      ...providerCode,
      ...statusPart,
    };
  }
  return {
    kind: 'config',
    code: oauthError,
    reason:
      'The provider refused the request with an error this app does not know. Check the app registration and the account settings.',
    ...providerCode,
    ...statusPart,
  };
}

/** The short form for the status row and logs, e.g. `invalid_grant AADSTS700082`. */
export function providerErrorLabel(failure: TokenEndpointFailure): string {
  return [failure.code, failure.providerCode].filter(Boolean).join(' ');
}

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

/** The AADSTS code that decides: the first one we know (70002 "error validating credentials" is generic), else none. */
function pickMicrosoftCode(codes: number[]): number | undefined {
  return codes.find((code) => MICROSOFT_CODES[code] !== undefined);
}

interface Extracted {
  error?: string;
  status?: number;
  codes: number[];
  network?: 'network_error' | 'timeout';
  networkDetail?: string;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

function extract(error: unknown, depth = 0): Extracted {
  const none: Extracted = { codes: [] };
  if (error === null || typeof error !== 'object' || depth > 4) return none;
  const e = error as Record<string, unknown>;
  const name = typeof e.name === 'string' ? e.name : '';
  const code = typeof e.code === 'string' ? e.code : undefined;

  if (
    name === 'TimeoutError' ||
    name === 'AbortError' ||
    code === 'OAUTH_TIMEOUT' ||
    code === 'OAUTH_ABORT' ||
    code?.endsWith('_TIMEOUT')
  ) {
    return { codes: [], network: 'timeout' };
  }
  if (code !== undefined && NETWORK_CODES.has(code)) return { codes: [], network: 'network_error', networkDetail: code };

  // openid-client / oauth4webapi: ResponseBodyError { error, status, cause: body }
  if (
    code === 'OAUTH_RESPONSE_BODY_ERROR' ||
    (typeof e.error === 'string' && typeof e.status === 'number' && isRecord(e.cause))
  ) {
    return fromBody(isRecord(e.cause) ? e.cause : e, typeof e.status === 'number' ? e.status : undefined);
  }
  // WWWAuthenticateChallengeError { status, cause: [{ scheme, parameters: { error } }] }
  if (code === 'OAUTH_WWW_AUTHENTICATE_CHALLENGE' && Array.isArray(e.cause)) {
    const challenge = (e.cause as Array<{ parameters?: Record<string, unknown> }>).find(
      (c) => typeof c.parameters?.error === 'string',
    );
    return {
      codes: [],
      ...(challenge ? { error: challenge.parameters!.error as string } : {}),
      ...(typeof e.status === 'number' ? { status: e.status } : {}),
    };
  }
  // Non-JSON or non-conforming answers: the cause is the Response.
  if ((code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || code === 'OAUTH_RESPONSE_IS_NOT_JSON') && isRecord(e.cause)) {
    const status = typeof e.cause.status === 'number' ? e.cause.status : undefined;
    return { codes: [], ...(status !== undefined ? { status } : {}) };
  }
  // fetch() failures: TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } })
  if (error instanceof TypeError && /fetch failed|network/i.test(error.message)) {
    const inner = extract(e.cause, depth + 1);
    return inner.network ? inner : { codes: [], network: 'network_error' };
  }
  // A raw token endpoint body, optionally with the HTTP status.
  if (typeof e.error === 'string') return fromBody(e, typeof e.status === 'number' ? e.status : undefined);
  if (e.cause !== undefined) return extract(e.cause, depth + 1);
  return none;
}

function fromBody(body: Record<string, unknown>, status: number | undefined): Extracted {
  const codes: number[] = [];
  if (Array.isArray(body.error_codes)) {
    for (const c of body.error_codes) if (typeof c === 'number' && Number.isInteger(c)) codes.push(c);
  }
  // Older endpoints and authorization responses carry the code only in the description: read the number, not the words.
  if (codes.length === 0 && typeof body.error_description === 'string') {
    for (const match of body.error_description.matchAll(/\bAADSTS(\d{4,8})\b/g)) codes.push(Number(match[1]));
  }
  return {
    codes,
    ...(typeof body.error === 'string' ? { error: body.error } : {}),
    ...(status !== undefined ? { status } : {}),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** AADSTS codes in an authorization error response's description (Microsoft puts no `error_codes` there). */
export function aadstsCodes(description: string | null | undefined): number[] {
  if (!description) return [];
  return [...description.matchAll(/\bAADSTS(\d{4,8})\b/g)].map((m) => Number(m[1]));
}
