import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import type { Account } from '../config/account';
import { AccountError } from '../errors';
import { graphTokenProblem, graphTokenScopes, type TokenAudience } from './graphToken';
import { providerConfiguration, type OAuthContext } from './providerClient';
import { accessTokenExpiry } from './tokenSet';

/**
 * App-only accounts (flow `client_credentials`, Microsoft SMTP.SendAsApp): no person signs in; the app asks the
 * token endpoint directly. Token endpoint failures are thrown as openid-client raised them: classify them with
 * `classifyTokenEndpointError(error, { grant: 'client_credentials' })`.
 */
export interface AppOnlyToken {
  accessToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  scope?: string;
}

/**
 * Obtains an app-only token and checks its audience, and its roles if it has any, before use: for SMTP
 * (`checkAppOnlyToken`), or with `audience: 'graph'` for Microsoft Graph (`https://graph.microsoft.com/.default`,
 * `graphTokenProblem`), each in a token request of its own.
 */
export async function fetchAppOnlyToken(
  context: OAuthContext,
  account: Account,
  audience: TokenAudience = 'smtp',
): Promise<AppOnlyToken> {
  if (account.flow !== 'client_credentials') {
    throw new AccountError(
      'config_error',
      `Account "${account.id}" uses flow ${account.flow}; app-only tokens need flow client_credentials.`,
    );
  }
  const graph = audience === 'graph' ? account.graph : undefined;
  if (audience === 'graph' && !graph)
    throw new AccountError(
      'config_error',
      `Account "${account.id}" (provider ${account.provider}) has no Microsoft Graph transport.`,
    );
  const scopes = graph ? graphTokenScopes(account, graph) : account.oauth.scopes;
  const config = await providerConfiguration(context, account);
  const response = await client.clientCredentialsGrant(config, { scope: scopes.join(' ') });
  if (graph) {
    const problem = graphTokenProblem(account, { accessToken: response.access_token });
    if (problem) throw new AccountError('config_error', problem);
  } else checkAppOnlyToken(account, response.access_token);
  return {
    accessToken: response.access_token,
    expiresAt: accessTokenExpiry(response),
    ...(typeof response.scope === 'string' && response.scope !== '' ? { scope: response.scope } : {}),
  };
}

const GRAPH_AUDIENCES = new Set(['https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000']);

/**
 * Exchange accepts an app-only token for SMTP only with audience https://outlook.office365.com, from an app that
 * may send for the mailbox. Two setups give it that right:
 * - Exchange App RBAC (Microsoft's advice since October 2025): no API permission in Entra; a management role
 *   assignment 'Application SMTP.SendAsApp' for the app in Exchange. Its tokens carry no `roles` claim.
 * - The Entra application permission SMTP.SendAsApp with admin consent: the token's `roles` list it.
 * Anything else ends in `535 5.7.3` with no explanation. The token is decoded, not verified: this is a diagnosis
 * before connecting, the SMTP server does the verification.
 * Throws AccountError('config_error') naming the failed check and the fix: a wrong audience, or a `roles` claim
 * without the role (application permissions of the API, but not this one). Returns when the token looks right, when
 * it has no `roles` claim (App RBAC), or when the account sets no expectation (`account.oauth.appOnlyToken`).
 */
export function checkAppOnlyToken(account: Account, accessToken: string): void {
  const expected = account.oauth.appOnlyToken;
  if (!expected) return;
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(accessToken);
  } catch {
    throw new AccountError(
      'config_error',
      `Account "${account.id}": the app-only token is not a JWT, so its audience cannot be checked. Expected a token for ${expected.audience}.`,
    );
  }
  const audiences = (Array.isArray(claims.aud) ? claims.aud : [claims.aud]).filter((a): a is string => typeof a === 'string');
  const normalize = (value: string) => value.replace(/\/+$/, '').toLowerCase();
  if (!audiences.some((aud) => normalize(aud) === normalize(expected.audience))) {
    const got = audiences.join(', ') || '(none)';
    const graph = audiences.some((aud) => GRAPH_AUDIENCES.has(normalize(aud)));
    throw new AccountError(
      'config_error',
      `Account "${account.id}": the app-only token has audience ${got}, but SMTP needs ${expected.audience}.` +
        (graph
          ? ' It is a Microsoft Graph token: request the scope https://outlook.office365.com/.default, not a Graph scope.'
          : ` Request the scope ${expected.audience}/.default.`),
    );
  }
  // No roles claim: the app holds no application permission of this API, as with Exchange App RBAC, where Exchange
  // itself decides. The SMTP server answers for it; appOnlyRefusalHint explains a refusal.
  if (claims.roles === undefined) return;
  const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
  if (!roles.includes(expected.role)) {
    throw new AccountError(
      'config_error',
      `Account "${account.id}": the app-only token has no ${expected.role} role (roles: ${roles.join(', ') || 'none'}), ` +
        'so the app registration holds application permissions of this API, but not that one. Use one of the two setups: ' +
        `either add the application permission ${expected.role} (API "Office 365 Exchange Online") and grant admin consent, ` +
        'then register the app in Exchange (New-ServicePrincipal -AppId <client id> -ObjectId <enterprise application object id>) ' +
        'and give it rights on the mailbox (Add-MailboxPermission -AccessRights FullAccess); ' +
        `or, as Microsoft now advises, Exchange App RBAC: New-ManagementRoleAssignment -Role 'Application ${expected.role}' ` +
        '-App <client id> -CustomResourceScope <scope that holds the mailbox>, whose tokens carry no roles claim.',
    );
  }
}

/**
 * Why Exchange may refuse an app-only account's token (`535 5.7.3`, `5.7.139`, ...) although it passed
 * checkAppOnlyToken: what to check in each of the two setups, with the account's own values. Give the token when
 * at hand: its roles tell which setup the app uses.
 */
export function appOnlyRefusalHint(account: Account, accessToken?: string): string {
  const role = account.oauth.appOnlyToken?.role ?? 'SMTP.SendAsApp';
  const mailbox = account.user;
  const app = account.clientId;
  let roles: string[] | undefined;
  if (accessToken) {
    try {
      const claims = decodeJwt(accessToken);
      if (Array.isArray(claims.roles)) roles = claims.roles.filter((r): r is string => typeof r === 'string');
      else roles = [];
    } catch {
      roles = undefined;
    }
  }
  const seen =
    roles === undefined
      ? ''
      : roles.length === 0
        ? 'The token carried no roles claim, as with Exchange App RBAC (setup 1). '
        : `The token carried the roles ${roles.join(', ')}, as with the Entra permission (setup 2). `;
  return (
    `Exchange refused the app-only token of account "${account.id}" for ${mailbox}. ${seen}` +
    `Exchange accepts app-only SMTP in one of two setups; check the one this app uses (Exchange Online PowerShell). ` +
    `1. Exchange App RBAC: the app is known to Exchange (Get-ServicePrincipal -Identity ${app}), holds the role ` +
    `(Get-ManagementRoleAssignment -App ${app} -Role 'Application ${role}'), and its scope covers the mailbox ` +
    `(Test-ServicePrincipalAuthorization -Identity ${app} -Resource ${mailbox} shows InScope True); changes can take ` +
    'a couple of hours to apply. ' +
    `2. Entra application permission ${role} (API "Office 365 Exchange Online") with admin consent, the app registered ` +
    `with New-ServicePrincipal -ObjectId <enterprise application object id> (not the app registration's), and ` +
    `Add-MailboxPermission -Identity ${mailbox} -User <that object id> -AccessRights FullAccess. ` +
    `Either way SMTP AUTH must be on for the mailbox (Get-CASMailbox ${mailbox} | Format-List ` +
    'SmtpClientAuthenticationDisabled shows False) and the tenant must not use security defaults.'
  );
}
