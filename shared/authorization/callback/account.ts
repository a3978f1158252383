import { findAccount } from '../../config';
import { need, type CallbackCheck } from './context';
import { failure, START_AGAIN } from './result';

/** The account still exists with the provider and flow the authorization was started for. */
export const accountUnchanged: CallbackCheck = (context) => {
  const request = need(context, 'request');
  const account = findAccount(context.runtime.accounts, request.accountId);
  if (account && account.provider === request.provider && account.flow === 'authorization_code') {
    context.account = account;
    return undefined;
  }
  return failure(
    'account_changed',
    409,
    account,
    `The account "${request.accountId}" was removed or its provider changed since this authorization started.`,
    START_AGAIN,
  );
};
