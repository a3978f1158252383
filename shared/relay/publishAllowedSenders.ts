import type { BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import type { AccountStatusTable } from '../accounts/accountStatusTable';
import { ALLOWED_SENDERS_BLOB, buildAllowedSenders, type PublishableAccount } from './allowedSenders';

export interface PublishSources {
  /** Every usable account with its administrative state (AccountDirectory.entries). */
  accounts: readonly PublishableAccount[];
  accountStatus: AccountStatusTable;
  /** Container `relay-senders`. */
  container: ContainerClient;
}

/** How often a write that lost to another publisher looks again before giving up (the next publication follows). */
const MAX_TRIES = 3;

/**
 * Writes the allowed-senders document from the configuration and the status rows as they are now (one table
 * read, one blob write). Called by the refresh timer on every run, when an account stops or is authorized
 * again, and after every change on the admin page; returns the number of accounts published.
 *
 * Instances publish concurrently, so the write is conditional: it replaces only the document it read, and only
 * when that one was built earlier (its time is in the blob's metadata). A slow publication of older states can
 * therefore not land over a newer one. `now` is taken after the status rows were read, unless given (tests).
 */
export async function publishAllowedSenders(sources: PublishSources, now?: Date): Promise<number> {
  const statuses = await sources.accountStatus.list();
  const document = buildAllowedSenders(sources.accounts, statuses, now ?? new Date());
  const count = Object.keys(document.accounts).length;
  const body = JSON.stringify(document, null, 1);
  const blob = sources.container.getBlockBlobClient(ALLOWED_SENDERS_BLOB);
  for (let tries = 0; tries < MAX_TRIES; tries++) {
    const current = await publishedNow(blob);
    if (current === 'no_container') {
      // A deployment from before the relay had this container: the app's identity may create it.
      await sources.container.createIfNotExists();
      continue;
    }
    if (current?.publishedAt && current.publishedAt >= document.publishedAt) return count;
    try {
      await blob.upload(body, Buffer.byteLength(body), {
        blobHTTPHeaders: { blobContentType: 'application/json', blobCacheControl: 'no-cache' },
        metadata: { publishedat: document.publishedAt },
        conditions: current ? { ifMatch: current.etag } : { ifNoneMatch: '*' },
      });
      return count;
    } catch (error) {
      // Another publisher wrote in between: read again and decide again.
      if (!isStatus(error, 409) && !isStatus(error, 412)) throw error;
    }
  }
  throw new Error(`${ALLOWED_SENDERS_BLOB} kept changing while it was published; the next publication writes it.`);
}

/** The document's ETag and build time (none for one written before the time was kept), or why there is none. */
async function publishedNow(
  blob: BlockBlobClient,
): Promise<{ etag: string; publishedAt: string | undefined } | undefined | 'no_container'> {
  try {
    const properties = await blob.getProperties();
    return { etag: properties.etag ?? '', publishedAt: properties.metadata?.publishedat };
  } catch (error) {
    if (!isStatus(error, 404)) throw error;
    return (error as { details?: { errorCode?: string } }).details?.errorCode === 'ContainerNotFound'
      ? 'no_container'
      : undefined;
  }
}

const isStatus = (error: unknown, status: number) => (error as { statusCode?: number }).statusCode === status;
