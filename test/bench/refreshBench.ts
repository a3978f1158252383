/**
 * p7: the refresh timer's capacity and its cost in Key Vault, on the local identity provider, Azurite and the Key
 * Vault double with Microsoft's limits (300 creates and 4,000 other operations per 10 s), through the real
 * @azure/keyvault-secrets client (with no SDK retries: a 429 reaches the run, which waits it out and counts).
 *
 * - p7_refresh_minutes: every account refreshed back to back (REFRESH_SPREAD_MINUTES=0) by one run of the timer's
 *   work on a cold instance (discovery included), with a revoking provider: the worst case for Key Vault writes.
 * - p7_kv_writes_per_refresh: Key Vault writes in that run ÷ refreshes.
 * - p7_kv_writes_per_day_reusable: a reusable (Microsoft) provider, 24 hourly runs with the vault's versions aged
 *   an hour before each: writes per account in the day.
 */
import { startKeyVaultDouble, type KeyVaultDouble } from '../support/keyVaultDouble';
import { startTokenRefreshWorld } from '../support/tokenRefreshWorld';

export const REFRESH_TARGETS = { refreshMinutes: 15, throttles: 0, writesPerRefresh: 1, writesPerDayReusable: 1 };

export interface RefreshBenchResult {
  p7_accounts: number;
  p7_refresh_minutes: number;
  p7_kv_throttles: number;
  p7_kv_writes_per_refresh: number;
  p7_kv_writes_per_day_reusable: number;
  details: string[];
}

const HOUR = 3_600_000;

export async function runRefreshBench(options: {
  connectionString: string;
  accounts: number;
  /** Accounts in the simulated day of the reusable provider (each run is 24 refreshes of each). */
  dayAccounts?: number;
  progress?: (text: string) => void;
}): Promise<RefreshBenchResult> {
  const progress = options.progress ?? (() => undefined);
  const details: string[] = [];
  let vault: KeyVaultDouble | undefined;
  try {
    vault = await startKeyVaultDouble();
    progress(`granting ${options.accounts} accounts at the identity provider`);
    const world = await startTokenRefreshWorld({
      connectionString: options.connectionString,
      vault,
      rotation: 'revoking',
      accounts: options.accounts,
      env: { REFRESH_SPREAD_MINUTES: '0' },
      prefix: 'p7',
    });
    let run;
    const before = { writes: vault.writes, reads: vault.reads, throttled: vault.throttled, requests: vault.requests.length };
    const grants = world.refreshGrants();
    const started = performance.now();
    try {
      progress(`refreshing ${options.accounts} accounts back to back`);
      run = await world.run();
    } finally {
      await world.stop();
    }
    const ms = performance.now() - started;
    const refreshed = run.filter((r) => r.outcome === 'refreshed').length;
    const writes = vault.writes - before.writes;
    const counts = new Map<string, number>();
    for (const r of run) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
    details.push(
      `p7 refresh run: ${options.accounts} accounts back to back in ${(ms / 1000).toFixed(1)} s (${(ms / Math.max(1, options.accounts)).toFixed(1)} ms each, one process running the app, the identity provider and the vault double); outcomes ${JSON.stringify(Object.fromEntries(counts))}; provider refresh grants ${world.refreshGrants() - grants}`,
      ...(run.find((r) => r.outcome !== 'refreshed')
        ? [`p7 first account not refreshed: ${JSON.stringify(run.find((r) => r.outcome !== 'refreshed'))}`]
        : []),
      `p7 Key Vault in that run: ${writes} writes , ${vault.reads - before.reads} reads, ${vault.throttled - before.throttled} answered 429, ${vault.requests.length - before.requests} requests in all`,
    );

    const dayAccounts = options.dayAccounts ?? 20;
    progress(`a simulated day of hourly refreshes for ${dayAccounts} accounts with reusable rotation`);
    const dayVault = await startKeyVaultDouble();
    let dayWrites = 0;
    try {
      const day = await startTokenRefreshWorld({
        connectionString: options.connectionString,
        vault: dayVault,
        rotation: 'reusable',
        accounts: dayAccounts,
        env: { REFRESH_SPREAD_MINUTES: '0' },
        prefix: 'p7day',
      });
      try {
        const start = dayVault.writes;
        for (let hour = 1; hour <= 24; hour++) {
          dayVault.age(HOUR);
          const results = await day.run();
          const notRefreshed = results.filter((r) => r.outcome !== 'refreshed');
          if (notRefreshed.length) throw new Error(`hour ${hour}: ${JSON.stringify(notRefreshed[0])}`);
        }
        dayWrites = dayVault.writes - start;
      } finally {
        await day.stop();
      }
    } finally {
      await dayVault.stop();
    }
    details.push(`p7 reusable rotation: ${dayWrites} Key Vault writes for ${dayAccounts} accounts × 24 hourly refreshes`);

    return {
      p7_accounts: options.accounts,
      p7_refresh_minutes: Math.round((ms / 60_000) * 100) / 100,
      p7_kv_throttles: vault.throttled - before.throttled,
      p7_kv_writes_per_refresh: Math.round((writes / Math.max(1, refreshed)) * 1000) / 1000,
      p7_kv_writes_per_day_reusable: Math.round((dayWrites / dayAccounts) * 100) / 100,
      details,
    };
  } finally {
    await vault?.stop();
  }
}
