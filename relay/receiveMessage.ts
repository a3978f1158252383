/**
 * One message from DATA to its reply. In order:
 *
 *   1. header section  → one From, whose display name is not an address, and every From and Sender address
 *                        allowed for the device and its account, else 550 at the final dot (headerChecks.ts)
 *   2. every byte      → counted against the device's size limit, else 552
 *   3. the MIME        → streamed to blob mail-mime/<yyyy>/<mm>/<dd>/<id>.eml, Bcc fields cut out of the header
 *   4. final dot       → blob committed, then the queue message enqueued; only then `250 2.0.0 queued as <id>`
 *
 * A storage failure at 3 or 4 is a 451 (the device retries; nothing was queued). A connection lost before the
 * final dot leaves nothing visible. The message is read to its end in every case: SMTP has no way to refuse
 * before the dot once DATA has started.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Device } from './config';
import { findHeaderEnd, headerFields, withoutBcc } from '../shared/message/mimeHeaders';
import { checkSenderHeaders, type AccountCheck } from './headerChecks';
import { mimeBlobReference, type MimeStore, type MimeUpload } from './mimeStore';
import { REPLIES, type Reply } from './replies';

/** A header section larger than this is not a mail header. */
export const MAX_HEADER_BYTES = 1024 * 1024;

export type Outcome =
  | { kind: 'queued'; id: string; blob: string; bytes: number; storeMs: number; reply: string }
  | { kind: 'refused'; bytes: number; reply: Reply }
  | { kind: 'deferred'; bytes: number; reply: Reply; error: string; id: string }
  | { kind: 'lost'; bytes: number; error: string };

export interface MessageContext {
  device: Device;
  envelope: { from: string; to: string[] };
  store: MimeStore;
  /** The account's allowed senders, as published by the app (none: the device's list alone decides). */
  accountCheck?: AccountCheck;
  now?: () => Date;
}

export function newMessageId(now: Date): string {
  return `relay-${now.getTime().toString(36)}-${randomBytes(8).toString('hex')}`;
}

export function mimeBlobName(id: string, now: Date): string {
  const yyyy = now.getUTCFullYear();
  const mm = String(now.getUTCMonth() + 1).padStart(2, '0');
  const dd = String(now.getUTCDate()).padStart(2, '0');
  return `${yyyy}/${mm}/${dd}/${id}.eml`;
}

export async function receiveMessage(stream: Readable, context: MessageContext): Promise<Outcome> {
  const { device, store } = context;
  const now = (context.now ?? (() => new Date()))();
  const id = newMessageId(now);
  const blobName = mimeBlobName(id, now);
  let bytes = 0;
  let head: Buffer | undefined = Buffer.alloc(0);
  let refusal: Reply | undefined;
  let upload: MimeUpload | undefined;

  const startBody = async (header: Buffer, rest: Buffer) => {
    refusal = checkSenderHeaders(header, device, context.accountCheck);
    if (refusal) return;
    upload = store.open(blobName);
    await upload.write(withoutBcc(header, headerFields(header)));
    if (rest.length > 0) await upload.write(rest);
  };

  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (refusal) continue;
      if (bytes > device.maxMessageBytes) {
        refusal = REPLIES.tooLarge(bytes, device.maxMessageBytes);
        upload?.abort();
        head = undefined;
        continue;
      }
      if (head === undefined) {
        await upload?.write(chunk);
        continue;
      }
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = findHeaderEnd(head);
      if (end === undefined) {
        if (head.length > MAX_HEADER_BYTES) refusal = REPLIES.headerTooLarge(MAX_HEADER_BYTES);
        continue;
      }
      const header = head.subarray(0, end);
      const rest = head.subarray(end);
      head = undefined;
      await startBody(header, rest);
    }
  } catch (error) {
    upload?.abort();
    return { kind: 'lost', bytes, error: (error as Error).message };
  }

  if (refusal) {
    if (refusal.reason === 'too_large') refusal = REPLIES.tooLarge(bytes, device.maxMessageBytes);
    return { kind: 'refused', bytes, reply: refusal };
  }
  // A message without a body: all of it is header.
  if (head !== undefined) await startBody(head, Buffer.alloc(0));
  if (refusal) return { kind: 'refused', bytes, reply: refusal };

  const started = performance.now();
  try {
    await upload!.finish();
  } catch (error) {
    return { kind: 'deferred', bytes, id, reply: REPLIES.storageUnavailable(), error: `blob: ${describe(error)}` };
  }
  try {
    await store.enqueue({
      version: 1,
      id,
      account: device.account,
      device: device.name,
      mime: { blob: mimeBlobReference(blobName), envelope: context.envelope },
    });
  } catch (error) {
    await store.remove(blobName).catch(() => undefined);
    return { kind: 'deferred', bytes, id, reply: REPLIES.storageUnavailable(), error: `queue: ${describe(error)}` };
  }
  return {
    kind: 'queued',
    id,
    blob: mimeBlobReference(blobName),
    bytes,
    storeMs: performance.now() - started,
    reply: REPLIES.queued(id),
  };
}

/** A storage error for the log: name, HTTP status and the first line; the SDK's messages hold no secrets. */
function describe(error: unknown): string {
  const e = error as { name?: string; statusCode?: number; code?: string; message?: string };
  const first = String(e.message ?? error)
    .split('\n')[0]!
    .slice(0, 300);
  return [e.name, e.statusCode, e.code, first].filter((x) => x !== undefined && x !== '').join(' ');
}
