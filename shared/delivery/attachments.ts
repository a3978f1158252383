import type { ContainerClient } from '@azure/storage-blob';
import type { Account } from '../config/account';
import type { JsonMailMessage } from '../message/messageSchema';
import { readAttachmentBlob } from '../storage/attachmentBlobs';
import type { LoadedAttachment } from './composeMail';

/** The message's attachments as bytes: inline base64, or read from blob container `mail-attachments` (claim-check). */
export async function loadAttachments(
  container: ContainerClient,
  account: Account,
  message: JsonMailMessage,
): Promise<LoadedAttachment[]> {
  const out: LoadedAttachment[] = [];
  for (const attachment of message.attachments ?? []) {
    const content =
      'blob' in attachment
        ? await readAttachmentBlob(container, attachment.blob, account.limits.maxMessageBytes)
        : Buffer.from(attachment.contentBase64, 'base64');
    out.push({
      filename: attachment.filename,
      content,
      ...(attachment.contentType ? { contentType: attachment.contentType } : {}),
      ...(attachment.contentId ? { contentId: attachment.contentId } : {}),
    });
  }
  return out;
}
