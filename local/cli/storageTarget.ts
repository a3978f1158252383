/**
 * Which storage account the command-line tools talk to: the local stack's Azurite by default, or an Azure
 * storage account by connection string or by name (signed in with DefaultAzureCredential: `az login`).
 */
import { ConfigError } from '../../shared/errors';
import { STORAGE_CONNECTION } from '../../shared/names';
import { readSetting, type Env } from '../../shared/settings';
import { createStorageClients, type StorageClients } from '../../shared/storage/storageClients';
import { devConnectionString } from '../peers/azurite';
import { readLocalConfig } from '../localConfig';

export const STORAGE_OPTIONS = {
  'connection-string': { type: 'string' },
  'storage-account': { type: 'string' },
} as const;

export const STORAGE_USAGE = `Storage (default: the local stack's Azurite, or the MailStorage environment variable):
  --connection-string <text>   a storage connection string
  --storage-account <name>     an Azure storage account, signed in as you (az login; needs the Storage Queue/Table/Blob Data roles)`;

export interface StorageTarget {
  storage: StorageClients;
  /** For messages: "local Azurite", "storage account x", ... (never the key). */
  description: string;
  isLocal: boolean;
}

export function storageTarget(
  values: { 'connection-string'?: string; 'storage-account'?: string },
  env: Env = process.env,
): StorageTarget {
  const account = values['storage-account'];
  if (values['connection-string'] && account)
    throw new ConfigError('Give either --connection-string or --storage-account, not both.');
  if (account) {
    if (!/^[a-z0-9]{3,24}$/.test(account))
      throw new ConfigError(`"${account}" is not a storage account name (3-24 lowercase letters and digits).`);
    const endpoints: Env = Object.fromEntries(
      ['queue', 'table', 'blob'].map((kind) => [
        `${STORAGE_CONNECTION}__${kind}ServiceUri`,
        `https://${account}.${kind}.core.windows.net`,
      ]),
    );
    return { storage: createStorageClients(endpoints), description: `storage account ${account}`, isLocal: false };
  }
  const explicit = values['connection-string'] ?? readSetting(env, STORAGE_CONNECTION);
  if (explicit) {
    const local = /UseDevelopmentStorage=true|127\.0\.0\.1|localhost/i.test(explicit);
    const name = /AccountName=([^;]+)/i.exec(explicit)?.[1];
    return {
      storage: createStorageClients({ [STORAGE_CONNECTION]: explicit }),
      description: local ? 'local Azurite' : `storage account ${name ?? '(from the connection string)'}`,
      isLocal: local,
    };
  }
  const { host, ports } = readLocalConfig(env);
  const connection = devConnectionString(host, { blobPort: ports.blob, queuePort: ports.queue, tablePort: ports.table });
  return { storage: createStorageClients({ [STORAGE_CONNECTION]: connection }), description: 'local Azurite', isLocal: true };
}

/** Turns "connection refused" against Azurite into the hint a person needs. */
export function explainStorageError(error: unknown, target: StorageTarget): string {
  const text = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  if (target.isLocal && (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(text)))
    return `Cannot reach ${target.description}: is the local stack running (npm start)?`;
  return `${target.description}: ${text}`;
}
