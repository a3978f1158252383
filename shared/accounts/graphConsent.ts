import type { AccountStatus } from './accountStatus';
import type { Account } from '../config';
import { graphSignInScopes } from '../oauth/graphToken';

export const GRAPH_CONSENT_MISSING = 'Re-authorize to enable Graph';

/**
 * A delegated account that may send through Graph but was authorized without Graph's Mail.Send (before its
 * transport was `graph` or `auto`): its Graph token request would fail, so the status page asks for one
 * re-authorization instead of letting messages fail. Undefined when nothing is missing, or nobody signed in yet.
 */
export function graphConsentMissing(account: Account, status: AccountStatus | undefined): string | undefined {
  const needed = graphSignInScopes(account);
  if (needed.length === 0 || !status?.authorizedAt) return undefined;
  const granted = new Set((status.scopes ?? '').split(/\s+/).map((s) => s.toLowerCase()));
  const missing = needed.filter((scope) => !granted.has(scope.toLowerCase()));
  if (missing.length === 0) return undefined;
  return `${GRAPH_CONSENT_MISSING}: ${account.user} consented to SMTP only; transport "${account.transport}" also needs ${missing.join(', ')}. Press Re-authorize and accept the new permission.`;
}
