import { RestError, type ContainerClient } from '@azure/storage-blob';
import { MessageError } from '../errors';
import { CONTAINERS } from '../names';

/** Claim-check attachments: the queue message names a blob in `mail-attachments`; we read it at send time. */
export async function readAttachmentBlob(container: ContainerClient, ref: string, maxBytes: number): Promise<Buffer> {
  const prefix = `${CONTAINERS.attachments}/`;
  const name = ref.slice(prefix.length);
  const blob = container.getBlobClient(name);
  try {
    const properties = await blob.getProperties();
    if ((properties.contentLength ?? 0) > maxBytes)
      throw new MessageError(
        'too_large',
        `The attachment blob "${ref}" is ${properties.contentLength} bytes; the limit is ${maxBytes}.`,
      );
    return await blob.downloadToBuffer();
  } catch (error) {
    if (error instanceof RestError && error.statusCode === 404)
      throw new MessageError(
        'attachment_missing',
        `The attachment blob "${ref}" does not exist (upload it before enqueueing the message).`,
      );
    throw error;
  }
}
