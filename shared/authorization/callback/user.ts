import type * as client from 'openid-client';
import type { Account } from '../../config';
import { need, type CallbackCheck, type Identity } from './context';
import { failure, START_AGAIN, type AuthorizationFailure } from './result';

/**
 * Who signed in. Microsoft: tenant + object ID (stable) and preferred_username / email (shown and compared);
 * Google and others: sub, and email. The comparison with the configured user catches the common mistake of
 * consenting with the wrong account (e.g. the admin's own); the SMTP server makes the final decision anyway.
 */
export const rightUser: CallbackCheck = (context) => {
  const found = identifyUser(need(context, 'account'), need(context, 'claims'));
  if ('ok' in found) return found;
  context.identity = found;
  return undefined;
};

function identifyUser(account: Account, claims: client.IDToken): Identity | AuthorizationFailure {
  const text = (name: string) => (typeof claims[name] === 'string' && claims[name] !== '' ? (claims[name] as string) : undefined);
  const email = claims.email_verified === false ? undefined : text('email');
  const names = [text('preferred_username'), email, text('upn')].filter((v): v is string => v !== undefined);
  const shown = names[0] ?? claims.sub;
  let userId = claims.sub;
  if (account.provider === 'microsoft') {
    const tid = text('tid');
    const oid = text('oid');
    if (!tid || !oid) return failure('id_token_invalid', 502, account, 'The id_token lacks the tid and oid claims.', START_AGAIN);
    if (account.tenantId && tid.toLowerCase() !== account.tenantId.toLowerCase()) {
      return wrongUser(account, `${shown} (from another tenant, ${tid})`);
    }
    userId = `${tid}/${oid}`;
  }
  const expected = account.user.toLowerCase();
  if (!names.some((name) => name.toLowerCase() === expected)) return wrongUser(account, shown);
  return { authorizedUser: names.find((n) => n.toLowerCase() === expected) ?? shown, authorizedUserId: userId };
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
