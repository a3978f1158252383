import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import type { Account } from '../config/account';
import { AccountError } from '../errors';
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

/** Obtains an app-only token and checks its audience and role (`checkAppOnlyToken`) before anyone uses it. */
export async function fetchAppOnlyToken(context: OAuthContext, account: Account): Promise<AppOnlyToken> {
  if (account.flow !== 'client_credentials') {
    throw new AccountError(
      'config_error',
      `Account "${account.id}" uses flow ${account.flow}; app-only tokens need flow client_credentials.`,
    );
  }
  const config = await providerConfiguration(context, account);
  const response = await client.clientCredentialsGrant(config, { scope: account.oauth.scopes.join(' ') });
  checkAppOnlyToken(account, response.access_token);
  return {
    accessToken: response.access_token,
    expiresAt: accessTokenExpiry(response),
    ...(typeof response.scope === 'string' && response.scope !== '' ? { scope: response.scope } : {}),
  };
}

const GRAPH_AUDIENCES = new Set(['https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000']);

/**
 * Exchange accepts an app-only token for SMTP only with audience https://outlook.office365.com and the role
 * SMTP.SendAsApp; anything else ends in `535 5.7.3` with no explanation. The token is decoded, not verified:
 * this is a diagnosis before connecting, the SMTP server does the verification.
 * Throws AccountError('config_error') naming the failed check and the fix; returns when the token looks right
 * or the account sets no expectation (`account.oauth.appOnlyToken`).
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
      `Account "${account.id}": the app-only token is not a JWT, so its audience and role cannot be checked. Expected a token for ${expected.audience} with role ${expected.role}.`,
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
  const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
  if (!roles.includes(expected.role)) {
    throw new AccountError(
      'config_error',
      `Account "${account.id}": the app-only token has no ${expected.role} role (roles: ${roles.join(', ') || 'none'}). ` +
        `In the app registration add the application permission ${expected.role} (API "Office 365 Exchange Online"), grant admin consent, ` +
        'then register the app in Exchange (New-ServicePrincipal -AppId <client id> -ObjectId <enterprise application object id>) and give it rights on the mailbox (Add-MailboxPermission -AccessRights FullAccess).',
    );
  }
}
