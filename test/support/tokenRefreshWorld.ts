/**
 * Accounts whose tokens are refreshed against the real local identity provider and kept in the Key Vault double
 * through the real @azure/keyvault-secrets client, with the app built as in Azure (createApp). For the tests of
 * Key Vault writes per refresh and for the bench's p7 section.
 *
 * Accounts are "custom" ones with the provider's rotation stated, and are granted without the sign-in pages
 * (IdentityProvider.grantRefreshToken): thousands of them take seconds, not an hour of logins.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { startIdentityProvider, type IdentityProvider } from '../../local/peers/identity/identityProvider';
import { closeApp, createApp, type App } from '../../shared/app';
import type { RefreshTokenRotation } from '../../shared/config/presets';
import { parseAccounts } from '../../shared/config/loadAccounts';
import { createLogger } from '../../shared/log/logger';
import { KeyVaultSecretStore } from '../../shared/storage/keyVaultSecretStore';
import { ACCESS_TOKEN_KEY_SECRET } from '../../shared/tokens/accessTokenKey';
import { refreshDueAccounts, type RefreshRunClock, type RefreshRunResult } from '../../shared/tokens/refreshDueAccounts';
import { refreshTokenSecretName } from '../../shared/tokens/tokenStore';
import { FakeTokenCredential, type KeyVaultDouble } from './keyVaultDouble';

const CLIENT_ID = 'outbox-app';
const CLIENT_SECRET = 'refresh-world-client-secret-7f31';
const CLIENT_SECRET_NAME = 'outbox-app-client-secret';
const USER = { id: 'user-many', email: 'many@contoso.test', password: 'many-Pa55!' };
const SCOPE = 'openid email offline_access';

export interface TokenRefreshWorld {
  idp: IdentityProvider;
  app: App;
  accountIds: string[];
  /** Builds another instance of the app on the same storage and vault (a cold instance). */
  newInstance(): App;
  /** One run of the refresh timer's work on `app` (or the given instance). */
  run(options?: { clock?: RefreshRunClock; maxInFlight?: number; instance?: App }): Promise<RefreshRunResult[]>;
  refreshGrants(): number;
  stop(): Promise<void>;
}

export async function startTokenRefreshWorld(options: {
  connectionString: string;
  vault: KeyVaultDouble;
  rotation: RefreshTokenRotation;
  accounts: number;
  /** Access token lifetime at the provider (default 60 s: every hourly run finds them due). */
  accessTokenTtlSeconds?: number;
  env?: Record<string, string>;
  /** Prefix of the account ids (default: a random one, so that worlds on one Azurite do not meet). */
  prefix?: string;
}): Promise<TokenRefreshWorld> {
  const { vault } = options;
  const idp = await startIdentityProvider({
    clients: [
      {
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        authMethod: 'client_secret_post',
        redirectUris: ['http://127.0.0.1:7071/api/oauth/callback'],
      },
    ],
    users: [USER],
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 60,
    refreshTokenRotation: options.rotation,
  });
  const prefix = options.prefix ?? `w${randomUUID().slice(0, 6)}`;
  const accountIds = Array.from({ length: options.accounts }, (_, i) => `${prefix}-${i}`);
  const accounts = parseAccounts(
    accountIds.map((id) => ({
      id,
      provider: 'custom',
      clientId: CLIENT_ID,
      clientAuth: { type: 'secret', secretName: CLIENT_SECRET_NAME },
      user: USER.email,
      oauth: { issuer: idp.issuer, scopes: SCOPE.split(' '), refreshTokenRotation: options.rotation },
      smtp: { host: '127.0.0.1', port: 9, security: 'plain' },
      tokenMinLifetimeSeconds: 0,
    })),
  );
  const logs: string[] = [];
  const env = { MailStorage: options.connectionString, PUBLIC_BASE_URL: 'http://127.0.0.1:7071', ...options.env };
  const newInstance = () =>
    createApp(env, {
      accounts,
      // No SDK retries: a 429 reaches the app, which is what is under test (in Azure the SDK retries it first).
      secrets: new KeyVaultSecretStore(vault.url, new FakeTokenCredential(), {
        disableChallengeResourceVerification: true,
        clientOptions: { tlsOptions: { ca: vault.caPem }, retryOptions: { maxRetries: 0 } },
      }),
      log: createLogger((_level, line) => {
        if (logs.length < 1000) logs.push(line);
      }),
      instanceId: `world-${randomUUID().slice(0, 8)}`,
    });
  const app = newInstance();
  await app.storage.ensureCreated();
  // Seeded beside HTTP: the setup is not what the tests and the bench count. The sealing key is there as in any
  // deployment past its first authorization.
  vault.seed(CLIENT_SECRET_NAME, CLIENT_SECRET);
  if (!vault.secret(ACCESS_TOKEN_KEY_SECRET)) vault.seed(ACCESS_TOKEN_KEY_SECRET, randomBytes(32).toString('base64'));
  for (let i = 0; i < accountIds.length; i += 50) {
    await Promise.all(
      accountIds.slice(i, i + 50).map(async (id) => {
        const refreshToken = await idp.grantRefreshToken({ userId: USER.id, clientId: CLIENT_ID, scope: SCOPE });
        vault.seed(refreshTokenSecretName(id), refreshToken, { contentType: 'oauth-refresh-token' });
      }),
    );
  }
  const instances = [app];
  return {
    idp,
    app,
    accountIds,
    newInstance() {
      const instance = newInstance();
      instances.push(instance);
      return instance;
    },
    run: ({ instance, ...options } = {}) => refreshDueAccounts(instance ?? app, new Date(), options),
    refreshGrants: () => idp.counters.tokenRequestsByGrant.refresh_token ?? 0,
    async stop() {
      for (const instance of instances) await closeApp(instance);
      await idp.stop();
    },
  };
}

/**
 * A clock of its own: time moves only when the run sleeps, and a sleep passes at once but is remembered, so a
 * run's spreading is seen without waiting it out.
 */
export function recordingClock(): RefreshRunClock & { sleeps: number[]; elapsed(): number } {
  const start = Date.now();
  let skipped = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => start + skipped,
    async sleep(ms) {
      sleeps.push(ms);
      skipped += ms;
    },
    elapsed: () => skipped,
  };
}
