import { loadAccounts, type Account } from './config';
import { consoleLogger, type Logger } from './log/logger';
import { AccountStatusTable } from './storage/accountStatusTable';
import { createSecretStore } from './storage/createSecretStore';
import type { SecretStore } from './storage/secretStore';
import { createStorageClients, type StorageClients } from './storage/storageClients';
import { TABLES } from './names';
import { readSetting, type Env } from './settings';
import { TokenStore } from './tokens/tokenStore';

/**
 * Everything a function needs, built once per process from the app settings. Functions call `getRuntime()`;
 * tests and the local runner build their own with `createRuntime(env)` and install it with `setRuntime`.
 */
export interface Runtime {
  readonly env: Env;
  readonly accounts: readonly Account[];
  readonly storage: StorageClients;
  readonly secrets: SecretStore;
  readonly tokenStore: TokenStore;
  readonly accountStatus: AccountStatusTable;
  readonly log: Logger;
  /** Public https base URL of the app; the OAuth redirect URI is built from it, never from request headers. */
  readonly publicBaseUrl: string;
  /** Extra things attached by modules that are built lazily (transports, token service, limits). */
  readonly services: Map<string, unknown>;
}

export interface RuntimeOverrides {
  secrets?: SecretStore;
  log?: Logger;
  accounts?: readonly Account[];
}

export function createRuntime(env: Env, overrides: RuntimeOverrides = {}): Runtime {
  const storage = createStorageClients(env);
  const secrets = overrides.secrets ?? createSecretStore(env);
  return {
    env,
    accounts: overrides.accounts ?? loadAccounts(env),
    storage,
    secrets,
    tokenStore: new TokenStore(secrets),
    accountStatus: new AccountStatusTable(storage.table(TABLES.accounts)),
    log: overrides.log ?? consoleLogger,
    publicBaseUrl: publicBaseUrl(env),
    services: new Map(),
  };
}

export function publicBaseUrl(env: Env): string {
  const configured = readSetting(env, 'PUBLIC_BASE_URL');
  if (configured) return configured.replace(/\/+$/, '');
  const host = readSetting(env, 'WEBSITE_HOSTNAME');
  return host ? `https://${host}` : 'http://localhost:7071';
}

/** A lazily built, per-runtime singleton (one SMTP pool set, one token service, ...). */
export function service<T>(runtime: Runtime, key: string, build: () => T): T {
  if (!runtime.services.has(key)) runtime.services.set(key, build());
  return runtime.services.get(key) as T;
}

let current: Runtime | undefined;

export function getRuntime(): Runtime {
  current ??= createRuntime(process.env);
  return current;
}

/** The runtime's logger, or the console when the runtime itself cannot be built (e.g. invalid configuration). */
export function runtimeLogger(): Logger {
  try {
    return getRuntime().log;
  } catch {
    return consoleLogger;
  }
}

export function setRuntime(runtime: Runtime | undefined): void {
  current = runtime;
}
