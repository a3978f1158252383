/**
 * The two writes behind every `250`: the MIME into blob container `mail-mime`, then the queue message on
 * `mail-outbox`. A message up to one block is one PUT; a larger one is staged block by block while DATA still
 * arrives (at most one block in flight and one filling, so memory stays bounded whatever the size) and becomes
 * visible only when the block list is committed at the final dot. A relay that dies before that leaves only
 * uncommitted blocks, which the service discards.
 */
import { Readable } from 'node:stream';
import type { ContainerClient } from '@azure/storage-blob';
import type { QueueClient } from '@azure/storage-queue';
import type { MimeMailMessage } from '../shared/message/messageSchema';
import { OutboxQueue } from '../shared/message/outboxQueue';
import { CONTAINERS } from '../shared/names';

export const BLOCK_BYTES = 4 * 1024 * 1024;

/**
 * The queue message of a finished MIME message: the app's own schema (message/messageSchema.ts), with the fields the
 * relay always sets (its id, account and device) required.
 */
export type MimeQueueMessage = MimeMailMessage & { version: 1; id: string; account: string; device: string };

export interface MimeUpload {
  /** Resolves when more may be written. After a storage failure it discards: finish() reports the failure. */
  write(chunk: Buffer): Promise<void>;
  /** Makes the blob visible (one PUT, or the block list commit); throws if any write failed. */
  finish(): Promise<void>;
  /** Cancels what is in flight; nothing becomes visible. */
  abort(): void;
}

export interface MimeStore {
  /** `name` is the blob's name inside `mail-mime` (`2026/11/23/<id>.eml`). */
  open(name: string): MimeUpload;
  enqueue(message: MimeQueueMessage): Promise<void>;
  /** Best effort, after a failed enqueue: the blob would otherwise be referenced by nothing. */
  remove(name: string): Promise<void>;
  /** Creates the container and the queue if they are missing (local development). */
  ensureCreated(): Promise<void>;
}

const CONTENT_TYPE = 'message/rfc822';

export function blobStore(container: ContainerClient, queue: QueueClient): MimeStore {
  return {
    open: (name) => new BlockUpload(container, name),
    async enqueue(message) {
      await new OutboxQueue(queue).enqueue(message);
    },
    async remove(name) {
      await container.getBlockBlobClient(name).deleteIfExists();
    },
    async ensureCreated() {
      await Promise.all([container.createIfNotExists(), queue.createIfNotExists()]);
    },
  };
}

export const mimeBlobReference = (name: string) => `${CONTAINERS.mime}/${name}`;

class BlockUpload implements MimeUpload {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly blockIds: string[] = [];
  private inFlight: Promise<void> = Promise.resolve();
  private failure: unknown;
  private readonly controller = new AbortController();

  constructor(
    private readonly container: ContainerClient,
    private readonly name: string,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined || this.controller.signal.aborted) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < BLOCK_BYTES) return;
    await this.inFlight;
    if (this.failure === undefined) this.stagePending();
  }

  async finish(): Promise<void> {
    const blob = this.container.getBlockBlobClient(this.name);
    const options = { blobHTTPHeaders: { blobContentType: CONTENT_TYPE }, abortSignal: this.controller.signal };
    if (this.blockIds.length === 0 && this.failure === undefined) {
      const { body, length } = this.take();
      await blob.upload(body, length, options);
      return;
    }
    await this.inFlight;
    if (this.pendingBytes > 0 && this.failure === undefined) {
      this.stagePending();
      await this.inFlight;
    }
    if (this.failure !== undefined) throw this.failure;
    await blob.commitBlockList(this.blockIds, options);
  }

  abort(): void {
    this.controller.abort();
    this.pending = [];
    this.pendingBytes = 0;
  }

  /**
   * The pending chunks as a request body, without copying them into one buffer: a function, so that a retry
   * of the request reads them again from the start.
   */
  private take(): { body: () => Readable; length: number } {
    const chunks = this.pending;
    const length = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    return { body: () => Readable.from(chunks), length };
  }

  private stagePending(): void {
    const { body, length } = this.take();
    // Block ids of one blob must all have the same length.
    const id = Buffer.from(`block-${String(this.blockIds.length).padStart(6, '0')}`).toString('base64');
    this.blockIds.push(id);
    this.inFlight = this.container
      .getBlockBlobClient(this.name)
      .stageBlock(id, body, length, { abortSignal: this.controller.signal })
      .then(
        () => undefined,
        (error: unknown) => {
          this.failure ??= error;
        },
      );
  }
}
