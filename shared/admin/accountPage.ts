import type { AccountAuditTable, AuditEntry } from '../accounts/accountAudit';
import type { AccountDirectory, DirectoryEntry, UnusableRow } from '../accounts/accountDirectory';
import { effectiveState } from '../accounts/accountRules';
import type { AccountStateIndex } from '../accounts/accountStateIndex';
import type { AccountState } from '../accounts/accountStatus';
import type { AccountStatusTable } from '../accounts/accountStatusTable';
import type { DeliveryLedger } from '../storage/deliveryLedger';
import { accountView, type AccountView } from './accountView';
import { countDeliveries } from './deliveryCounts';

export const PAGE_SIZE = 25;
const AUDIT_SHOWN = 20;

/** What the status page lists: `q` matches id, name or user (substring, any case); `state` one state. */
export interface AccountQuery {
  q: string;
  state: AccountState | '';
  page: number;
}

const STATES: readonly AccountState[] = [
  'ready',
  'not_authorized',
  'reauthorization_required',
  'configuration_error',
  'degraded',
  'paused',
  'stale',
];

export function accountQueryFrom(query: { get(name: string): string | null }): AccountQuery {
  const q = (query.get('q') ?? '').trim().slice(0, 100);
  const state = query.get('state') ?? '';
  const page = Number.parseInt(query.get('page') ?? '1', 10);
  return {
    q,
    state: (STATES as readonly string[]).includes(state) ? (state as AccountState) : '',
    page: Number.isFinite(page) && page > 0 ? Math.min(page, 100_000) : 1,
  };
}

export interface AccountPageSources {
  directory: AccountDirectory;
  accountStatus: AccountStatusTable;
  /** Every account's state for the counts and the state filter (a projected listing, kept briefly). */
  stateIndex: AccountStateIndex;
  ledger: DeliveryLedger;
  audit: AccountAuditTable;
  publicBaseUrl: string;
}

export interface AccountPage {
  query: AccountQuery;
  /** This page's accounts, in full (the cards). */
  views: AccountView[];
  /** The directory entries of `views`, in the same order (where each is configured, its administrative state). */
  entries: DirectoryEntry[];
  total: number;
  matched: number;
  pages: number;
  /** Accounts per effective state (an administrator's pause counts as paused), over all accounts. */
  counts: Partial<Record<AccountState, number>>;
  audit: AuditEntry[];
  unusable: readonly UnusableRow[];
}

/**
 * One page of the status page, sorted by id. Counts and the state filter span all accounts and come from the
 * state index (one projected listing, kept briefly); the page's own status rows are read fresh in one range
 * query; never a read per account. Only the page's accounts become full views.
 */
export async function loadAccountPage(sources: AccountPageSources, query: AccountQuery, now = new Date()): Promise<AccountPage> {
  const [states, deliveries, audit] = await Promise.all([
    sources.stateIndex.states(),
    countDeliveries(sources.ledger, now),
    sources.audit.recent(AUDIT_SHOWN).catch(() => []),
  ]);
  const entries = [...sources.directory.entries].sort((a, b) => compare(a.account.id, b.account.id));
  const counts: Partial<Record<AccountState, number>> = {};
  const needle = query.q.toLowerCase();
  const matching: DirectoryEntry[] = [];
  for (const entry of entries) {
    const state: AccountState = entry.state === 'paused' ? 'paused' : effectiveState(states.get(entry.account.id), now.getTime());
    counts[state] = (counts[state] ?? 0) + 1;
    if (query.state && state !== query.state) continue;
    if (
      needle &&
      !entry.account.id.includes(needle) &&
      !entry.account.user.toLowerCase().includes(needle) &&
      !entry.account.displayName.toLowerCase().includes(needle)
    )
      continue;
    matching.push(entry);
  }
  const pages = Math.max(1, Math.ceil(matching.length / PAGE_SIZE));
  const page = Math.min(query.page, pages);
  const shown = matching.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
  const rows = shown.length === 0 ? [] : await sources.accountStatus.listRange(shown[0]!.account.id, shown.at(-1)!.account.id);
  const byId = new Map(rows.map((status) => [status.accountId, status]));
  return {
    query: { ...query, page },
    views: shown.map((entry) =>
      accountView(
        entry.account,
        byId.get(entry.account.id),
        deliveries.get(entry.account.id),
        sources.publicBaseUrl,
        now.getTime(),
      ),
    ),
    entries: shown,
    total: entries.length,
    matched: matching.length,
    pages,
    counts,
    audit,
    unusable: sources.directory.unusableRows,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
