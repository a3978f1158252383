import type { TableClient } from '@azure/data-tables';
import { AccountAdmin } from './accounts/accountAdmin';
import { AccountAlerts } from './accounts/accountAlerts';
import { AccountAuditTable } from './accounts/accountAudit';
import { AccountConfigTable } from './accounts/accountConfigTable';
import { AccountDirectory } from './accounts/accountDirectory';
import { AccountStateIndex } from './accounts/accountStateIndex';
import { AccountStatusTable } from './accounts/accountStatusTable';
import { AccountStateWriter } from './accounts/accountStateWriter';
import type { Account } from './config/account';
import { extraAlertsOf, loadAccounts } from './config/loadAccounts';
import type { AccountViewSources } from './admin/loadAccountViews';
import { AccountGate } from './delivery/accountGate';
import type { DeliveryServices } from './delivery/deliveryServices';
import { policyFromSettings, type DeliveryPolicy } from './delivery/policy';
import { OutboxQueue } from './message/outboxQueue';
import { releaseWaiting } from './delivery/releaseWaiting';
import { SenderPool } from './delivery/senderPool';
import { GraphSenderPool } from './graph/graphSenderPool';
import { ConfigError } from './errors';
import { INSTANCE_ID } from './instanceId';
import { consoleLogger, type Logger } from './log/logger';
import { CONTAINERS, QUEUES, RELAY_CONTAINERS, TABLES } from './names';
import type { ManagedIdentityCredentialFactory } from './oauth/clientAuth';
import { ProviderClients } from './oauth/providerClient';
import { revokeGrant } from './oauth/revokeGrant';
import { publishAllowedSenders } from './relay/publishAllowedSenders';
import { readSetting, RESULT_EVENT_CHOICES, type Env, type ResultEvents } from './settings';
import { createSecretStore } from './storage/createSecretStore';
import { AccessTokenTable } from './storage/accessTokenTable';
import { DeliveryLedger } from './storage/deliveryLedger';
import type { SecretStore } from './storage/secretStore';
import { createStorageClients, type StorageClients } from './storage/storageClients';
import { AccessTokenKey } from './tokens/accessTokenKey';
import { RefreshLease } from './tokens/refreshLease';
import { ProviderTokenRefresher } from './tokens/tokenRefresher';
import { TokenService } from './tokens/tokenService';
import { refreshTokenSecretName, TokenStore } from './tokens/tokenStore';

/**
 * The composition root: everything the functions use, built once per process from the app settings, in the
 * order below. Functions call `getApp()` and hand each use case the parts it needs; tests and the local host
 * build their own with `createApp(env, overrides)` and install it with `setApp`.
 */
export interface App {
  readonly env: Env;
  readonly log: Logger;
  /** The directory's current snapshot: MAIL_ACCOUNTS and the run-time accounts (refreshed by `getFreshApp`). */
  readonly accounts: readonly Account[];
  readonly directory: AccountDirectory;
  /** Creating, changing, pausing and deleting run-time accounts, with the audit trail. */
  readonly accountAdmin: AccountAdmin;
  readonly accountAudit: AccountAuditTable;
  /** Table `accountconfigs`: the run-time accounts' rows (written only through `accountAdmin`). */
  readonly accountConfigs: AccountConfigTable;
  /** Every account's state for the status page's counts and filter, listed at most every 30 s. */
  readonly stateIndex: AccountStateIndex;
  /** Public https base URL of the app; the OAuth redirect URI is built from it, never from request headers. */
  readonly publicBaseUrl: string;
  readonly storage: StorageClients;
  readonly secrets: SecretStore;
  readonly tokenStore: TokenStore;
  /** Account status rows: read by everyone, written only through `accountStates`. */
  readonly accountStatus: AccountStatusTable;
  readonly accountStates: AccountStateWriter;
  readonly providers: ProviderClients;
  /** One refresh (or new authorization) per account at a time, across instances. */
  readonly refreshLease: RefreshLease;
  readonly refresher: ProviderTokenRefresher;
  readonly tokens: TokenService;
  readonly senders: SenderPool;
  readonly graphSenders: GraphSenderPool;
  readonly delivery: DeliveryServices;
  /** Writes the allowed-senders document the SMTP relay reads (refresh timer, and on a stop or a new grant). */
  publishAllowedSenders(): Promise<number>;
}

export interface AppOverrides {
  /** Stands in for MAIL_ACCOUNTS. */
  accounts?: readonly Account[];
  /** How long the account directory trusts its snapshot (default 5 s). */
  directoryStaleMs?: number;
  secrets?: SecretStore;
  log?: Logger;
  policy?: DeliveryPolicy;
  ledger?: (table: TableClient) => DeliveryLedger;
  managedIdentityCredential?: ManagedIdentityCredentialFactory;
  /** How long this instance trusts its cached copy of an account's status row (default 10 s). */
  statusCacheMs?: number;
  /** Names this process in leases and connection slots (tests run several "instances" in one process). */
  instanceId?: string;
}

export function createApp(env: Env, overrides: AppOverrides = {}): App {
  const log = overrides.log ?? consoleLogger;
  const settingAccounts = overrides.accounts ?? loadAccounts(env);
  const baseUrl = publicBaseUrl(env);
  const storage = createStorageClients(env);
  const accountConfigs = new AccountConfigTable(storage.table(TABLES.accountConfigs));
  const directory = new AccountDirectory(settingAccounts, {
    table: accountConfigs,
    log,
    extraAlerts: extraAlertsOf(env),
    ...(overrides.directoryStaleMs !== undefined ? { staleMs: overrides.directoryStaleMs } : {}),
  });
  const secrets = overrides.secrets ?? createSecretStore(env);
  const tokenStore = new TokenStore(secrets, new AccessTokenTable(storage.table(TABLES.leases)), new AccessTokenKey(secrets));
  const outbox = storage.queue(QUEUES.outbox);

  const accountStatus = new AccountStatusTable(storage.table(TABLES.accounts), overrides.statusCacheMs);
  const alerts = new AccountAlerts({
    get accounts() {
      return directory.accounts;
    },
    status: accountStatus,
    outbox,
    publicBaseUrl: baseUrl,
    log,
  });
  const accountStates = new AccountStateWriter(accountStatus, alerts, log);

  const providers = new ProviderClients({
    secrets,
    env,
    ...(overrides.managedIdentityCredential ? { managedIdentityCredential: overrides.managedIdentityCredential } : {}),
  });
  const holder = overrides.instanceId ?? INSTANCE_ID;
  const refreshLease = new RefreshLease(storage.table(TABLES.leases), holder);
  const refresher = new ProviderTokenRefresher({ tokenStore, providers, accountStatus, accountStates, refreshLease, log });
  const tokens = new TokenService(tokenStore, refresher);

  const policy = overrides.policy ?? policyFromSettings(env);
  const senders = new SenderPool(storage.table(TABLES.leases), policy, holder);
  const graphSenders = new GraphSenderPool(storage.table(TABLES.leases), holder);
  // A grant replaced or revoked: this instance stops using its tokens and connections at once.
  const dropSessions = (accountId: string) => {
    tokens.forget(accountId);
    senders.closeConnections(accountId);
  };
  const gate = new AccountGate(accountStatus, dropSessions, (accountId) => directory.pauseDecision(accountId));
  const deliveriesTable = storage.table(TABLES.deliveries);
  const delivery: DeliveryServices = {
    get accounts() {
      return directory.accounts;
    },
    refreshAccounts: () => directory.refresh(),
    ledger: overrides.ledger?.(deliveriesTable) ?? new DeliveryLedger(deliveriesTable),
    outbox: new OutboxQueue(outbox),
    results: storage.queue(QUEUES.results),
    attachments: storage.container(CONTAINERS.attachments),
    mime: storage.container(CONTAINERS.mime),
    tokens,
    gate,
    accountStates,
    senderFor: (account) => senders.senderFor(account),
    graphSenderFor: (account) => graphSenders.senderFor(account),
    budgetFor: (account) => senders.budgetFor(account),
    policy,
    resultEvents: resultEvents(env),
    log,
    unrecorded: new Map(),
    unsentClaims: new Map(),
  };

  const relaySenders = storage.container(RELAY_CONTAINERS.senders);
  const publish = () => publishAllowedSenders({ accounts: directory.entries, accountStatus, container: relaySenders });

  // A new grant also ends the wait of the account's messages held for it: they go out now, not minutes later.
  accountStates.onChange(async (accountId, change) => {
    dropSessions(accountId);
    if (change === 'authorized') await releaseWaiting(delivery, accountId);
  });
  // The relay hears of a stop or a new grant at its next read, not at the next hourly run.
  accountStates.onChange(() => publish());

  const accountAudit = new AccountAuditTable(storage.table(TABLES.accountAudit));
  const accountAdmin = new AccountAdmin({
    directory,
    table: accountConfigs,
    audit: accountAudit,
    secrets,
    accountStates,
    readRefreshToken: (accountId) => tokenStore.readRefreshToken(accountId),
    // The access token secret is what earlier versions kept in Key Vault; today access tokens are sealed table rows.
    grantSecretNames: (accountId) => [refreshTokenSecretName(accountId), `${accountId}-access-token`],
    revoke: (account, refreshToken) => revokeGrant(providers, account, refreshToken),
    dropSessions: (accountId) => {
      dropSessions(accountId);
      providers.forget(accountId);
      gate.forget(accountId);
    },
    releaseWaiting: (accountId) => releaseWaiting(delivery, accountId, new Date(), new Set(['paused'])),
    publishForRelay: publish,
    log,
  });

  return {
    env,
    log,
    get accounts() {
      return directory.accounts;
    },
    directory,
    accountAdmin,
    accountAudit,
    accountConfigs,
    stateIndex: new AccountStateIndex(accountStatus),
    publicBaseUrl: baseUrl,
    storage,
    secrets,
    tokenStore,
    accountStatus,
    accountStates,
    providers,
    refreshLease,
    refresher,
    tokens,
    senders,
    graphSenders,
    delivery,
    publishAllowedSenders: publish,
  };
}

export function publicBaseUrl(env: Env): string {
  const configured = readSetting(env, 'PUBLIC_BASE_URL');
  if (configured) return configured.replace(/\/+$/, '');
  const host = readSetting(env, 'WEBSITE_HOSTNAME');
  return host ? `https://${host}` : 'http://localhost:7071';
}

export function resultEvents(env: Env): ResultEvents {
  const value = readSetting(env, 'RESULT_EVENTS')?.toLowerCase() ?? 'all';
  if (!(RESULT_EVENT_CHOICES as readonly string[]).includes(value))
    throw new ConfigError(`RESULT_EVENTS: "${value}" is not one of ${RESULT_EVENT_CHOICES.join(', ')}.`);
  return value as ResultEvents;
}

/** Closes every SMTP connection and gives back the connection slots (local host shutdown, tests). */
export async function closeApp(app: App): Promise<void> {
  await app.senders.close();
  await app.graphSenders.close();
}

let current: App | undefined;

/** The process's app, built from the app settings on first use. */
export function getApp(): App {
  current ??= createApp(process.env);
  return current;
}

/**
 * The process's app with its account directory at most a few seconds old: what every function invocation
 * starts with, so that an account created on another instance is known here too.
 */
export async function getFreshApp(): Promise<App> {
  const app = getApp();
  await app.directory.refreshIfStale();
  return app;
}

/** Installs the app the functions use (tests, the local host); undefined builds it again from the settings. */
export function setApp(app: App | undefined): void {
  current = app;
}

/** The app's logger, or the console when the app itself cannot be built (e.g. invalid configuration). */
export function appLogger(): Logger {
  try {
    return getApp().log;
  } catch {
    return consoleLogger;
  }
}

/** What the status page and the accounts JSON read. */
export function accountViewSources(app: App = getApp()): AccountViewSources {
  return {
    accounts: app.accounts,
    accountStatus: app.accountStatus,
    ledger: app.delivery.ledger,
    publicBaseUrl: app.publicBaseUrl,
  };
}

/**
 * For the JSON routes: when MAIL_ACCOUNTS is invalid, a 500 whose `reasons` name each bad field (what an admin
 * must fix), instead of a blank error; undefined when the app builds.
 */
export function configProblem(): { status: number; jsonBody: object; headers: Record<string, string> } | undefined {
  try {
    getApp();
    return undefined;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return {
      status: 500,
      jsonBody: { error: 'invalid_config', reasons: error.message },
      headers: { 'Cache-Control': 'no-store' },
    };
  }
}
