/**
 * A bench for the admin authorization on real components: Azurite (tables), the Key Vault double behind the
 * real SDK, and the local OpenID provider with a confidential client, PKCE, rotating refresh tokens and its
 * sign-in and consent pages. Installs an app (setApp) so that the functions' handlers can be called.
 *
 * It also keeps every secret the suite handles (client secrets, keys, tokens the provider issued, codes,
 * verifiers, cookie values) and every log line and page the app produced, for the final leak check.
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startAzurite } from '../../local/peers/azurite';
import {
  startIdentityProvider,
  type IdentityProvider,
  type TokenResponseHook,
} from '../../local/peers/identity/identityProvider';
import { parseAccounts, type Account } from '../../shared/config';
import { observeLogs, silentLogger } from '../../shared/log/logger';
import type { ManagedIdentityCredentialFactory } from '../../shared/oauth/clientAuth';
import { createApp, setApp, type App } from '../../shared/app';
import { createKeyVaultSecretStore } from '../../shared/storage/keyVaultSecretStore';
import { createTestCa, issueServerCert } from './certs';
import { FakeTokenCredential, startKeyVaultDouble, type KeyVaultDouble } from './keyVaultDouble';

export const ALICE = { id: 'user-alice', email: 'alice@contoso.test', name: 'Alice Sender', password: 'alice-Pa55!' };
export const BOB = { id: 'user-bob', email: 'bob@contoso.test', name: 'Bob Admin', password: 'bob-Pa55!' };

export const CLIENT_ID = 'outbox-app';
export const CLIENT_SECRET = 'outbox-client-secret-6f1d0c2b9a';
export const WRONG_CLIENT_SECRET = 'stale-client-secret-0000aaaa11';
export const MANAGED_IDENTITY_CLIENT_ID = '11111111-2222-4333-8444-555555555555';

const MAIL_SCOPE = 'https://outlook.office.com/SMTP.Send';

export interface AuthorizationBench {
  runtime: App;
  idp: IdentityProvider;
  vault: KeyVaultDouble;
  publicBaseUrl: string;
  accounts: Account[];
  /** Every secret value the suite used or obtained; none may appear in `outputs`. */
  secrets: Set<string>;
  /** Every log line and every page body the app produced. */
  outputs: string[];
  /** Scopes the managed identity credential was asked for, with the identity's client id. */
  managedIdentityRequests: Array<{ clientId: string | undefined; scopes: string[] }>;
  /** Writes to Key Vault and to the account status table so far: a refused callback adds none. */
  writes(): number;
  /** Replaces the provider's successful token responses (after they were recorded) until reset with undefined. */
  rewriteTokenResponses(hook?: TokenResponseHook): void;
  stop(): Promise<void>;
}

export async function startAuthorizationBench(publicBaseUrl: string): Promise<AuthorizationBench> {
  const redirectUri = `${publicBaseUrl}/api/oauth/callback`;
  const secrets = new Set<string>([CLIENT_SECRET, WRONG_CLIENT_SECRET]);
  const outputs: string[] = [];
  const stopObserving = observeLogs((_level, line) => outputs.push(line));

  // The certificate account: an EC key whose public half the provider knows, and its certificate's thumbprint.
  const ca = await createTestCa({ commonName: 'oauth-outbox client certificate CA' });
  const certificate = await issueServerCert(ca, ['outbox-client.test']);
  const thumbprint = createHash('sha1').update(new X509Certificate(certificate.cert).raw).digest('hex');
  const certificateJwk = { ...(await exportJWK(createPublicKey(certificate.key))), alg: 'ES256' };
  secrets.add(certificate.key);

  // The managed identity stands in for Entra's federated credential: the provider trusts its key for private_key_jwt.
  const identityKeys = await generateKeyPair('ES256', { extractable: true });
  const identityJwk = { ...(await exportJWK(identityKeys.publicKey)), alg: 'ES256' };

  const [azurite, vault] = await Promise.all([startAzurite(), startKeyVaultDouble()]);
  let idp: IdentityProvider | undefined;
  try {
    idp = await startIdentityProvider({
      clients: [
        { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, authMethod: 'client_secret_post', redirectUris: [redirectUri] },
        { clientId: 'cert-app', jwks: { keys: [certificateJwk] }, redirectUris: [redirectUri] },
        { clientId: 'mi-app', jwks: { keys: [identityJwk] }, grantTypes: ['client_credentials'] },
      ],
      users: [ALICE, BOB],
      appRoles: ['SMTP.SendAsApp'],
    });
    const provider = idp;

    let rewrite: TokenResponseHook | undefined;
    provider.onTokenResponse(async (body) => {
      for (const key of ['access_token', 'refresh_token', 'id_token']) {
        if (typeof body[key] === 'string') secrets.add(body[key] as string);
      }
      return rewrite ? rewrite(body) : body;
    });

    const managedIdentityRequests: AuthorizationBench['managedIdentityRequests'] = [];
    const tokenEndpoint = `${provider.issuer}/token`;
    const managedIdentity: ManagedIdentityCredentialFactory = (clientId) =>
      ({
        async getToken(scopes: string | string[]): Promise<AccessToken> {
          managedIdentityRequests.push({ clientId, scopes: [scopes].flat() });
          // What Entra would accept as a federated credential; the local provider accepts it as private_key_jwt.
          const token = await new SignJWT({ jti: crypto.randomUUID() })
            .setProtectedHeader({ alg: 'ES256' })
            .setIssuer('mi-app')
            .setSubject('mi-app')
            .setAudience(tokenEndpoint)
            .setIssuedAt()
            .setExpirationTime('5m')
            .sign(identityKeys.privateKey);
          secrets.add(token);
          return { token, expiresOnTimestamp: Date.now() + 5 * 60 * 1000 };
        },
      }) satisfies TokenCredential;

    const common = { provider: 'custom', smtp: { host: '127.0.0.1', port: 2525, security: 'plain' } } as const;
    const userScopes = ['openid', 'email', 'profile', 'offline_access', MAIL_SCOPE];
    const inputs = [
      {
        ...common,
        id: 'mailbox',
        displayName: 'Contoso notifications',
        clientId: CLIENT_ID,
        clientAuth: { type: 'secret', secretName: 'mailbox-client-secret' },
        user: ALICE.email,
        oauth: { issuer: provider.issuer, scopes: userScopes },
      },
      {
        ...common,
        id: 'stale-secret',
        clientId: CLIENT_ID,
        clientAuth: { type: 'secret', secretName: 'stale-client-secret' },
        user: ALICE.email,
        oauth: { issuer: provider.issuer, scopes: userScopes },
      },
      {
        ...common,
        id: 'no-offline',
        clientId: CLIENT_ID,
        clientAuth: { type: 'secret', secretName: 'mailbox-client-secret' },
        user: ALICE.email,
        oauth: { issuer: provider.issuer, scopes: ['openid', 'email', MAIL_SCOPE] },
      },
      {
        ...common,
        id: 'certificate',
        clientId: 'cert-app',
        clientAuth: { type: 'certificate', keySecretName: 'cert-app-key', thumbprint },
        user: ALICE.email,
        oauth: { issuer: provider.issuer, scopes: userScopes },
      },
      {
        ...common,
        id: 'app-only',
        flow: 'client_credentials',
        clientId: 'mi-app',
        clientAuth: {
          type: 'managed_identity',
          identityClientId: MANAGED_IDENTITY_CLIENT_ID,
          audience: 'api://AzureADTokenExchange',
        },
        user: 'robot@contoso.test',
        oauth: { issuer: provider.issuer, scopes: ['https://outlook.office365.com/.default'] },
      },
    ];
    // Custom providers carry no app-only expectation; this one stands in for Microsoft, so it gets Microsoft's.
    const accounts = parseAccounts(inputs).map((account) =>
      account.id === 'app-only'
        ? {
            ...account,
            oauth: { ...account.oauth, appOnlyToken: { audience: 'https://outlook.office365.com', role: 'SMTP.SendAsApp' } },
          }
        : account,
    );

    const env = {
      MailStorage: azurite.connectionString,
      KEY_VAULT_URL: vault.url,
      KEY_VAULT_DISABLE_CHALLENGE_VERIFICATION: 'true',
      PUBLIC_BASE_URL: publicBaseUrl,
    };
    const store = createKeyVaultSecretStore(env, {
      credential: new FakeTokenCredential(),
      clientOptions: { tlsOptions: { ca: vault.caPem }, retryOptions: { maxRetries: 0 } },
    });
    const runtime = createApp(env, { secrets: store, accounts, log: silentLogger, managedIdentityCredential: managedIdentity });
    await runtime.storage.ensureCreated();
    let statusWrites = 0;
    const patch = runtime.accountStatus.patch.bind(runtime.accountStatus);
    runtime.accountStatus.patch = (accountId, fields) => {
      statusWrites += 1;
      return patch(accountId, fields);
    };
    vault.seed('mailbox-client-secret', CLIENT_SECRET);
    vault.seed('stale-client-secret', WRONG_CLIENT_SECRET);
    vault.seed('cert-app-key', `${certificate.key}\n${certificate.cert}`);
    setApp(runtime);

    return {
      runtime,
      idp: provider,
      vault,
      writes: () => vault.writes + statusWrites,
      publicBaseUrl,
      accounts,
      secrets,
      outputs,
      managedIdentityRequests,
      rewriteTokenResponses(hook) {
        rewrite = hook;
      },
      async stop() {
        setApp(undefined);
        stopObserving();
        await Promise.allSettled([provider.stop(), vault.stop(), azurite.stop()]);
      },
    };
  } catch (error) {
    stopObserving();
    await Promise.allSettled([idp?.stop(), vault.stop(), azurite.stop()]);
    throw error;
  }
}

/** The secret-looking parts of a value worth searching for: the whole value and, for PEM, its base64 lines. */
export function searchableParts(secret: string): string[] {
  if (!secret.includes('-----BEGIN')) return [secret];
  return secret
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 40 && !line.startsWith('-----'));
}
