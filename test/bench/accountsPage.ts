/**
 * p7_accounts_page_ms: the status page's first page with N run-time accounts (10,000 in the full run) in table
 * `accountconfigs` and a status row for each in table `accounts`, on Azurite, through the real `admin` handler:
 * the first view on a running instance (its account directory loaded, as after any message or page it served;
 * the counts by state listed fresh). Beside it: a brand-new instance's first request (which also loads the
 * directory) and the warm median (counts from the 30-second state index).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TransactionAction } from '@azure/data-tables';
import { admin } from '../../functions/admin';
import { startAzurite } from '../../local/peers/azurite';
import { closeApp, createApp, setApp } from '../../shared/app';
import { silentLogger } from '../../shared/log/logger';
import { TABLES } from '../../shared/names';
import { FileSecretStore } from '../../shared/storage/fileSecretStore';
import { HttpRequest } from '../support/azureFunctions';

export const ACCOUNTS_PAGE_TARGET_MS = 1_000;

export interface AccountsPageResult {
  accounts: number;
  /** The first view on an instance whose directory is loaded: state listing + page rows + render. */
  firstMs: number;
  /** A new instance: directory load + state listing + page rows + render. */
  coldMs: number;
  /** Median of the following requests. */
  warmMs: number;
  bytes: number;
  details: string[];
}

const STATES = ['ready', 'ready', 'ready', 'not_authorized', 'reauthorization_required', 'paused'] as const;

export async function measureAccountsPage(options: {
  accounts: number;
  connectionString?: string;
  progress: (text: string) => void;
}): Promise<AccountsPageResult> {
  const azurite = options.connectionString ? undefined : await startAzurite();
  const connectionString = options.connectionString ?? azurite!.connectionString;
  const dir = await mkdtemp(path.join(tmpdir(), 'outbox-bench-accounts-'));
  const env = { MailStorage: connectionString, PUBLIC_BASE_URL: 'http://127.0.0.1:7071' };
  const newApp = () =>
    createApp(env, { accounts: [], secrets: new FileSecretStore(path.join(dir, 'secrets.json')), log: silentLogger });
  const seeding = newApp();
  try {
    await seeding.storage.ensureCreated();
    options.progress(`accounts: writing ${options.accounts} accounts and their status rows`);
    const configs = seeding.storage.table(TABLES.accountConfigs);
    const statuses = seeding.storage.table(TABLES.accounts);
    const now = new Date().toISOString();
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const ids = Array.from({ length: options.accounts }, (_, i) => `mailbox-${String(i).padStart(5, '0')}`);
    for (let start = 0; start < ids.length; start += 100) {
      const batch = ids.slice(start, start + 100);
      const configRows: TransactionAction[] = batch.map((id, i) => [
        'upsert',
        {
          partitionKey: 'account',
          rowKey: id,
          config: JSON.stringify({
            id,
            provider: 'microsoft',
            tenantId: '00000000-0000-4000-8000-000000000000',
            clientId: '11111111-2222-4333-8444-555555555555',
            user: `${id}@contoso.test`,
            displayName: `Printer fleet ${start + i}`,
          }),
          state: (start + i) % 50 === 0 ? 'paused' : 'active',
          createdAt: now,
          createdBy: 'bench',
          updatedAt: now,
          updatedBy: 'bench',
        },
      ]);
      const statusRows: TransactionAction[] = batch.map((id, i) => {
        const state = STATES[(start + i) % STATES.length]!;
        return [
          'upsert',
          {
            partitionKey: 'account',
            rowKey: id,
            state,
            authorizedUser: `${id}@contoso.test`,
            authorizedAt: hourAgo,
            lastRefreshAt: hourAgo,
            lastRefreshOkAt: hourAgo,
            tokenExpiresAt: now,
            ...(state === 'paused' ? { pausedUntil: new Date(Date.now() + 3_600_000).toISOString() } : {}),
          },
        ];
      });
      await Promise.all([configs.submitTransaction(configRows), statuses.submitTransaction(statusRows)]);
    }
    // The version row, as any write through the accounts API leaves it.
    await configs.upsertEntity({ partitionKey: 'directory', rowKey: 'version', value: `bench-${Date.now()}` }, 'Replace');
    await closeApp(seeding);

    const request = () => admin(new HttpRequest({ method: 'GET', url: 'http://127.0.0.1:7071/api/status' }));
    const cold = newApp();
    setApp(cold);
    let started = performance.now();
    await request();
    const coldMs = performance.now() - started;
    await closeApp(cold);

    const app = newApp();
    setApp(app);
    await app.directory.refresh();
    started = performance.now();
    const first = await request();
    const firstMs = performance.now() - started;
    if (first.status !== 200) throw new Error(`the status page answered ${first.status}`);
    const body = String(first.body);
    const shown = body.match(/<tr data-row=/g)?.length ?? 0;
    if (!body.includes(`data-total="${options.accounts}"`) || shown !== 25)
      throw new Error(`the status page did not list ${options.accounts} accounts 25 to a page (${shown} rows)`);
    const warm: number[] = [];
    for (let i = 0; i < 5; i++) {
      started = performance.now();
      await request();
      warm.push(performance.now() - started);
    }
    warm.sort((a, b) => a - b);
    const warmMs = warm[Math.floor(warm.length / 2)]!;
    await closeApp(app);
    setApp(undefined);
    return {
      accounts: options.accounts,
      firstMs: Math.round(firstMs),
      coldMs: Math.round(coldMs),
      warmMs: Math.round(warmMs),
      bytes: Buffer.byteLength(body),
      details: [
        `accounts page: ${options.accounts} run-time accounts on Azurite; first view ${Math.round(firstMs)} ms (directory loaded, counts listed fresh), on a brand-new instance ${Math.round(coldMs)} ms (also loads the directory), warm median of 5 ${Math.round(warmMs)} ms; ${Math.round(Buffer.byteLength(body) / 1024)} KB of HTML, 25 accounts a page`,
      ],
    };
  } finally {
    setApp(undefined);
    await rm(dir, { recursive: true, force: true });
    await azurite?.stop();
  }
}
