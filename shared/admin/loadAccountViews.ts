import { TABLES } from '../names';
import type { Runtime } from '../runtime';
import { DeliveryLedger } from '../storage/deliveryLedger';
import { accountView, type AccountView } from './accountView';
import { countDeliveries } from './deliveryCounts';

/** Every configured account with its status row and its last day's deliveries: two table reads in all. */
export async function loadAccountViews(runtime: Runtime, now = new Date()): Promise<AccountView[]> {
  const [statuses, counts] = await Promise.all([runtime.accountStatus.list(), countsFor(runtime, now)]);
  const byId = new Map(statuses.map((status) => [status.accountId, status]));
  return runtime.accounts.map((account) =>
    accountView(account, byId.get(account.id), counts.get(account.id), runtime.publicBaseUrl, now.getTime()),
  );
}

/** One configured account, or undefined when no account has this id. */
export async function loadAccountView(runtime: Runtime, accountId: string, now = new Date()): Promise<AccountView | undefined> {
  const account = runtime.accounts.find((a) => a.id === accountId);
  if (!account) return undefined;
  const [status, counts] = await Promise.all([runtime.accountStatus.get(account.id), countsFor(runtime, now)]);
  return accountView(account, status, counts.get(account.id), runtime.publicBaseUrl, now.getTime());
}

function countsFor(runtime: Runtime, now: Date) {
  return countDeliveries(new DeliveryLedger(runtime.storage.table(TABLES.deliveries)), now);
}
