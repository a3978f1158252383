import * as client from 'openid-client';
import type { Account } from '../config/account';
import { findAccount } from '../config/loadAccounts';
import { OutboxError } from '../errors';
import { callbackUrl } from '../web/routes';
import { TABLES } from '../names';
import type { AuthorizationContext } from './authorizationContext';
import { AuthRequestTable, newBrowserSecret } from './authRequests';
import { graphSignInScopes } from '../oauth/graphToken';
import { providerConfiguration } from '../oauth/providerClient';

/** The redirect URI registered with the providers: built from the configured public URL, never from request headers. */
export function redirectUriOf(context: { publicBaseUrl: string }): string {
  return callbackUrl(context.publicBaseUrl);
}

export function authRequestTable(runtime: AuthorizationContext): AuthRequestTable {
  return new AuthRequestTable(runtime.storage.table(TABLES.authRequests));
}

export interface AuthorizationStarted {
  ok: true;
  account: Account;
  /** Where to send the browser. */
  redirectTo: URL;
  /** The value for the binding cookie (the browser's existing one when it had a valid one). */
  browserSecret: string;
  expiresAt: Date;
}

export interface AuthorizationNotStarted {
  ok: false;
  code: 'unknown_account' | 'not_interactive' | 'provider_unavailable' | 'config_error';
  status: number;
  message: string;
  account?: Account;
}

/**
 * Creates a single-use authorization request (state, PKCE S256, nonce, expected issuer) bound to the browser,
 * and returns the provider's authorization URL for the account's scopes.
 */
export async function startAuthorization(
  runtime: AuthorizationContext,
  accountId: string,
  existingBrowserSecret?: string,
  startedBy?: string,
): Promise<AuthorizationStarted | AuthorizationNotStarted> {
  const account = findAccount(runtime.accounts, accountId);
  if (!account) {
    const known = runtime.accounts.map((a) => a.id).join(', ') || 'none is configured';
    return {
      ok: false,
      code: 'unknown_account',
      status: 404,
      message: `There is no account "${accountId}". Known accounts: ${known}.`,
    };
  }
  if (account.flow === 'client_credentials') {
    return {
      ok: false,
      code: 'not_interactive',
      status: 400,
      account,
      message: `Account "${account.id}" sends with an app-only token (client credentials): nobody signs in, the app obtains its tokens directly. Nothing to authorize here.`,
    };
  }

  let config: client.Configuration;
  try {
    config = await providerConfiguration(runtime, account);
  } catch (error) {
    const transient = error instanceof OutboxError && error.code === 'transient';
    const message = error instanceof OutboxError ? error.message : 'The provider could not be reached.';
    runtime.log.warn('oauth.authorize.provider_unavailable', { account: account.id, error });
    return {
      ok: false,
      code: transient ? 'provider_unavailable' : 'config_error',
      status: transient ? 503 : 500,
      account,
      message,
    };
  }

  const state = client.randomState();
  const nonce = client.randomNonce();
  const codeVerifier = client.randomPKCECodeVerifier();
  const redirectUri = redirectUriOf(runtime);
  const browserSecret = existingBrowserSecret ?? newBrowserSecret();
  const issuer = config.serverMetadata().issuer;

  const table = authRequestTable(runtime);
  const { expiresAt } = await table.create(
    {
      state,
      accountId: account.id,
      provider: account.provider,
      issuer,
      nonce,
      codeVerifier,
      redirectUri,
      ...(startedBy ? { startedBy } : {}),
    },
    browserSecret,
  );
  await table.purgeExpired().catch((error: unknown) => runtime.log.warn('oauth.authrequests.purge_failed', { error }));

  const redirectTo = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    response_type: 'code',
    // SMTP's scopes first: Microsoft issues the code's token for the first resource; Graph's comes by refresh.
    scope: [...account.oauth.scopes, ...graphSignInScopes(account)].join(' '),
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    // Preselects the mailbox that must sign in: the most common mistake is an admin's own session being reused.
    login_hint: account.user,
    ...account.oauth.authParams,
  });
  runtime.log.info('oauth.authorize.started', {
    account: account.id,
    provider: account.provider,
    expiresAt: expiresAt.toISOString(),
  });
  return { ok: true, account, redirectTo, browserSecret, expiresAt };
}
