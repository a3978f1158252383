import type { z } from 'zod';
import { describeIssues } from '../schemaIssues';
import { parseMailMessage, type MailMessage } from './messageSchema';

export type Decoded =
  | { ok: true; message: MailMessage }
  | { ok: false; reason: string; /** the producer's id when one could be read, for the ledger */ id?: string; account?: string };

/**
 * Turns what the queue trigger hands us into a validated message. The host is configured with
 * messageEncoding "none", so we decode base64 ourselves and can fail a bad message with a reason
 * instead of letting the host poison it. Plain JSON (a common producer mistake) is accepted as well.
 */
export function decodeQueueMessage(payload: unknown): Decoded {
  let json: unknown;
  if (payload !== null && typeof payload === 'object' && !(payload instanceof Uint8Array)) {
    json = payload;
  } else {
    const text = payload instanceof Uint8Array ? Buffer.from(payload).toString('utf8') : String(payload ?? '');
    const trimmed = text.trim();
    if (trimmed === '') return { ok: false, reason: 'The queue message is empty.' };
    let jsonText: string;
    if (trimmed.startsWith('{')) {
      jsonText = trimmed;
    } else if (/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) && trimmed.length % 4 === 0) {
      jsonText = Buffer.from(trimmed, 'base64').toString('utf8');
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
  return { ok: true, message: parsed.data };
}

/** The schema's problems in one line: `to[0]: is not a valid email address; subject: ...`. */
export function describeMessageIssues(error: z.ZodError): string {
  return describeIssues(error).join('; ');
}

function isWellFormedUtf8(text: string): boolean {
  return !text.includes('\uFFFD');
}
