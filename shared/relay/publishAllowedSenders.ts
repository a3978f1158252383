import type { ContainerClient } from '@azure/storage-blob';
import type { AccountStatusTable } from '../accounts/accountStatusTable';
import { ALLOWED_SENDERS_BLOB, buildAllowedSenders, type PublishableAccount } from './allowedSenders';

export interface PublishSources {
  /** Every usable account with its administrative state (AccountDirectory.entries). */
  accounts: readonly PublishableAccount[];
  accountStatus: AccountStatusTable;
  /** Container `relay-senders`. */
  container: ContainerClient;
}

/**
 * Writes the allowed-senders document from the configuration and the status rows as they are now (one table
 * read, one blob write). Called by the refresh timer on every run, when an account stops or is authorized
 * again, and after every change on the admin page; returns the number of accounts published.
 */
export async function publishAllowedSenders(sources: PublishSources, now = new Date()): Promise<number> {
  const document = buildAllowedSenders(sources.accounts, await sources.accountStatus.list(), now);
  const body = JSON.stringify(document, null, 1);
  const upload = () =>
    sources.container.getBlockBlobClient(ALLOWED_SENDERS_BLOB).upload(body, Buffer.byteLength(body), {
      blobHTTPHeaders: { blobContentType: 'application/json', blobCacheControl: 'no-cache' },
    });
  try {
    await upload();
  } catch (error) {
    // A deployment from before the relay had this container: the app's identity may create it.
    if ((error as { code?: string }).code !== 'ContainerNotFound') throw error;
    await sources.container.createIfNotExists();
    await upload();
  }
  return Object.keys(document.accounts).length;
}
