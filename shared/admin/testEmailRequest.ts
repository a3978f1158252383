import { z } from 'zod';
import { describeMessageIssues } from '../message/decodeQueueMessage';

export type TestRecipient = { ok: true; to: string } | { ok: false; reasons: string };

const jsonRequest = z.object({ to: z.string().max(400) }).strict();

/** The recipient of a test email: `to=` from the status page's form, or `{ "to": ... }` from an API call. */
export function testRecipient(kind: 'form' | 'json', body: string): TestRecipient {
  if (kind === 'form') {
    const to = new URLSearchParams(body).get('to')?.trim();
    return to ? { ok: true, to } : { ok: false, reasons: 'to: an email address is needed' };
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, reasons: 'The body is not valid JSON; send {"to": "a@example.com"}.' };
  }
  const parsed = jsonRequest.safeParse(json);
  return parsed.success ? { ok: true, to: parsed.data.to } : { ok: false, reasons: describeMessageIssues(parsed.error) };
}
