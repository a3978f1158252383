import { createHash } from 'node:crypto';

/** A fixed namespace, so the same message id gives the same UUID in every instance and every version. */
const NAMESPACE = Buffer.from('6f2b5d1c8a3e4f7b9c0d1e2f3a4b5c6d', 'hex');

/**
 * Graph's `client-request-id` for a message: a name-based UUID (version 5, RFC 9562) of the message id. Every try of
 * one message carries the same id, so Microsoft's logs tie a delivered-but-unconfirmed request to the message.
 */
export function clientRequestIdOf(messageId: string): string {
  const hash = createHash('sha1').update(NAMESPACE).update(messageId, 'utf8').digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
