import { decodeJwt } from 'jose';
import type { Account, GraphSettings } from '../config';

/**
 * Microsoft tokens are issued for one resource at a time: one refresh token (bound to user and client, not to a
 * resource) gives an SMTP token and a Graph token in two separate requests, whose scopes are never mixed.
 */
export type TokenAudience = 'smtp' | 'graph';

/** The scopes of the Graph token request: delegated Mail.Send (+ offline_access, for the rotated refresh token), or `.default`. */
export function graphTokenScopes(account: Account, graph: GraphSettings): string[] {
  return account.flow === 'client_credentials' ? [graph.appOnlyScope] : [graph.delegatedScope, 'offline_access'];
}

/**
 * Why a Graph token would be refused, before the first request: its audience must be Microsoft Graph and it must
 * carry Mail.Send, in `scp` (delegated) or `roles` (app-only). An app-only token without any `roles` claim passes:
 * under RBAC for Applications Exchange grants the right itself and the token lists no role. The token is decoded,
 * not verified (Graph verifies it); a token that is not a JWT is judged by the `scope` its token response gave.
 * Returns undefined when the token looks right.
 */
export function graphTokenProblem(account: Account, token: { accessToken: string; scope?: string }): string | undefined {
  const graph = account.graph;
  if (!graph) return `Account "${account.id}" (provider ${account.provider}) has no Microsoft Graph transport.`;
  const appOnly = account.flow === 'client_credentials';
  const permission = graph.permission.toLowerCase();
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(token.accessToken);
  } catch {
    const granted = (token.scope ?? '').split(/\s+/).map((s) => s.toLowerCase());
    if (appOnly || granted.some((s) => s === permission || s === graph.delegatedScope.toLowerCase())) return undefined;
    return `Account "${account.id}": the Graph token does not carry ${graph.permission} (granted: ${token.scope || 'nothing stated'}). ${consentAdvice(account, graph)}`;
  }
  const normalize = (value: string) => value.replace(/\/+$/, '').toLowerCase();
  const audiences = [claims.aud].flat().filter((a): a is string => typeof a === 'string');
  const known = new Set(graph.audienceIds.map(normalize));
  if (!audiences.some((aud) => known.has(normalize(aud)))) {
    const smtp = audiences.some((aud) => /outlook\.office(365)?\.com/i.test(aud));
    return (
      `Account "${account.id}": the token has audience ${audiences.join(', ') || '(none)'}, but Microsoft Graph needs ${graph.audience}.` +
      (smtp
        ? ' It is an Exchange (SMTP) token: the Graph token must be requested on its own, with a Graph scope.'
        : ` Request the scope ${appOnly ? graph.appOnlyScope : graph.delegatedScope}.`)
    );
  }
  if (appOnly) {
    if (claims.roles === undefined) return undefined;
    const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
    if (roles.some((r) => r.toLowerCase() === permission)) return undefined;
    return `Account "${account.id}": the app-only Graph token has no ${graph.permission} role (roles: ${roles.join(', ') || 'none'}). ${consentAdvice(account, graph)}`;
  }
  const scp = typeof claims.scp === 'string' ? claims.scp : typeof claims.scope === 'string' ? claims.scope : '';
  const scopes = scp.split(/\s+/).filter(Boolean);
  if (scopes.some((s) => s.toLowerCase() === permission || s.toLowerCase() === graph.delegatedScope.toLowerCase()))
    return undefined;
  return `Account "${account.id}": the Graph token does not carry the delegated permission ${graph.permission} (scp: ${scopes.join(' ') || 'none'}). ${consentAdvice(account, graph)}`;
}

function consentAdvice(account: Account, graph: GraphSettings): string {
  return account.flow === 'client_credentials'
    ? `Give the app the application permission ${graph.permission} (Microsoft Graph) with admin consent and limit it to the sending mailboxes with RBAC for Applications, or assign it the role "Application ${graph.permission}" in Exchange (docs/provider-microsoft.md).`
    : `Re-authorize the account so that ${account.user} consents to ${graph.delegatedScope}.`;
}

/**
 * The Graph scope a delegated account asks for at sign-in, beside its SMTP scopes, when its transport can be Graph
 * (`graph` or `auto`). Microsoft lets one sign-in consent to both resources; each token is then requested apart.
 */
export function graphSignInScopes(account: Account): string[] {
  if (!account.graph || account.flow !== 'authorization_code' || account.transport === 'smtp') return [];
  return [account.graph.delegatedScope];
}
