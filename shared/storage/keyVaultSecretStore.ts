import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import { readSetting, type Env } from '../settings';
import {
  assertSecretName,
  assertSecretWrite,
  SecretStoreError,
  type SecretSetOptions,
  type SecretStore,
  type SecretVersion,
} from './secretStore';

export interface KeyVaultSecretStoreOptions {
  /** Needed only for a vault that is not at *.vault.azure.net (the test double). */
  disableChallengeResourceVerification?: boolean;
  /** Passed to SecretClient, e.g. `tlsOptions: { ca }` or `retryOptions` in tests. */
  clientOptions?: Omit<SecretClientOptions, 'disableChallengeResourceVerification'>;
}

export class KeyVaultSecretStore implements SecretStore {
  private readonly client: SecretClient;

  constructor(
    vaultUrl: string,
    /** The credential the store authenticates with (readable, so that the one built from the settings can be checked). */
    readonly credential: TokenCredential,
    options: KeyVaultSecretStoreOptions = {},
  ) {
    this.client = new SecretClient(vaultUrl, credential, {
      ...options.clientOptions,
      disableChallengeResourceVerification: options.disableChallengeResourceVerification ?? false,
    });
  }

  async get(name: string): Promise<string | undefined> {
    return (await this.read(name))?.value;
  }

  async read(name: string): Promise<SecretVersion | undefined> {
    assertSecretName(name);
    try {
      const secret = await this.client.getSecret(name);
      if (secret.properties.enabled === false || secret.value === undefined) return undefined;
      const writtenAt = secret.properties.createdOn ?? secret.properties.updatedOn;
      return { value: secret.value, ...(writtenAt ? { writtenAt } : {}) };
    } catch (error) {
      if (isNotFound(error) || isDisabled(error)) return undefined;
      throw toStoreError('get', name, error);
    }
  }

  /** Deletes the secret (soft delete: recoverable for the vault's retention period); a missing one is fine. */
  async delete(name: string): Promise<void> {
    assertSecretName(name);
    try {
      // The delete request goes out when the operation begins; waiting for it to finish is not needed here.
      await this.client.beginDeleteSecret(name);
    } catch (error) {
      if (isNotFound(error)) return;
      throw toStoreError('delete', name, error);
    }
  }

  async set(name: string, value: string, options: SecretSetOptions = {}): Promise<void> {
    assertSecretWrite(name, value, options);
    try {
      await this.client.setSecret(name, value, { contentType: options.contentType, tags: options.tags });
    } catch (error) {
      throw toStoreError('set', name, error, value);
    }
  }
}

export interface KeyVaultStoreOverrides {
  /** Instead of the managed identity / DefaultAzureCredential chosen from the settings. */
  credential?: TokenCredential;
  clientOptions?: KeyVaultSecretStoreOptions['clientOptions'];
}

/**
 * Builds the store from app settings: KEY_VAULT_URL, AZURE_CLIENT_ID (user-assigned managed identity; without it
 * DefaultAzureCredential, which reads process.env itself) and KEY_VAULT_DISABLE_CHALLENGE_VERIFICATION.
 */
export function createKeyVaultSecretStore(env: Env, overrides: KeyVaultStoreOverrides = {}): KeyVaultSecretStore {
  const vaultUrl = readSetting(env, 'KEY_VAULT_URL');
  if (vaultUrl === undefined) throw new Error('KEY_VAULT_URL is not set.');
  let parsed: URL;
  try {
    parsed = new URL(vaultUrl);
  } catch {
    throw new Error('KEY_VAULT_URL is not a valid URL.');
  }
  if (parsed.protocol !== 'https:') throw new Error('KEY_VAULT_URL must be an https:// URL.');

  const clientId = readSetting(env, 'AZURE_CLIENT_ID');
  const credential =
    overrides.credential ?? (clientId !== undefined ? new ManagedIdentityCredential({ clientId }) : new DefaultAzureCredential());
  const disableVerification = readSetting(env, 'KEY_VAULT_DISABLE_CHALLENGE_VERIFICATION')?.toLowerCase() === 'true';
  return new KeyVaultSecretStore(vaultUrl, credential, {
    disableChallengeResourceVerification: disableVerification,
    clientOptions: overrides.clientOptions,
  });
}

interface ServiceErrorShape {
  statusCode?: unknown;
  code?: unknown;
  message?: unknown;
  details?: { error?: { code?: unknown; innerError?: { code?: unknown } } };
  response?: { headers?: { get?: (name: string) => string | undefined } };
}

function asServiceError(error: unknown): ServiceErrorShape {
  return typeof error === 'object' && error !== null ? (error as ServiceErrorShape) : {};
}

// Only the service's own answer: a bare 404 (say, from a wrong URL) must not read as "no token stored".
function isNotFound(error: unknown): boolean {
  const { statusCode, code } = asServiceError(error);
  return statusCode === 404 && code === 'SecretNotFound';
}

// Key Vault answers a get on a disabled secret with 403 Forbidden, inner error code SecretDisabled.
function isDisabled(error: unknown): boolean {
  const { statusCode, details } = asServiceError(error);
  return statusCode === 403 && details?.error?.innerError?.code === 'SecretDisabled';
}

// A new Error rather than the SDK's RestError: that one keeps the request, whose body holds the value on a set.
function toStoreError(operation: 'get' | 'set' | 'delete', name: string, error: unknown, value?: string): SecretStoreError {
  const { statusCode, code, message, response } = asServiceError(error);
  const status = typeof statusCode === 'number' ? statusCode : undefined;
  const errorCode = typeof code === 'string' ? code : undefined;
  let detail = typeof message === 'string' && message !== '' ? message : String(error);
  if (value !== undefined && value.length >= 4) detail = detail.split(value).join('[redacted]');
  const prefix = [status, errorCode].filter((part) => part !== undefined).join(' ');
  return new SecretStoreError(
    `Key Vault ${operation} of secret "${name}" failed${prefix === '' ? '' : ` (${prefix})`}: ${detail}`,
    operation,
    name,
    status,
    errorCode,
    status === 429 ? retryAfterMs(response?.headers?.get?.('retry-after')) : undefined,
  );
}

/** Retry-After in seconds or as an HTTP date; Key Vault sends seconds. Without one, a second, as its guidance says. */
function retryAfterMs(header: string | undefined): number {
  if (header === undefined) return 1000;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? 1000 : Math.max(0, date - Date.now());
}
