import { TableClient, TableServiceClient } from '@azure/data-tables';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { ConfigError } from '../errors';
import { CONTAINERS, QUEUES, RELAY_CONTAINERS, STORAGE_CONNECTION, TABLES } from '../names';
import { readSetting, type Env } from '../settings';

/** Clients for the queues, tables and blob container of the mail storage account, from the `MailStorage` connection. */
export interface StorageClients {
  queue(name: string): QueueClient;
  table(name: string): TableClient;
  container(name: string): ContainerClient;
  /** Creates every queue, table and container (local development; infra/ creates them in Azure). */
  ensureCreated(): Promise<void>;
  readonly usesConnectionString: boolean;
}

export function createStorageClients(env: Env, connection = STORAGE_CONNECTION): StorageClients {
  const connectionString = readSetting(env, connection);
  let queues: QueueServiceClient;
  let blobs: BlobServiceClient;
  let tableFor: (name: string) => TableClient;
  let tableService: TableServiceClient;
  if (connectionString) {
    const insecure = /DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true|=http:\/\//i.test(connectionString);
    queues = QueueServiceClient.fromConnectionString(connectionString);
    blobs = BlobServiceClient.fromConnectionString(connectionString);
    tableFor = (name) => TableClient.fromConnectionString(connectionString, name, { allowInsecureConnection: insecure });
    tableService = TableServiceClient.fromConnectionString(connectionString, { allowInsecureConnection: insecure });
  } else {
    const queueUri = readSetting(env, `${connection}__queueServiceUri`);
    const tableUri = readSetting(env, `${connection}__tableServiceUri`);
    const blobUri = readSetting(env, `${connection}__blobServiceUri`);
    if (!queueUri || !tableUri || !blobUri)
      throw new ConfigError(
        `Storage is not configured: set ${connection} (a connection string) or ${connection}__queueServiceUri, __tableServiceUri and __blobServiceUri.`,
      );
    const credential = storageCredential(env, connection);
    queues = new QueueServiceClient(queueUri, credential);
    blobs = new BlobServiceClient(blobUri, credential);
    tableFor = (name) => new TableClient(tableUri, name, credential);
    tableService = new TableServiceClient(tableUri, credential);
  }
  const tableCache = new Map<string, TableClient>();
  return {
    usesConnectionString: Boolean(connectionString),
    queue: (name) => queues.getQueueClient(name),
    table: (name) => {
      let client = tableCache.get(name);
      if (!client) tableCache.set(name, (client = tableFor(name)));
      return client;
    },
    container: (name) => blobs.getContainerClient(name),
    async ensureCreated() {
      await Promise.all([
        ...Object.values(QUEUES).map((name) => queues.getQueueClient(name).createIfNotExists()),
        ...Object.values(TABLES).map((name) => tableService.createTable(name)),
        ...[...Object.values(CONTAINERS), ...Object.values(RELAY_CONTAINERS)].map((name) =>
          blobs.getContainerClient(name).createIfNotExists(),
        ),
      ]);
    },
  };
}

function storageCredential(env: Env, connection: string): TokenCredential {
  const clientId = readSetting(env, `${connection}__clientId`) ?? readSetting(env, 'AZURE_CLIENT_ID');
  const kind = readSetting(env, `${connection}__credential`);
  if (kind === 'managedidentity') return clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
  return new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
}
