import type { Account } from '../config/account';
import { parseAccountInput } from '../config/loadAccounts';
import type { Logger } from '../log/logger';
import type { AccountConfigRow, AccountConfigTable, AdminState } from './accountConfigTable';
import type { SendDecision } from './accountRules';

/** Where an account is configured: the app setting (read-only at run time) or table `accountconfigs`. */
export type AccountSource = 'app_setting' | 'table';

export interface DirectoryEntry {
  account: Account;
  source: AccountSource;
  state: AdminState;
  /** Run-time accounts only: the stored row (who created it, when its secrets were set). */
  row?: AccountConfigRow;
}

/** A stored row that no longer passes validation (or clashes with the app setting): shown, not used. */
export interface UnusableRow {
  id: string;
  problems: string[];
}

/** How long a snapshot is trusted before the next `refreshIfStale` asks the table whether anything changed. */
export const DIRECTORY_STALE_MS = 5_000;

/** How long a paused account's messages wait before they look again (a resume also releases them at once). */
const PAUSED_WAIT_MS = 5 * 60_000;

/**
 * Every account this app knows: those of MAIL_ACCOUNTS (fixed for the process) and those created at run time
 * (table `accountconfigs`), as one snapshot. The snapshot is replaced, never changed in place, so a
 * caller holding `accounts` keeps a consistent list. Refreshing costs one point read (the table's version row)
 * unless something changed; the rows are listed only then.
 */
export class AccountDirectory {
  private snapshot: { entries: readonly DirectoryEntry[]; accounts: readonly Account[]; byId: Map<string, DirectoryEntry> };
  private unusable: readonly UnusableRow[] = [];
  private loadedVersion: string | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly settingAccounts: readonly Account[],
    private readonly deps: {
      table?: AccountConfigTable;
      log: Logger;
      extraAlerts?: string[];
      staleMs?: number;
    },
  ) {
    this.snapshot = build(settingAccounts.map((account) => ({ account, source: 'app_setting', state: 'active' })));
  }

  /** Every usable account, sorted by id (what the send path, the refresh run and the pages iterate). */
  get accounts(): readonly Account[] {
    return this.snapshot.accounts;
  }

  /** Every account with where it comes from and its administrative state: the list to publish (e.g. to the relay). */
  get entries(): readonly DirectoryEntry[] {
    return this.snapshot.entries;
  }

  get unusableRows(): readonly UnusableRow[] {
    return this.unusable;
  }

  entry(id: string): DirectoryEntry | undefined {
    return this.snapshot.byId.get(id);
  }

  /** True when MAIL_ACCOUNTS defines this id: such an account cannot be changed at run time. */
  isAppSetting(id: string): boolean {
    return this.settingAccounts.some((a) => a.id === id);
  }

  /** Whether another account than `exceptId` is the default one. */
  defaultAccountOtherThan(exceptId: string): string | undefined {
    return this.snapshot.accounts.find((a) => a.isDefault && a.id !== exceptId)?.id;
  }

  /** An administrator paused the account: its messages wait. Undefined when it may send (as far as we know). */
  pauseDecision(id: string): SendDecision | undefined {
    if (this.snapshot.byId.get(id)?.state !== 'paused') return undefined;
    return {
      open: false,
      code: 'paused',
      reason: `Account "${id}" is paused by an administrator; its messages wait until it is resumed.`,
      retryAfterMs: PAUSED_WAIT_MS,
    };
  }

  /** Cheap enough for the start of every invocation: at most one point read every few seconds. */
  async refreshIfStale(): Promise<void> {
    if (Date.now() - this.checkedAt < (this.deps.staleMs ?? DIRECTORY_STALE_MS)) return;
    await this.refresh();
  }

  /** Asks the table now (after a write here, or before calling an account unknown). Concurrent callers share it. */
  async refresh(options: { force?: boolean } = {}): Promise<void> {
    if (!this.deps.table) return;
    this.refreshing ??= this.load(options.force ?? false).finally(() => (this.refreshing = undefined));
    await this.refreshing;
  }

  private async load(force: boolean): Promise<void> {
    const table = this.deps.table!;
    try {
      const version = await table.version();
      this.checkedAt = Date.now();
      if (!force && version === this.loadedVersion) return;
      const rows = await table.list();
      this.apply(rows);
      this.loadedVersion = version;
    } catch (error) {
      // The accounts of the app setting and the last snapshot keep working; the next invocation asks again.
      this.checkedAt = Date.now();
      this.deps.log.warn('accounts.directory_refresh_failed', { error });
    }
  }

  private apply(rows: readonly AccountConfigRow[]): void {
    const entries: DirectoryEntry[] = this.settingAccounts.map((account) => ({
      account,
      source: 'app_setting',
      state: 'active',
    }));
    const unusable: UnusableRow[] = [];
    const settingDefault = this.settingAccounts.some((a) => a.isDefault);
    const defaultId = settingDefault
      ? undefined
      : (rows.find((row) => row.config.default === true)?.id ?? rows.find((row) => row.id === 'default')?.id);
    for (const row of rows) {
      if (this.isAppSetting(row.id)) {
        unusable.push({ id: row.id, problems: ['id: MAIL_ACCOUNTS defines this account too; the app setting wins'] });
        continue;
      }
      const parsed = parseAccountInput(row.config, {
        isDefault: row.id === defaultId,
        ...(this.deps.extraAlerts ? { extraAlerts: this.deps.extraAlerts } : {}),
      });
      if (!parsed.ok || parsed.account.id !== row.id) {
        unusable.push({ id: row.id, problems: parsed.ok ? ['id: differs from the row key'] : parsed.problems });
        continue;
      }
      entries.push({ account: parsed.account, source: 'table', state: row.state, row });
    }
    if (unusable.length > 0) this.deps.log.warn('accounts.unusable_rows', { ids: unusable.map((u) => u.id).join(', ') });
    this.unusable = unusable;
    this.snapshot = build(entries);
  }
}

/** The app setting's accounts in their order (the first is the fallback default), then the table's by id. */
function build(entries: DirectoryEntry[]) {
  const setting = entries.filter((entry) => entry.source === 'app_setting');
  const table = entries
    .filter((entry) => entry.source === 'table')
    .sort((a, b) => (a.account.id < b.account.id ? -1 : a.account.id > b.account.id ? 1 : 0));
  const sorted = [...setting, ...table];
  return {
    entries: sorted,
    accounts: sorted.map((entry) => entry.account),
    byId: new Map(sorted.map((entry) => [entry.account.id, entry])),
  };
}
