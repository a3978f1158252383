import { createHash } from 'node:crypto';
import type Mail from 'nodemailer/lib/mailer';
import type { Account } from '../config';
import { MessageError } from '../errors';
import { envelopeAddress } from '../message/mailAddress';
import { addressOf, parseAddress, type Address, type JsonMailMessage } from '../message/messageSchema';

export interface LoadedAttachment {
  filename: string;
  contentType?: string;
  contentId?: string;
  content: Buffer;
}

export interface ComposedMail {
  options: Mail.Options;
  recipients: number;
  /** Ours for a JSON message; the Message-ID header of a MIME message, when it has one. */
  messageId?: string;
  from: string;
  /** For the ledger, when it is not the message's `subject` field (a MIME message's Subject header). */
  subject?: string;
}

/**
 * Applies the account's sender rules and defaults and builds what nodemailer sends. Only fields we set reach
 * nodemailer: nothing of the queue message is passed through unchecked.
 */
export function composeMail(
  account: Account,
  id: string,
  message: JsonMailMessage,
  attachments: LoadedAttachment[],
): ComposedMail {
  const from = message.from ? toNodemailer(message.from) : account.from;
  const fromAddress = message.from ? addressOf(message.from) : account.from;
  checkSender(account, 'From', fromAddress);
  const to = (message.to ?? []).map(toNodemailer);
  const cc = (message.cc ?? []).map(toNodemailer);
  const bcc = (message.bcc ?? []).map(toNodemailer);
  const recipients = to.length + cc.length + bcc.length;
  checkRecipientCount(account, recipients);
  const size =
    Buffer.byteLength(message.text ?? '') +
    Buffer.byteLength(message.html ?? '') +
    attachments.reduce((sum, a) => sum + Math.ceil(a.content.length / 3) * 4, 0);
  if (size > account.limits.maxMessageBytes) {
    throw new MessageError(
      'too_large',
      `The message is about ${megabytes(size)} MB once encoded; account "${account.id}" accepts at most ${megabytes(account.limits.maxMessageBytes)} MB.`,
    );
  }
  const messageId = `<${createHash('sha256').update(`${account.id}\n${id}`).digest('hex').slice(0, 32)}@${domainOf(fromAddress)}>`;
  const replyTo = message.replyTo ? toNodemailer(message.replyTo) : account.defaults.replyTo;
  const options: Mail.Options = {
    from,
    to,
    cc,
    bcc,
    subject: message.subject,
    messageId,
    headers: { ...account.defaults.headers, ...(message.headers ?? {}) },
    // Headers get punycode domains from nodemailer; the envelope we set ourselves, so we do the same for it.
    envelope: {
      from: envelopeAddress(fromAddress),
      to: [...to, ...cc, ...bcc]
        .map((a) => (typeof a === 'string' ? a : a.address))
        .filter(Boolean)
        .map((a) => envelopeAddress(a as string)),
    },
    attachments: attachments.map((a) => ({
      filename: attachmentFilename(a.filename),
      content: a.content,
      ...(a.contentType ? { contentType: a.contentType } : {}),
      ...(a.contentId ? { cid: a.contentId } : {}),
    })),
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  if (replyTo) options.replyTo = replyTo;
  if (message.text !== undefined) options.text = message.text;
  if (message.html !== undefined) options.html = message.html;
  return { options, recipients, messageId, from: fromAddress };
}

/** The sender rule, for a JSON message's `from` and a MIME message's From and Sender headers alike. */
export function checkSender(account: Account, label: string, address: string): void {
  if (!account.allowedFrom.includes(address.toLowerCase())) {
    throw new MessageError(
      'sender_not_allowed',
      `${label} ${address} is not allowed for account "${account.id}"; allowed: ${account.allowedFrom.join(', ')}.`,
    );
  }
}

export function checkRecipientCount(account: Account, recipients: number): void {
  if (recipients > account.limits.maxRecipientsPerMessage) {
    throw new MessageError(
      'invalid_message',
      `The message has ${recipients} recipients; the provider accepts at most ${account.limits.maxRecipientsPerMessage} per message.`,
    );
  }
}

function toNodemailer(value: Address): Mail.Address | string {
  if (typeof value !== 'string') return { name: value.name, address: value.address };
  const parsed = parseAddress(value);
  return parsed?.name ? { name: parsed.name, address: parsed.address } : (parsed?.address ?? value);
}

/**
 * The name the recipient sees, without any path the producer gave (`../../x.pdf` goes out as `x.pdf`): mail
 * clients save an attachment under its name, and a name with directories in it is at best confusing.
 */
export function attachmentFilename(name: string): string {
  const base = name
    .split(/[\\/]/)
    .filter((part) => part !== '' && part !== '.' && part !== '..')
    .at(-1);
  return base ?? 'attachment';
}

function domainOf(address: string): string {
  return address.split('@')[1] ?? 'oauth-outbox.invalid';
}

export function megabytes(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}
