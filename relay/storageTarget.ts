/**
 * Where the relay writes: the `mail-mime` container and the `mail-outbox` queue, and its device report in
 * `relay-activity`; what it reads: the allowed-senders document in `relay-senders`. Reached with a connection
 * string (Azurite) or the service URLs and an Entra identity (`@azure/identity`). There is no SAS option: the
 * deployment turns shared keys off, and a SAS is signed with one.
 */
import { readFileSync } from 'node:fs';
import {
  ClientCertificateCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { ConfigError } from '../shared/errors';
import { CONTAINERS, QUEUES, RELAY_CONTAINERS } from '../shared/names';
import type { CredentialConfig, StorageConfig } from './config';

export interface StorageTarget {
  container: ContainerClient;
  queue: QueueClient;
  /** `relay-senders`: read only. */
  senders: ContainerClient;
  /** `relay-activity`: this relay's report of its devices. */
  activity: ContainerClient;
  /** For logs: the account, never a key or a SAS token. */
  describe: string;
  /** The Entra identity, when one is used: startRelay asks it for a token once, to report a bad setup early. */
  credential?: TokenCredential;
}

/**
 * A device waits for the reply after its final dot, so a write must fail in seconds, not minutes: three tries
 * with short pauses. Each request carries at most one block (4 MiB), hence a fixed per-try timeout.
 */
export function storagePipelineOptions(config: StorageConfig) {
  return {
    retryOptions: {
      maxTries: 3,
      retryDelayInMs: 200,
      maxRetryDelayInMs: 2_000,
      tryTimeoutInMs: (config.requestTimeoutSeconds ?? 60) * 1000,
    },
    userAgentOptions: { userAgentPrefix: 'oauth-outbox-relay' },
  };
}

export function createStorageTarget(config: StorageConfig): StorageTarget {
  const options = storagePipelineOptions(config);
  let blobs: BlobServiceClient;
  let queues: QueueServiceClient;
  let describe: string;
  if ('connectionString' in config) {
    blobs = BlobServiceClient.fromConnectionString(config.connectionString, options);
    queues = QueueServiceClient.fromConnectionString(config.connectionString, options);
    describe = `account ${blobs.accountName} (connection string)`;
  } else {
    const credential = tokenCredential(config.credential);
    blobs = new BlobServiceClient(config.blobServiceUrl, credential, options);
    queues = new QueueServiceClient(config.queueServiceUrl, credential, options);
    describe = `${new URL(config.blobServiceUrl).host} (${config.credential.type})`;
    return { ...clients(blobs, queues), describe, credential };
  }
  return { ...clients(blobs, queues), describe };
}

function clients(blobs: BlobServiceClient, queues: QueueServiceClient) {
  return {
    container: blobs.getContainerClient(CONTAINERS.mime),
    queue: queues.getQueueClient(QUEUES.outbox),
    senders: blobs.getContainerClient(RELAY_CONTAINERS.senders),
    activity: blobs.getContainerClient(RELAY_CONTAINERS.activity),
  };
}

function tokenCredential(config: CredentialConfig): TokenCredential {
  switch (config.type) {
    case 'clientCertificate': {
      let pem: string;
      try {
        pem = readFileSync(config.certificateFile, 'utf8');
      } catch (error) {
        throw new ConfigError(`storage.credential.certificateFile: cannot read it: ${(error as Error).message}`);
      }
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem) || !pem.includes('-----BEGIN CERTIFICATE-----'))
        throw new ConfigError('storage.credential.certificateFile: must be a PEM file with the private key and the certificate');
      return new ClientCertificateCredential(config.tenantId, config.clientId, { certificate: pem });
    }
    case 'workloadIdentity':
      try {
        return new WorkloadIdentityCredential({
          ...(config.tenantId ? { tenantId: config.tenantId } : {}),
          ...(config.clientId ? { clientId: config.clientId } : {}),
          ...(config.tokenFile ? { tokenFilePath: config.tokenFile } : {}),
        });
      } catch (error) {
        throw new ConfigError(
          `storage.credential: workload identity is not set up (${(error as Error).message.split('\n')[0]}); set tenantId, clientId and tokenFile, or the AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE the webhook provides`,
        );
      }
    case 'managedIdentity':
      return config.clientId ? new ManagedIdentityCredential({ clientId: config.clientId }) : new ManagedIdentityCredential();
    case 'default':
      return new DefaultAzureCredential();
  }
}
