import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import { readRow, writeIfUnchanged } from '../storage/conditionalWrite';
import type { Provider } from '../config';

/**
 * Pending authorizations (table `authrequests`): one row per authorize redirect, used at most once.
 *
 * The table alone is not enough to finish an authorization: the row key is a hash of the state, the browser
 * binding is a hash of the cookie value, and the PKCE verifier is encrypted with a key derived from that
 * cookie value, which only the admin's browser holds.
 */
export const AUTH_REQUEST_TTL_MS = 10 * 60 * 1000;

const PARTITION = 'authrequest';
const KEY_INFO = 'oauth-outbox/authrequest/pkce-verifier';

export interface NewAuthRequest {
  state: string;
  accountId: string;
  provider: Provider;
  issuer: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
  /** The signed-in admin who started it (Entra sign-in in front of the app), recorded with the new grant. */
  startedBy?: string;
}

/** A row as read back; `browserHash` and `verifierCipher` are useless without the browser's cookie value. */
export interface StoredAuthRequest {
  rowKey: string;
  etag: string;
  accountId: string;
  provider: Provider;
  issuer: string;
  nonce: string;
  redirectUri: string;
  browserHash: string;
  verifierCipher: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
  startedBy?: string;
}

/** The random value kept in the browser's cookie. */
export function newBrowserSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function isWellFormedBrowserSecret(value: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(value);
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('base64url');

export const stateKey = (state: string): string => sha256(`state:${state}`);

export class AuthRequestTable {
  constructor(
    private readonly table: TableClient,
    private readonly now: () => number = Date.now,
  ) {}

  async create(request: NewAuthRequest, browserSecret: string): Promise<{ expiresAt: Date }> {
    const rowKey = stateKey(request.state);
    const createdAt = new Date(this.now());
    const expiresAt = new Date(createdAt.getTime() + AUTH_REQUEST_TTL_MS);
    await this.table.createEntity({
      partitionKey: PARTITION,
      rowKey,
      accountId: request.accountId,
      provider: request.provider,
      issuer: request.issuer,
      nonce: request.nonce,
      redirectUri: request.redirectUri,
      browserHash: sha256(`browser:${browserSecret}`),
      verifierCipher: seal(request.codeVerifier, browserSecret, rowKey, request.accountId),
      createdAt: createdAt.toISOString(),
      expiresAt: expiresAt.toISOString(),
      usedAt: '',
      startedBy: request.startedBy ?? '',
    });
    return { expiresAt };
  }

  async find(state: string): Promise<StoredAuthRequest | undefined> {
    const entity = await readRow<Record<string, unknown>>(this.table, PARTITION, stateKey(state));
    if (!entity) return undefined;
    const text = (key: string) => (typeof entity[key] === 'string' ? (entity[key] as string) : '');
    return {
      rowKey: stateKey(state),
      etag: entity.etag,
      accountId: text('accountId'),
      provider: text('provider') as Provider,
      issuer: text('issuer'),
      nonce: text('nonce'),
      redirectUri: text('redirectUri'),
      browserHash: text('browserHash'),
      verifierCipher: text('verifierCipher'),
      createdAt: text('createdAt'),
      expiresAt: text('expiresAt'),
      ...(text('usedAt') ? { usedAt: text('usedAt') } : {}),
      ...(text('startedBy') ? { startedBy: text('startedBy') } : {}),
    };
  }

  /**
   * Marks the request used, only if nobody changed it since it was read (ETag). Returns false when another
   * callback got there first: of two racing callbacks with the same state, exactly one proceeds.
   */
  async markUsed(request: StoredAuthRequest): Promise<boolean> {
    const used = { partitionKey: PARTITION, rowKey: request.rowKey, usedAt: new Date(this.now()).toISOString() };
    return (await writeIfUnchanged(this.table, used, request.etag, 'Merge')) !== undefined;
  }

  isExpired(request: StoredAuthRequest): boolean {
    const expiresAt = Date.parse(request.expiresAt);
    return !Number.isFinite(expiresAt) || expiresAt <= this.now();
  }

  /** Deletes rows that expired more than an hour ago. Best effort, bounded, so that the table stays small. */
  async purgeExpired(limit = 50): Promise<number> {
    const cutoff = new Date(this.now() - 60 * 60 * 1000).toISOString();
    let deleted = 0;
    const rows = this.table.listEntities<{ partitionKey: string; rowKey: string }>({
      queryOptions: { filter: odata`PartitionKey eq ${PARTITION} and expiresAt lt ${cutoff}`, select: ['RowKey'] },
    });
    for await (const row of rows) {
      if (deleted >= limit) break;
      await this.table.deleteEntity(PARTITION, row.rowKey).catch(() => undefined);
      deleted += 1;
    }
    return deleted;
  }
}

/** True when the cookie value is the one the request was bound to. */
export function browserMatches(request: StoredAuthRequest, browserSecret: string): boolean {
  const expected = Buffer.from(request.browserHash, 'utf8');
  const actual = Buffer.from(sha256(`browser:${browserSecret}`), 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** The PKCE verifier, or undefined when this browser secret cannot open it. */
export function openVerifier(request: StoredAuthRequest, browserSecret: string): string | undefined {
  try {
    return open(request.verifierCipher, browserSecret, request.rowKey, request.accountId);
  } catch {
    return undefined;
  }
}

function keyFor(browserSecret: string, rowKey: string): Buffer {
  return Buffer.from(hkdfSync('sha256', browserSecret, rowKey, KEY_INFO, 32));
}

function seal(plain: string, browserSecret: string, rowKey: string, accountId: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFor(browserSecret, rowKey), iv);
  cipher.setAAD(Buffer.from(`${rowKey}|${accountId}`, 'utf8'));
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

function open(sealed: string, browserSecret: string, rowKey: string, accountId: string): string {
  const bytes = Buffer.from(sealed, 'base64url');
  const iv = bytes.subarray(0, 12);
  const tag = bytes.subarray(bytes.length - 16);
  const body = bytes.subarray(12, bytes.length - 16);
  const decipher = createDecipheriv('aes-256-gcm', keyFor(browserSecret, rowKey), iv);
  decipher.setAAD(Buffer.from(`${rowKey}|${accountId}`, 'utf8'));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
}
