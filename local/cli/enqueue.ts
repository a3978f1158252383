/**
 * `npm run enqueue -- --to someone@example.com --subject Hello [--attach file]`: puts one message on the
 * outbox queue, the way any producer would (validated, base64-encoded JSON), and prints its id. Attachments
 * travel inline while the queue message stays under 64 KB; larger ones are uploaded to the attachments
 * container and referenced (claim check).
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../shared/errors';
import { enqueueMail, InvalidMailMessageError } from '../../shared/message/enqueueMail';
import type { Attachment, MailMessage } from '../../shared/message/messageSchema';
import { CONTAINERS, QUEUES } from '../../shared/names';
import { encodeQueueJson } from '../../shared/message/queueJson';
import { explainStorageError, STORAGE_OPTIONS, STORAGE_USAGE, storageTarget, type StorageTarget } from './storageTarget';
import { runCommand } from './runCommand';

const USAGE = `Usage: npm run enqueue -- --to <address> [options]

  --to <address>        recipient (repeat for more); also --cc, --bcc
  --subject <text>      default "Hello from oauth-outbox"
  --text <text|@file>   plain text body (@file reads a file)
  --html <text|@file>   HTML body
  --from <address>      must be allowed for the account
  --reply-to <address>
  --account <id>        the mail account (default: the default account)
  --attach <file>       attachment (repeat for more)
  --id <id>             idempotency key (default: a new UUID)

${STORAGE_USAGE}`;

/** The queue's limit for one message's text. */
const QUEUE_MESSAGE_LIMIT = 64 * 1024;

const CONTENT_TYPES: Record<string, string> = {
  '.pdf': 'application/pdf',
  '.txt': 'text/plain',
  '.csv': 'text/csv',
  '.html': 'text/html',
  '.json': 'application/json',
  '.xml': 'application/xml',
  '.zip': 'application/zip',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.ics': 'text/calendar',
  '.docx': 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  '.xlsx': 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
};

interface FileAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      to: { type: 'string', multiple: true },
      cc: { type: 'string', multiple: true },
      bcc: { type: 'string', multiple: true },
      subject: { type: 'string' },
      text: { type: 'string' },
      html: { type: 'string' },
      from: { type: 'string' },
      'reply-to': { type: 'string' },
      account: { type: 'string' },
      attach: { type: 'string', multiple: true },
      id: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      ...STORAGE_OPTIONS,
    },
  });
  if (values.help) return void console.log(USAGE);
  if (!values.to?.length && !values.cc?.length && !values.bcc?.length)
    throw new ConfigError(`Give at least one recipient.\n\n${USAGE}`);

  const [text, htmlBody, files] = await Promise.all([
    bodyArgument(values.text),
    bodyArgument(values.html),
    Promise.all((values.attach ?? []).map(readAttachment)),
  ]);
  const message: MailMessage = {
    id: values.id ?? randomUUID(),
    ...(values.account ? { account: values.account } : {}),
    ...(values.from ? { from: values.from } : {}),
    ...(values.to?.length ? { to: values.to } : {}),
    ...(values.cc?.length ? { cc: values.cc } : {}),
    ...(values.bcc?.length ? { bcc: values.bcc } : {}),
    ...(values['reply-to'] ? { replyTo: values['reply-to'] } : {}),
    subject: values.subject ?? 'Hello from oauth-outbox',
    ...(text === undefined && htmlBody === undefined
      ? { text: `Sent with npm run enqueue at ${new Date().toISOString()}.` }
      : {}),
    ...(text !== undefined ? { text } : {}),
    ...(htmlBody !== undefined ? { html: htmlBody } : {}),
  };

  const target = storageTarget(values);
  try {
    const { attachments, uploaded } = await placeAttachments(message, files, target);
    const queued = await enqueueMail(target.storage.queue(QUEUES.outbox), {
      ...message,
      ...(attachments.length ? { attachments } : {}),
    });
    for (const ref of uploaded) console.log(`Uploaded ${ref}`);
    console.log(`Enqueued ${queued.id} on ${QUEUES.outbox} (${target.description}).`);
    console.log(`Follow it with: npm run results -- --id ${queued.id}`);
  } catch (error) {
    if (error instanceof InvalidMailMessageError || error instanceof ConfigError) throw error;
    throw new ConfigError(explainStorageError(error, target));
  }
}

/** Inline while the queue message fits; otherwise the largest attachments go to blobs until it does. */
async function placeAttachments(
  message: MailMessage,
  files: FileAttachment[],
  target: StorageTarget,
): Promise<{ attachments: Attachment[]; uploaded: string[] }> {
  const inBlob = new Set<FileAttachment>();
  const blobRefs = new Map<FileAttachment, string>();
  const build = (): Attachment[] =>
    files.map((file) =>
      inBlob.has(file)
        ? { filename: file.filename, contentType: file.contentType, blob: blobRefs.get(file)! }
        : { filename: file.filename, contentType: file.contentType, contentBase64: file.content.toString('base64') },
    );
  const bySize = [...files].sort((a, b) => b.content.length - a.content.length);
  const fits = () => encodeQueueJson({ ...message, attachments: build() }).length <= QUEUE_MESSAGE_LIMIT;
  for (const file of bySize) {
    if (fits()) break;
    inBlob.add(file);
    blobRefs.set(file, blobName(file.filename));
  }
  if (!fits())
    throw new ConfigError('The message is over 64 KB even with every attachment in blob storage: shorten the text or HTML.');

  const container = target.storage.container(CONTAINERS.attachments);
  if (inBlob.size > 0 && target.isLocal) await container.createIfNotExists();
  for (const file of inBlob) {
    const ref = blobRefs.get(file)!;
    await container
      .getBlockBlobClient(ref.slice(CONTAINERS.attachments.length + 1))
      .uploadData(file.content, { blobHTTPHeaders: { blobContentType: file.contentType } });
  }
  return { attachments: build(), uploaded: [...blobRefs.values()] };
}

function blobName(filename: string): string {
  const safe = filename.replace(/[^A-Za-z0-9._-]/g, '_').slice(-100) || 'attachment';
  return `${CONTAINERS.attachments}/${new Date().toISOString().slice(0, 10)}/${randomUUID()}/${safe}`;
}

async function readAttachment(file: string): Promise<FileAttachment> {
  try {
    const content = await readFile(file);
    return {
      filename: path.basename(file),
      contentType: CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      content,
    };
  } catch (error) {
    throw new ConfigError(`--attach ${file}: ${(error as Error).message}`);
  }
}

async function bodyArgument(value: string | undefined): Promise<string | undefined> {
  if (value === undefined || !value.startsWith('@')) return value;
  try {
    return await readFile(value.slice(1), 'utf8');
  } catch (error) {
    throw new ConfigError(`${value}: ${(error as Error).message}`);
  }
}

runCommand(main, USAGE, (error) => error instanceof InvalidMailMessageError);
