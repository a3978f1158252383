import { randomUUID } from 'node:crypto';
import { findAccount, type Account } from '../config';
import { describeMessageIssues } from '../message/decodeQueueMessage';
import { addressOf, isMimeMessage, parseMailMessage, type MailMessage } from '../message/messageSchema';
import { CONTAINERS } from '../names';

/** A queue message holds at most 64 KB, and ours go on the queue base64-encoded (4 bytes for every 3). */
export const QUEUE_MESSAGE_LIMIT = 64 * 1024;

export const TOO_LARGE_HINT =
  `Queue messages are limited to 64 KB after base64 encoding (about 48 KB of JSON). Upload large attachments ` +
  `to the blob container "${CONTAINERS.attachments}" and reference them: {"filename": "big.pdf", "blob": "${CONTAINERS.attachments}/<path>"}.`;

export type SubmittedMessage =
  | { ok: true; message: MailMessage & { id: string }; account: Account }
  | {
      ok: false;
      status: 400 | 413;
      error: 'invalid_message' | 'unknown_account' | 'sender_not_allowed' | 'too_large';
      reasons: string;
    };

/**
 * Checks a message posted to `POST /api/messages` as far as can be known before sending, so that the producer
 * hears at once what the send path would otherwise fail later: the schema (strict), the account, the sender
 * rule and the queue's size limit. Gives the message an id when it has none.
 */
export function checkSubmittedMessage(body: string, accounts: readonly Account[]): SubmittedMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (error) {
    const reasons = `The body is not valid JSON (${(error as Error).message}). Send a queue message v1 as application/json.`;
    return { ok: false, status: 400, error: 'invalid_message', reasons };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    return { ok: false, status: 400, error: 'invalid_message', reasons: 'The body must be a JSON object.' };
  const parsed = parseMailMessage(json);
  if (!parsed.success) return { ok: false, status: 400, error: 'invalid_message', reasons: describeMessageIssues(parsed.error) };

  const message = { ...parsed.data, id: parsed.data.id ?? randomUUID() };
  const account = findAccount(accounts, message.account);
  if (!account) {
    const known = `known: ${accounts.map((a) => a.id).join(', ')}.`;
    const reasons = message.account
      ? `account: there is no account "${message.account}"; ${known}`
      : `account: none given and no default account; ${known}`;
    return { ok: false, status: 400, error: 'unknown_account', reasons };
  }
  // A MIME message's From header is checked when it is sent (the blob is read then); its envelope sender now.
  const field = isMimeMessage(message) ? 'mime.envelope.from' : 'from';
  const given = isMimeMessage(message) ? message.mime.envelope.from : message.from;
  const from = given ? addressOf(given).toLowerCase() : undefined;
  if (from && !account.allowedFrom.includes(from)) {
    const reasons = `${field}: ${from} is not allowed for account "${account.id}"; allowed: ${account.allowedFrom.join(', ')}.`;
    return { ok: false, status: 400, error: 'sender_not_allowed', reasons };
  }
  if (Math.ceil(Buffer.byteLength(JSON.stringify(message)) / 3) * 4 > QUEUE_MESSAGE_LIMIT)
    return { ok: false, status: 413, error: 'too_large', reasons: TOO_LARGE_HINT };
  return { ok: true, message, account };
}
