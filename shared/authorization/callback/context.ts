import type * as client from 'openid-client';
import type { Account } from '../../config/account';
import type { CallbackDeps } from '../authorizationContext';
import type { AuthRequestTable, StoredAuthRequest } from '../authRequests';
import type { AuthorizationFailure } from './result';

export interface CallbackInput {
  /** The callback's query parameters, as received. */
  query: URLSearchParams;
  /** Values of the binding cookie sent by this browser (none when it has none). */
  browserSecrets: string[];
}

export type TokenResponse = client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;

/** Who signed in, as the id_token says and the account expects. */
export interface Identity {
  authorizedUser: string;
  authorizedUserId: string;
}

/**
 * What one callback carries from check to check. The checks fill the optional fields in the order of the table
 * in completeAuthorization.ts; a check reads what an earlier one established with `need`.
 */
export interface CallbackContext extends CallbackInput {
  readonly runtime: CallbackDeps;
  /** The `state` parameter (state.ts). */
  state?: string;
  table?: AuthRequestTable;
  /** The stored request the state names (state.ts). */
  request?: StoredAuthRequest;
  /** The binding cookie value that matches the request (browser.ts). */
  browserSecret?: string;
  /** The account the request was started for, unchanged since (account.ts). */
  account?: Account;
  /** The provider's discovered configuration (provider.ts). */
  config?: client.Configuration;
  /** The PKCE verifier, opened with the browser's secret (browser.ts). */
  verifier?: string;
  /** What the token endpoint returned, with a verified id_token (codeExchange.ts). Once set, a refusal revokes it. */
  tokens?: TokenResponse;
  claims?: client.IDToken;
  /** Who signed in (user.ts). */
  identity?: Identity;
}

/** One check: passes (returns nothing, and may record what it established) or ends the flow with a failure. */
export type CallbackCheck = (
  context: CallbackContext,
) => Promise<AuthorizationFailure | undefined> | AuthorizationFailure | undefined;

/** What an earlier check established; a check that runs before it is a programming error. */
export function need<K extends keyof CallbackContext>(context: CallbackContext, key: K): NonNullable<CallbackContext[K]> {
  const value = context[key];
  if (value === undefined || value === null) throw new Error(`A callback check ran before "${String(key)}" was established.`);
  return value as NonNullable<CallbackContext[K]>;
}
