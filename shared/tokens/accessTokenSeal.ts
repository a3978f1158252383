import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { AccessTokenRecord } from '../oauth/tokenSet';
import type { SealedAccessToken } from '../storage/accessTokenTable';

/** A 256-bit data key and a short public id for it (so a reader can tell "another key" from "tampered"). */
export interface SealKey {
  readonly id: string;
  readonly bytes: Buffer;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

export function sealKeyFrom(bytes: Buffer): SealKey {
  if (bytes.length !== 32) throw new RangeError('The access-token key must be 32 bytes (AES-256).');
  return { id: createHash('sha256').update(bytes).digest('base64url').slice(0, 12), bytes };
}

// The account id is authenticated with the token: a row copied to another account's place does not open there.
const aad = (accountId: string) => Buffer.from(`oauth-outbox access token v1 ${accountId}`, 'utf8');

export function sealAccessToken(key: SealKey, accountId: string, record: AccessTokenRecord): SealedAccessToken {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.bytes, iv);
  cipher.setAAD(aad(accountId));
  const body = Buffer.concat([cipher.update(JSON.stringify(record), 'utf8'), cipher.final()]);
  return { keyId: key.id, sealed: Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64') };
}

/** The record, or undefined when the row was sealed with another key, for another account, or altered. */
export function openAccessToken(key: SealKey, accountId: string, row: SealedAccessToken): AccessTokenRecord | undefined {
  if (row.keyId !== key.id) return undefined;
  const raw = Buffer.from(row.sealed, 'base64');
  if (raw.length <= IV_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.bytes, raw.subarray(0, IV_BYTES));
    decipher.setAAD(aad(accountId));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    const text = Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
    const parsed = JSON.parse(text.toString('utf8')) as Partial<AccessTokenRecord>;
    if (typeof parsed.accessToken !== 'string' || typeof parsed.expiresAt !== 'number') return undefined;
    return { accessToken: parsed.accessToken, expiresAt: parsed.expiresAt, ...(parsed.scope ? { scope: parsed.scope } : {}) };
  } catch {
    return undefined;
  }
}
