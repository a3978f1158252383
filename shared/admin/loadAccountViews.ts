import type { AccountStatusTable } from '../accounts/accountStatusTable';
import type { Account } from '../config/account';
import type { DeliveryLedger } from '../storage/deliveryLedger';
import { accountView, type AccountView } from './accountView';
import { countDeliveries } from './deliveryCounts';

/** What the status page and the accounts JSON read. */
export interface AccountViewSources {
  accounts: readonly Account[];
  accountStatus: AccountStatusTable;
  ledger: DeliveryLedger;
  publicBaseUrl: string;
}

/** Every configured account with its status row and its last day's deliveries: two table reads in all. */
export async function loadAccountViews(sources: AccountViewSources, now = new Date()): Promise<AccountView[]> {
  const [statuses, counts] = await Promise.all([sources.accountStatus.list(), countDeliveries(sources.ledger, now)]);
  const byId = new Map(statuses.map((status) => [status.accountId, status]));
  return sources.accounts.map((account) =>
    accountView(account, byId.get(account.id), counts.get(account.id), sources.publicBaseUrl, now.getTime()),
  );
}

/** One configured account, or undefined when no account has this id. */
export async function loadAccountView(
  sources: AccountViewSources,
  accountId: string,
  now = new Date(),
): Promise<AccountView | undefined> {
  const account = sources.accounts.find((a) => a.id === accountId);
  if (!account) return undefined;
  const [status, counts] = await Promise.all([sources.accountStatus.get(account.id), countDeliveries(sources.ledger, now)]);
  return accountView(account, status, counts.get(account.id), sources.publicBaseUrl, now.getTime());
}
