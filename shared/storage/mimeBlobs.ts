import { RestError, type ContainerClient } from '@azure/storage-blob';
import { MessageError } from '../errors';
import { CONTAINERS } from '../names';

/**
 * A finished MIME message named by `mime.blob` (`mail-mime/<path>`, checked by the schema). Its size is checked
 * against the account's limit from the blob's properties, before a byte is read.
 */
export async function readMimeBlob(
  container: ContainerClient,
  ref: string,
  limit: { maxBytes: number; tooLarge: (bytes: number) => string },
): Promise<Buffer> {
  const name = ref.slice(`${CONTAINERS.mime}/`.length);
  const blob = container.getBlobClient(name);
  try {
    const properties = await blob.getProperties();
    const size = properties.contentLength ?? 0;
    if (size > limit.maxBytes) throw new MessageError('too_large', limit.tooLarge(size));
    return await blob.downloadToBuffer();
  } catch (error) {
    if (error instanceof RestError && error.statusCode === 404)
      throw new MessageError(
        'attachment_missing',
        `The MIME blob "${ref}" does not exist (upload it before enqueueing the message).`,
      );
    throw error;
  }
}
