import type { ContainerClient } from '@azure/storage-blob';
import addressparser from 'nodemailer/lib/addressparser';
import type { Account } from '../config/account';
import { MessageError } from '../errors';
import type { MimeMailMessage } from '../message/messageSchema';
import { readMimeBlob } from '../storage/mimeBlobs';
import { checkRecipientCount, checkSender, megabytes, type ComposedMail } from './composeMail';
import { decodeEncodedWords, fieldValues, headerFields, withoutBcc } from '../message/mimeHeaders';

/**
 * A finished MIME message (`mime.blob`), checked like a JSON message and sent byte for byte: the recipient
 * and size limits, the sender rule for the From and Sender headers and the envelope sender. The envelope's
 * recipients are the authority; a Bcc header is cut from the header block, nothing else changes.
 */
export async function composeMimeMail(
  container: ContainerClient,
  account: Account,
  message: MimeMailMessage,
): Promise<ComposedMail> {
  const { blob, envelope } = message.mime;
  checkRecipientCount(account, envelope.to.length);
  const raw = await readMimeBlob(container, blob, {
    maxBytes: account.limits.maxMessageBytes,
    tooLarge: (bytes) =>
      `The MIME message "${blob}" is ${megabytes(bytes)} MB; account "${account.id}" accepts at most ${megabytes(account.limits.maxMessageBytes)} MB.`,
  });
  const fields = headerFields(raw);

  const from = addressesOf(fieldValues(raw, fields, 'from'));
  if (from.length === 0)
    throw new MessageError('invalid_message', `The MIME message "${blob}" has no From header with an address.`);
  for (const address of from) checkSender(account, 'From', address);
  for (const address of addressesOf(fieldValues(raw, fields, 'sender'))) checkSender(account, 'Sender', address);
  checkSender(account, 'Envelope sender', envelope.from);

  const subject = fieldValues(raw, fields, 'subject')[0];
  const messageId = /<[^<>\s]+>/.exec(fieldValues(raw, fields, 'message-id')[0] ?? '')?.[0];
  return {
    options: {
      envelope: { from: envelope.from, to: [...envelope.to] },
      raw: withoutBcc(raw, fields),
      disableFileAccess: true,
      disableUrlAccess: true,
    },
    recipients: envelope.to.length,
    from: envelope.from,
    ...(messageId ? { messageId } : {}),
    ...(subject !== undefined ? { subject: decodeEncodedWords(subject).replace(/\s+/g, ' ').trim().slice(0, 200) } : {}),
  };
}

function addressesOf(values: string[]): string[] {
  return values
    .flatMap((value) => addressparser(decodeEncodedWords(value), { flatten: true }).map((a) => a.address))
    .filter(Boolean);
}
