import * as client from 'openid-client';
import type { Account } from '../config/account';
import { findAccount } from '../config/loadAccounts';
import type { CallbackContext as Runtime } from './authorizationContext';
import { browserMatches, openVerifier, type AuthRequestTable, type StoredAuthRequest } from './authRequests';
import { providerConfiguration } from './providerClient';
import { authRequestTable } from './startAuthorization';
import { aadstsCodes, classifyTokenEndpointError, providerErrorLabel, type TokenEndpointFailure } from './tokenEndpointErrors';
import { toTokenSet } from './tokenSet';

/**
 * Finishes an authorization at the callback. Every protocol check is its own step and ends the flow with a
 * typed failure; only a response that passes all of them reaches the token store.
 */
export type AuthorizationFailureCode =
  | 'state_missing'
  | 'state_unknown'
  | 'state_used'
  | 'state_expired'
  | 'browser_mismatch'
  | 'account_changed'
  | 'issuer_mismatch'
  | 'provider_error'
  | 'consent_required'
  | 'code_missing'
  | 'token_exchange_failed'
  | 'id_token_invalid'
  | 'wrong_user'
  | 'no_refresh_token'
  | 'scope_missing'
  | 'storage_failed'
  | 'admin_consent_returned';

export interface AuthorizationFailure {
  ok: false;
  code: AuthorizationFailureCode;
  /** HTTP status of the page. */
  status: number;
  /** What went wrong, for a person. Built from our own words and checked values only. */
  message: string;
  /** What to do next. */
  action: string;
  account?: Account;
  /** The provider's error code(s), e.g. `access_denied AADSTS65004` or `invalid_grant`. */
  providerError?: string;
  /** The provider's error_description: untrusted text, shown escaped, never logged. */
  providerDescription?: string;
  /** Microsoft: where a tenant administrator grants consent for the whole organization. */
  adminConsentUrl?: string;
  tokenFailure?: TokenEndpointFailure;
}

export interface AuthorizationSuccess {
  ok: true;
  account: Account;
  authorizedUser: string;
  authorizedUserId: string;
  authorizedAt: Date;
  scopes: string;
  tokenExpiresAt: Date;
}

export type AuthorizationResult = AuthorizationSuccess | AuthorizationFailure;

export interface CallbackInput {
  /** The callback's query parameters, as received. */
  query: URLSearchParams;
  /** Values of the binding cookie sent by this browser (none when it has none). */
  browserSecrets: string[];
}

const START_AGAIN = 'Start the authorization again from the admin page (or the authorize link you used).';

export async function completeAuthorization(runtime: Runtime, input: CallbackInput): Promise<AuthorizationResult> {
  const result = await runSteps(runtime, input);
  if (result.ok) {
    runtime.log.info('oauth.callback.authorized', {
      account: result.account.id,
      authorizedUser: result.authorizedUser,
      scopes: result.scopes,
      tokenExpiresAt: result.tokenExpiresAt.toISOString(),
    });
  } else {
    runtime.log.warn('oauth.callback.refused', {
      reason: result.code,
      ...(result.account ? { account: result.account.id } : {}),
      ...(result.providerError ? { providerError: result.providerError } : {}),
      ...(result.tokenFailure ? { tokenFailureKind: result.tokenFailure.kind } : {}),
    });
  }
  return result;
}

async function runSteps(runtime: Runtime, { query, browserSecrets }: CallbackInput): Promise<AuthorizationResult> {
  const state = checkStatePresent(query);
  if (typeof state !== 'string') return state;

  const table = authRequestTable(runtime);
  const found = await checkStateKnown(table, state);
  if (!found.ok) return found.failure;
  const request = found.request;

  const reuse = checkStateUnused(request) ?? checkStateUnexpired(table, request);
  if (reuse) return reuse;

  const browser = checkSameBrowser(request, browserSecrets);
  if (!browser.ok) return browser.failure;

  const account = checkAccountUnchanged(runtime, request);
  if (!account.ok) return account.failure;

  // From here on the request is consumed, whatever the outcome: a response is never processed twice.
  if (!(await table.markUsed(request))) return stateUsed();

  const config = await providerConfiguration(runtime, account.account).catch((error: unknown) => error as Error);
  if (config instanceof Error) {
    return {
      ok: false,
      code: 'token_exchange_failed',
      status: 502,
      account: account.account,
      message: `The provider could not be reached to finish the authorization: ${config.message}`,
      action: `Try again in a moment: ${START_AGAIN}`,
    };
  }

  const issuer = checkIssuer(query, request, config, account.account);
  if (issuer) return issuer;

  const providerError = checkProviderError(query, account.account);
  if (providerError) return providerError;

  if (!query.get('code')) {
    return failure('code_missing', 400, account.account, 'The provider sent no authorization code.', START_AGAIN);
  }

  const verifier = openVerifier(request, browser.secret);
  if (verifier === undefined) return browserMismatch(account.account, true);

  const exchanged = await exchangeCode(runtime, config, account.account, request, state, verifier, query);
  if (!exchanged.ok) return exchanged.failure;
  const { response, claims } = exchanged;

  const identity = identifyUser(account.account, claims);
  if (!identity.ok) {
    await revokeQuietly(runtime, config, response);
    return identity.failure;
  }

  const usable = checkRefreshToken(account.account, response) ?? checkScopes(account.account, response);
  if (usable) {
    await revokeQuietly(runtime, config, response);
    return usable;
  }

  return storeAuthorization(runtime, account.account, response, identity);
}

// --- the steps ---------------------------------------------------------------------------------------------

function checkStatePresent(query: URLSearchParams): string | AuthorizationFailure {
  const state = query.get('state');
  if (state) return state;
  if (query.has('admin_consent')) {
    const granted = query.get('admin_consent')?.toLowerCase() === 'true';
    return {
      ok: false,
      code: 'admin_consent_returned',
      status: granted ? 200 : 400,
      message: granted ? 'The tenant administrator granted consent for the app.' : 'The administrator consent was not granted.',
      action: granted
        ? `Now authorize the mailbox: ${START_AGAIN}`
        : 'Ask a tenant administrator to grant consent, then authorize the mailbox.',
      ...providerErrorFields(query),
    };
  }
  return failure(
    'state_missing',
    400,
    undefined,
    'This request has no state parameter, so it cannot belong to an authorization started here.',
    START_AGAIN,
  );
}

async function checkStateKnown(
  table: AuthRequestTable,
  state: string,
): Promise<{ ok: true; request: StoredAuthRequest } | { ok: false; failure: AuthorizationFailure }> {
  const request = state.length <= 512 ? await table.find(state) : undefined;
  if (request) return { ok: true, request };
  return {
    ok: false,
    failure: failure(
      'state_unknown',
      400,
      undefined,
      'This link does not belong to any authorization started here (unknown state). It may have been altered, or it expired long ago and was removed.',
      START_AGAIN,
    ),
  };
}

function checkStateUnused(request: StoredAuthRequest): AuthorizationFailure | undefined {
  return request.usedAt ? stateUsed() : undefined;
}

function stateUsed(): AuthorizationFailure {
  return failure(
    'state_used',
    400,
    undefined,
    'This authorization response was already used. Each one works only once (reloading this page or using the back button sends it again).',
    'If the mailbox is not shown as ready on the admin page, start the authorization again.',
  );
}

function checkStateUnexpired(table: AuthRequestTable, request: StoredAuthRequest): AuthorizationFailure | undefined {
  if (!table.isExpired(request)) return undefined;
  return failure(
    'state_expired',
    400,
    undefined,
    'This authorization took too long: it must be finished within 10 minutes of starting it.',
    START_AGAIN,
  );
}

function checkSameBrowser(
  request: StoredAuthRequest,
  browserSecrets: string[],
): { ok: true; secret: string } | { ok: false; failure: AuthorizationFailure } {
  const secret = browserSecrets.find((candidate) => browserMatches(request, candidate));
  if (secret) return { ok: true, secret };
  return { ok: false, failure: browserMismatch(undefined, browserSecrets.length > 0) };
}

function browserMismatch(account: Account | undefined, hadCookie: boolean): AuthorizationFailure {
  return failure(
    'browser_mismatch',
    403,
    account,
    hadCookie
      ? 'This authorization was started in another browser (or another browser profile). It can only be finished in the browser that started it.'
      : 'This browser did not start this authorization (it has no authorization cookie from this app). It can only be finished in the browser that started it; cookies must be allowed for this site.',
    `${START_AGAIN} Open the authorize link and finish the sign-in in the same browser window.`,
  );
}

function checkAccountUnchanged(
  runtime: Runtime,
  request: StoredAuthRequest,
): { ok: true; account: Account } | { ok: false; failure: AuthorizationFailure } {
  const account = findAccount(runtime.accounts, request.accountId);
  if (account && account.provider === request.provider && account.flow === 'authorization_code') return { ok: true, account };
  return {
    ok: false,
    failure: failure(
      'account_changed',
      409,
      account,
      `The account "${request.accountId}" was removed or its provider changed since this authorization started.`,
      START_AGAIN,
    ),
  };
}

/** RFC 9207: the response must come from the provider we sent the admin to (defeats mix-up attacks). */
function checkIssuer(
  query: URLSearchParams,
  request: StoredAuthRequest,
  config: client.Configuration,
  account: Account,
): AuthorizationFailure | undefined {
  const metadata = config.serverMetadata();
  const iss = query.get('iss');
  const expected = request.issuer;
  if (metadata.issuer !== expected) {
    return failure(
      'issuer_mismatch',
      400,
      account,
      `The account's provider changed since this authorization started (expected issuer ${expected}, now ${metadata.issuer}).`,
      START_AGAIN,
    );
  }
  if (iss === null) {
    if (metadata.authorization_response_iss_parameter_supported === true) {
      return failure(
        'issuer_mismatch',
        400,
        account,
        `The response does not name its issuer, but the provider ${expected} always does. It did not come from that provider.`,
        START_AGAIN,
      );
    }
    return undefined;
  }
  if (iss !== expected) {
    return failure(
      'issuer_mismatch',
      400,
      account,
      `The response names another issuer than the provider this authorization was sent to (expected ${expected}). It was refused: it may be a mix-up attack.`,
      START_AGAIN,
    );
  }
  return undefined;
}

function checkProviderError(query: URLSearchParams, account: Account): AuthorizationFailure | undefined {
  const error = query.get('error');
  if (error === null) return undefined;
  const codes = aadstsCodes(query.get('error_description'));
  const fields = providerErrorFields(query);
  const consent =
    error === 'consent_required' || codes.some((code) => code === 65001 || code === 90094 || code === 90095 || code === 90008);
  if (consent) {
    const adminConsentUrl =
      account.provider === 'microsoft' && account.tenantId
        ? `https://login.microsoftonline.com/${encodeURIComponent(account.tenantId)}/adminconsent?client_id=${encodeURIComponent(account.clientId)}`
        : undefined;
    return {
      ok: false,
      code: 'consent_required',
      status: 403,
      account,
      message:
        'The app needs consent for the permission to send mail, and this user may not give it: the organization requires an administrator to approve the app.',
      action: adminConsentUrl
        ? 'Ask a tenant administrator to open the admin consent link below and accept, then start the authorization again.'
        : 'Ask an administrator of the provider to approve the app for the organization, then start the authorization again.',
      ...fields,
      ...(adminConsentUrl ? { adminConsentUrl } : {}),
    };
  }
  const explanations: Record<string, [string, string]> = {
    access_denied: [
      'The sign-in was cancelled, or the permission to send mail was not granted.',
      `${START_AGAIN} Sign in as ${account.user} and accept the requested permissions.`,
    ],
    interaction_required: ['The provider needs the user to interact with the sign-in page.', START_AGAIN],
    login_required: ['The provider needs the user to sign in.', START_AGAIN],
    temporarily_unavailable: ['The provider is temporarily unavailable.', `Wait a moment, then: ${START_AGAIN}`],
    server_error: ['The provider had an internal error.', `Wait a moment, then: ${START_AGAIN}`],
    admin_policy_enforced: [
      'A Google Workspace policy blocks this app.',
      'Ask the Workspace administrator to trust the app (Security > API controls), then start again.',
    ],
    org_internal: [
      'The OAuth app is limited to users of its own organization.',
      `Sign in with an account of that organization (${account.user}).`,
    ],
  };
  const [message, action] = explanations[error] ?? [
    'The provider refused the authorization request.',
    'Check the app registration (redirect URI, permissions, client ID) and the account settings, then start again.',
  ];
  return { ok: false, code: 'provider_error', status: 400, account, message, action, ...fields };
}

function providerErrorFields(query: URLSearchParams): Pick<AuthorizationFailure, 'providerError' | 'providerDescription'> {
  const error = query.get('error');
  const description = query.get('error_description');
  const codes = aadstsCodes(description).map((code) => `AADSTS${code}`);
  return {
    ...(error ? { providerError: [clip(error, 64), ...codes].join(' ') } : {}),
    ...(description ? { providerDescription: clip(description, 600) } : {}),
  };
}

type Exchanged =
  | { ok: true; response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers; claims: client.IDToken }
  | { ok: false; failure: AuthorizationFailure };

async function exchangeCode(
  runtime: Runtime,
  config: client.Configuration,
  account: Account,
  request: StoredAuthRequest,
  state: string,
  verifier: string,
  query: URLSearchParams,
): Promise<Exchanged> {
  // The URL the provider redirected to, rebuilt from the stored redirect URI: openid-client derives the
  // redirect_uri it sends to the token endpoint from it, so the Host header plays no part.
  const currentUrl = new URL(request.redirectUri);
  for (const [key, value] of query) currentUrl.searchParams.append(key, value);
  try {
    const response = await client.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
    const claims = response.claims();
    if (!claims)
      return { ok: false, failure: failure('id_token_invalid', 502, account, 'The provider returned no id_token.', START_AGAIN) };
    return { ok: true, response, claims };
  } catch (error) {
    const problem = idTokenProblem(error);
    if (problem) {
      runtime.log.warn('oauth.callback.id_token_rejected', { account: account.id, problem });
      return {
        ok: false,
        failure: failure(
          'id_token_invalid',
          502,
          account,
          `The identity token from the provider was refused: ${problem}. Nothing was stored.`,
          START_AGAIN,
        ),
      };
    }
    const classified = classifyTokenEndpointError(error, { provider: account.provider, grant: 'authorization_code' });
    return { ok: false, failure: tokenExchangeFailure(account, classified) };
  }
}

function tokenExchangeFailure(account: Account, classified: TokenEndpointFailure): AuthorizationFailure {
  let message: string;
  let action: string;
  if (classified.kind === 'transient') {
    message = `The provider's token endpoint could not be reached or failed. ${classified.reason.replace(/ Trying again later\.$/, '')}`;
    action = `Nothing was stored. Try again in a moment: ${START_AGAIN}`;
  } else if (classified.kind === 'config') {
    message = classified.reason;
    action = `Fix the client credential or app registration of account "${account.id}" (${describeClientAuth(account)}), then start the authorization again.`;
  } else {
    message = classified.reason;
    action = START_AGAIN;
  }
  return {
    ok: false,
    code: 'token_exchange_failed',
    status: 502,
    account,
    message,
    action,
    providerError: providerErrorLabel(classified),
    tokenFailure: classified,
  };
}

function describeClientAuth(account: Account): string {
  const auth = account.clientAuth;
  switch (auth.type) {
    case 'secret':
      return `client secret in Key Vault secret "${auth.secretName}"; Microsoft: AADSTS7000215 means a wrong value (use the secret's Value, not its ID), AADSTS7000222 an expired secret`;
    case 'certificate':
      return `certificate key in Key Vault secret "${auth.keySecretName}", thumbprint ${auth.thumbprint}`;
    case 'managed_identity':
      return 'managed identity as federated credential: check the federated identity credential on the app registration';
    case 'none':
      return 'public client';
  }
}

const ID_TOKEN_CODES = new Set([
  'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
  'OAUTH_JWT_TIMESTAMP_CHECK_FAILED',
  'OAUTH_KEY_SELECTION_FAILED',
  'OAUTH_INVALID_RESPONSE',
  'OAUTH_UNSUPPORTED_OPERATION',
  'OAUTH_PARSE_ERROR',
]);

/** A short description of why openid-client refused the id_token, or undefined when the failure was elsewhere. */
function idTokenProblem(error: unknown): string | undefined {
  if (!(error instanceof client.ClientError) || !error.code || !ID_TOKEN_CODES.has(error.code)) return undefined;
  const cause = (error.cause ?? {}) as { claim?: unknown; cause?: { claim?: unknown }; message?: unknown };
  const claim =
    typeof cause.claim === 'string' ? cause.claim : typeof cause.cause?.claim === 'string' ? cause.cause.claim : undefined;
  const inner = typeof cause.message === 'string' ? cause.message : error.message;
  switch (claim) {
    case 'nonce':
      return 'its nonce does not match this authorization request (the code was obtained for another request)';
    case 'aud':
    case 'azp':
      return 'it was issued for another application (audience mismatch)';
    case 'iss':
      return 'it was issued by another provider (issuer mismatch)';
  }
  if (error.code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED') return 'it has expired or is not yet valid';
  if (/signature/i.test(inner)) return 'its signature is not valid';
  if (error.code === 'OAUTH_KEY_SELECTION_FAILED') return 'it is signed with a key the provider does not publish';
  return `it is not a valid id_token (${error.code})`;
}

interface Identity {
  ok: true;
  authorizedUser: string;
  authorizedUserId: string;
}

/**
 * Who signed in. Microsoft: tenant + object ID (stable) and preferred_username / email (shown and compared);
 * Google and others: sub, and email. The comparison with the configured user catches the common mistake of
 * consenting with the wrong account (e.g. the admin's own); the SMTP server makes the final decision anyway.
 */
function identifyUser(account: Account, claims: client.IDToken): Identity | { ok: false; failure: AuthorizationFailure } {
  const text = (name: string) => (typeof claims[name] === 'string' && claims[name] !== '' ? (claims[name] as string) : undefined);
  const email = claims.email_verified === false ? undefined : text('email');
  const names = [text('preferred_username'), email, text('upn')].filter((v): v is string => v !== undefined);
  const shown = names[0] ?? claims.sub;
  let userId = claims.sub;
  if (account.provider === 'microsoft') {
    const tid = text('tid');
    const oid = text('oid');
    if (!tid || !oid) {
      return {
        ok: false,
        failure: failure('id_token_invalid', 502, account, 'The id_token lacks the tid and oid claims.', START_AGAIN),
      };
    }
    if (account.tenantId && tid.toLowerCase() !== account.tenantId.toLowerCase()) {
      return {
        ok: false,
        failure: wrongUser(account, `${shown} (from another tenant, ${tid})`),
      };
    }
    userId = `${tid}/${oid}`;
  }
  const expected = account.user.toLowerCase();
  if (!names.some((name) => name.toLowerCase() === expected)) return { ok: false, failure: wrongUser(account, shown) };
  return { ok: true, authorizedUser: names.find((n) => n.toLowerCase() === expected) ?? shown, authorizedUserId: userId };
}

function wrongUser(account: Account, signedIn: string): AuthorizationFailure {
  return failure(
    'wrong_user',
    403,
    account,
    `You signed in as ${signedIn}, but account "${account.id}" must be authorized by ${account.user}. Nothing was stored.`,
    `Start the authorization again and sign in as ${account.user}. If the provider signs you in automatically, sign out first or use a private window.`,
  );
}

function checkRefreshToken(account: Account, response: client.TokenEndpointResponse): AuthorizationFailure | undefined {
  if (typeof response.refresh_token === 'string' && response.refresh_token !== '') return undefined;
  const hint =
    account.provider === 'google'
      ? "Google returns a refresh token only with access_type=offline and prompt=consent (this app sends both). Remove the app's access at https://myaccount.google.com/permissions, then start again."
      : account.provider === 'microsoft'
        ? 'Microsoft returns one only for the offline_access scope; check that the app registration does not block it.'
        : 'Check that the provider issues refresh tokens to this client (offline_access scope, refresh_token grant allowed).';
  return failure(
    'no_refresh_token',
    502,
    account,
    'The provider returned no refresh token, so the app could not keep sending after the first hour. Nothing was stored and the account is not ready.',
    hint,
  );
}

const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access', 'address', 'phone']);

/** The mail scope must have been granted: Google's consent screen lets the user untick it. */
function checkScopes(account: Account, response: client.TokenEndpointResponse): AuthorizationFailure | undefined {
  if (typeof response.scope !== 'string' || response.scope.trim() === '') return undefined; // RFC 6749 5.1: as requested
  const granted = new Set(response.scope.split(/\s+/).map((s) => s.toLowerCase()));
  const missing = account.oauth.scopes.filter(
    (scope) => !OIDC_SCOPES.has(scope.toLowerCase()) && !granted.has(scope.toLowerCase()),
  );
  if (missing.length === 0) return undefined;
  return failure(
    'scope_missing',
    403,
    account,
    `The permission to send mail was not granted (missing: ${missing.join(', ')}). Nothing was stored.`,
    `${START_AGAIN} On the consent page, leave every requested permission ticked.`,
  );
}

async function storeAuthorization(
  runtime: Runtime,
  account: Account,
  response: client.TokenEndpointResponse,
  identity: Identity,
): Promise<AuthorizationResult> {
  const authorizedAt = new Date();
  const tokens = toTokenSet(response, authorizedAt.getTime());
  const scopes = tokens.scope ?? account.oauth.scopes.join(' ');
  try {
    // Under the refresh lease: a refresh of the old grant finishing now would overwrite the new tokens.
    const stored = await runtime.refreshLease.withLease(account.id, 30_000, async () => {
      await runtime.tokenStore.save(account.id, tokens);
      await runtime.accountStates.markAuthorized(account, {
        authorizedUser: identity.authorizedUser,
        authorizedUserId: identity.authorizedUserId,
        scopes,
        tokenExpiresAt: tokens.expiresAt,
        at: authorizedAt,
      });
      return true;
    });
    if (!stored) throw new Error('the refresh lease of the account stayed busy for 30 s');
  } catch (error) {
    runtime.log.error('oauth.callback.store_failed', { account: account.id, error });
    return failure(
      'storage_failed',
      500,
      account,
      'The sign-in worked, but the tokens could not be saved (Key Vault or table storage failed).',
      `Check the app's access to Key Vault and storage, then: ${START_AGAIN}`,
    );
  }
  return {
    ok: true,
    account,
    authorizedUser: identity.authorizedUser,
    authorizedUserId: identity.authorizedUserId,
    authorizedAt,
    scopes,
    tokenExpiresAt: new Date(tokens.expiresAt),
  };
}

/** Tokens we refuse to keep are revoked where the provider offers revocation (Google, most OIDC servers). */
async function revokeQuietly(
  runtime: Runtime,
  config: client.Configuration,
  response: client.TokenEndpointResponse,
): Promise<void> {
  if (!config.serverMetadata().revocation_endpoint) return;
  const token = response.refresh_token ?? response.access_token;
  await client
    .tokenRevocation(config, token)
    .catch((error: unknown) => runtime.log.warn('oauth.callback.revoke_failed', { error }));
}

function failure(
  code: AuthorizationFailureCode,
  status: number,
  account: Account | undefined,
  message: string,
  action: string,
): AuthorizationFailure {
  return { ok: false, code, status, message, action, ...(account ? { account } : {}) };
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
