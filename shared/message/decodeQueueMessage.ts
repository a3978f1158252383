import type { z } from 'zod';
import { describeIssues } from '../schemaIssues';
import { envelopeAddress } from './mailAddress';
import { isMimeMessage, parseMailMessage, type MailMessage } from './messageSchema';

export type Decoded =
  | { ok: true; message: MailMessage }
  | { ok: false; reason: string; /** the producer's id when one could be read, for the ledger */ id?: string; account?: string };

/**
 * Turns what the queue trigger hands us into a validated message. The host is configured with
 * messageEncoding "none", so we decode base64 ourselves and can fail a bad message with a reason
 * instead of letting the host poison it. Plain JSON (a common producer mistake) is accepted as well.
 */
export function decodeQueueMessage(payload: unknown): Decoded {
  const decoded = decode(payload);
  // A reason goes to the ledger, the result event and the logs: no character of the message reaches them raw.
  return decoded.ok ? decoded : { ...decoded, reason: printable(decoded.reason) };
}

function decode(payload: unknown): Decoded {
  let json: unknown;
  if (payload !== null && typeof payload === 'object' && !(payload instanceof Uint8Array)) {
    json = payload;
  } else {
    const text = payload instanceof Uint8Array ? Buffer.from(payload).toString('utf8') : String(payload ?? '');
    // A byte-order mark (PowerShell's and Notepad's UTF-8) says nothing JSON needs: it is dropped, as is space around.
    const trimmed = withoutBom(text).trim();
    if (trimmed === '') return { ok: false, reason: 'The queue message is empty.' };
    let jsonText: string;
    if (trimmed.startsWith('{')) {
      jsonText = trimmed;
    } else if (/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) && trimmed.length % 4 === 0) {
      jsonText = withoutBom(Buffer.from(trimmed, 'base64').toString('utf8'));
      if (!isWellFormedUtf8(jsonText)) return { ok: false, reason: 'The queue message is base64, but not of UTF-8 text.' };
    } else {
      return { ok: false, reason: 'The queue message is neither base64-encoded JSON nor JSON.' };
    }
    try {
      json = JSON.parse(jsonText);
    } catch (error) {
      return { ok: false, reason: `The queue message is not valid JSON (${(error as Error).message}).` };
    }
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    return { ok: false, reason: 'The queue message must be a JSON object.' };
  const parsed = parseMailMessage(json);
  if (!parsed.success) {
    const loose = json as Record<string, unknown>;
    return {
      ok: false,
      reason: `The message is invalid: ${describeMessageIssues(parsed.error)}`,
      ...(typeof loose.id === 'string' && /^[\x21-\x7e]{1,200}$/.test(loose.id) ? { id: loose.id } : {}),
      ...(typeof loose.account === 'string' && /^[a-z0-9-]{1,40}$/.test(loose.account) ? { account: loose.account } : {}),
    };
  }
  return { ok: true, message: withEnvelopeAddresses(parsed.data) };
}

/** A MIME message's envelope is sent as given, so its internationalized domains are put in punycode here. */
function withEnvelopeAddresses(message: MailMessage): MailMessage {
  if (!isMimeMessage(message)) return message;
  const { from, to } = message.mime.envelope;
  return { ...message, mime: { ...message.mime, envelope: { from: envelopeAddress(from), to: to.map(envelopeAddress) } } };
}

/** The schema's problems in one line: `to[0]: is not a valid email address; subject: ...`. */
export function describeMessageIssues(error: z.ZodError): string {
  return printable(describeIssues(error).join('; '));
}

function withoutBom(text: string): string {
  return text.replace(/^\uFEFF+/, '');
}

const ESCAPES: Record<string, string> = { '\r': '\\r', '\n': '\\n', '\t': '\\t' };

/**
 * The text with control characters (C0, DEL, C1) and invisible ones (zero-width, bidirectional controls,
 * line and paragraph separators, byte-order mark) written as escapes: `\r`, `\n`, `\t`, `\u0007`, `\ufeff`.
 */
export function printable(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function isWellFormedUtf8(text: string): boolean {
  return !text.includes('\uFFFD');
}
