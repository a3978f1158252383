import { resolve } from 'node:path';
import { readSetting, type Env } from '../settings';
import { FileSecretStore } from './fileSecretStore';
import { createKeyVaultSecretStore, type KeyVaultStoreOverrides } from './keyVaultSecretStore';
import type { SecretStore } from './secretStore';

/** Key Vault when KEY_VAULT_URL is set, else the JSON file at LOCAL_SECRETS_FILE. */
export function createSecretStore(env: Env, keyVaultOverrides?: KeyVaultStoreOverrides): SecretStore {
  if (readSetting(env, 'KEY_VAULT_URL') !== undefined) return createKeyVaultSecretStore(env, keyVaultOverrides);
  const file = readSetting(env, 'LOCAL_SECRETS_FILE');
  if (file !== undefined) return new FileSecretStore(resolve(file));
  throw new Error(
    'No secret store configured: set KEY_VAULT_URL (Azure Key Vault) or, for local development, LOCAL_SECRETS_FILE (path of a JSON file).',
  );
}
