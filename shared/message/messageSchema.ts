import { z } from 'zod';
import { CONTAINERS } from '../names';
import { isMailAddress } from './mailAddress';

/**
 * Queue message, version 1: what producers put on `mail-outbox`, base64-encoded UTF-8 JSON.
 * Strict: an unknown field is refused, never ignored and never passed on to nodemailer.
 */

/** Header injection guard: a CR or LF in any header field is refused. */
const oneLine = <T extends z.ZodString>(schema: T) =>
  schema.refine((v) => !/[\r\n]/.test(v), { error: 'must not contain CR or LF' });

/** ASCII or internationalized (`a@bücher.de`); see mailAddress.ts for how it is sent. */
const emailAddress = z
  .string()
  .max(320)
  .refine(isMailAddress, { error: 'is not a valid email address' })
  .meta({ format: 'idn-email' });

/** `a@example.com`, or `Name <a@example.com>`, or { name, address }. */
export const addressSchema = z.union([
  z
    .string()
    .max(400)
    .refine((v) => !/[\r\n]/.test(v), { error: 'must not contain CR or LF' })
    .refine((v) => parseAddress(v) !== undefined, { error: 'is not a valid email address' }),
  z.object({ name: oneLine(z.string().max(200)), address: emailAddress }).strict(),
]);

const addressList = z.array(addressSchema).max(1000);

const RESERVED_HEADERS = new Set([
  'from',
  'to',
  'cc',
  'bcc',
  'reply-to',
  'subject',
  'sender',
  'date',
  'message-id',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'content-disposition',
  'return-path',
  'received',
]);

const headerName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,75}$/, { error: 'header names are letters, digits and dashes' })
  .refine((name) => !RESERVED_HEADERS.has(name.toLowerCase()), {
    error: 'this header is set from the message fields; use the field instead',
  });

const base64 = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

const blobRef = z
  .string()
  .regex(new RegExp(`^${CONTAINERS.attachments}/[^\\\\?#]+$`), { error: `must be "${CONTAINERS.attachments}/<path>"` })
  .refine((v) => !v.split('/').includes('..'), { error: 'must not contain ".."' });

const attachmentBase = {
  filename: z
    .string()
    .min(1)
    .max(255)
    .refine((v) => !/[\r\n\0]/.test(v), { error: 'must not contain CR, LF or NUL' }),
  contentType: z
    .string()
    .regex(/^[a-zA-Z0-9!#$&^_.+-]+\/[a-zA-Z0-9!#$&^_.+-]+$/, { error: 'must be a MIME type such as application/pdf' })
    .optional(),
  /** For inline images referenced from the HTML as cid:… */
  contentId: z
    .string()
    .regex(/^[A-Za-z0-9._@-]{1,100}$/)
    .optional(),
};

export const attachmentSchema = z.union([
  z.object({ ...attachmentBase, contentBase64: z.string().regex(base64, { error: 'is not base64' }) }).strict(),
  z.object({ ...attachmentBase, blob: blobRef }).strict(),
]);

const common = {
  version: z.literal(1).optional(),
  id: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[\x21-\x7e]+$/, { error: 'must be printable ASCII without spaces' })
    .optional(),
  account: z
    .string()
    .regex(/^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/, { error: 'is not an account id' })
    .optional(),
};

/** A message given as fields: we compose the MIME. */
export const jsonMailMessageSchema = z
  .object({
    ...common,
    from: addressSchema.optional(),
    to: addressList.optional(),
    cc: addressList.optional(),
    bcc: addressList.optional(),
    replyTo: addressSchema.optional(),
    subject: oneLine(z.string().max(2000)),
    text: z.string().optional(),
    html: z.string().optional(),
    headers: z.record(headerName, oneLine(z.string().max(2000))).optional(),
    attachments: z.array(attachmentSchema).max(100).optional(),
  })
  .strict()
  .refine((m) => (m.to?.length ?? 0) + (m.cc?.length ?? 0) + (m.bcc?.length ?? 0) > 0, {
    error: 'at least one recipient is needed in to, cc or bcc',
    path: ['to'],
  });

/** `mail-mime/<path>`: only the MIME container, no `..`, no URL. */
const mimeBlobRef = z
  .string()
  .regex(new RegExp(`^${CONTAINERS.mime}/[^\\\\?#]+$`), { error: `must be "${CONTAINERS.mime}/<path>"` })
  .refine((v) => !v.split('/').includes('..'), { error: 'must not contain ".."' });

/** A finished MIME message in blob storage, sent as it is; the envelope names who receives it. */
export const mimeMailMessageSchema = z
  .object({
    ...common,
    /** The SMTP relay's device that sent it; shown in the ledger and on the status page. */
    device: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, { error: 'letters, digits, ".", "_", "@" and "-", at most 64' })
      .optional(),
    mime: z
      .object({
        blob: mimeBlobRef,
        envelope: z
          .object({
            from: emailAddress,
            to: z.array(emailAddress).min(1, { error: 'at least one recipient is needed' }).max(1000),
          })
          .strict(),
      })
      .strict(),
  })
  .strict();

/** Fields of a JSON message that a MIME message carries in its own headers, body and envelope. */
export const JSON_ONLY_FIELDS = [
  'from',
  'to',
  'cc',
  'bcc',
  'replyTo',
  'subject',
  'text',
  'html',
  'headers',
  'attachments',
] as const;

/** Queue message v1: fields (`subject`, `text`, ...) or a finished MIME message (`mime`), never both. */
export const mailMessageSchema = z.union([jsonMailMessageSchema, mimeMailMessageSchema]);

/**
 * Parses a queue message v1. A message with `mime` is checked as a MIME message and one without as a JSON
 * message, so that the problems named are those of the kind the producer meant (zod's union would name both).
 */
export function parseMailMessage(input: unknown): ReturnType<typeof mailMessageSchema.safeParse> {
  if (input === null || typeof input !== 'object' || !('mime' in input))
    return explainUnions(jsonMailMessageSchema.safeParse(input), input);
  const mixed = JSON_ONLY_FIELDS.filter((field) => field in input);
  if (mixed.length === 0) return explainUnions(mimeMailMessageSchema.safeParse(input), input);
  return {
    success: false,
    error: new z.ZodError([
      {
        code: 'custom',
        path: ['mime'],
        input,
        message: `is exclusive with ${mixed.join(', ')}: a MIME message carries its own headers and body, and its recipients in mime.envelope`,
      },
    ]) as z.ZodError<MailMessage>,
  };
}

type ParseResult = ReturnType<typeof mailMessageSchema.safeParse>;

/**
 * zod reports a value that fits neither side of a union (an address, an attachment) as "Invalid input". This
 * replaces that with the problems of the side the producer meant, so the reason names the field and the rule.
 */
function explainUnions(result: ParseResult, input: unknown): ParseResult {
  if (result.success || !result.error.issues.some((issue) => issue.code === 'invalid_union')) return result;
  const issues = result.error.issues.flatMap((issue) =>
    issue.code === 'invalid_union' ? explainUnion(issue, valueAt(input, issue.path)) : [issue],
  );
  return { success: false, error: new z.ZodError(issues) as z.ZodError<MailMessage> };
}

function explainUnion(issue: z.core.$ZodIssueInvalidUnion, value: unknown): z.core.$ZodIssue[] {
  const at = (inner: z.core.$ZodIssue): z.core.$ZodIssue => ({ ...inner, path: [...issue.path, ...inner.path] });
  const custom = (message: string, keys: PropertyKey[] = []): z.core.$ZodIssue =>
    ({ code: 'custom', path: [...issue.path, ...keys], message, input: value }) as z.core.$ZodIssue;
  if (issue.path[0] === 'attachments' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const has = (key: string) => key in value;
    const unknown = Object.keys(value).filter((key) => !ATTACHMENT_FIELDS.has(key));
    const problems: z.core.$ZodIssue[] = [];
    if (unknown.length > 0)
      problems.push(
        custom(
          `unknown field(s) ${unknown.map((k) => `"${k}"`).join(', ')}: an attachment is given by contentBase64 or blob, never by a file path or URL`,
        ),
      );
    if (has('contentBase64') && has('blob')) problems.push(custom('contentBase64 and blob are exclusive: give one'));
    else if (!has('contentBase64') && !has('blob'))
      problems.push(custom(`needs contentBase64 (the bytes) or blob ("${CONTAINERS.attachments}/<path>")`));
    else {
      const side = issue.errors[has('blob') ? 1 : 0] ?? [];
      problems.push(...side.filter((inner) => inner.code !== 'unrecognized_keys').map(at));
    }
    return problems.length > 0 ? problems : [issue];
  }
  // Otherwise the side whose type fits: a string address is checked as a string, an object as { name, address }.
  const fitting = issue.errors.filter((side) => !side.some((inner) => inner.code === 'invalid_type' && inner.path.length === 0));
  if (fitting.length === 0) return [custom('must be "a@example.com", "Name <a@example.com>" or { name, address }')];
  const best = fitting.reduce((a, b) => (b.length < a.length ? b : a));
  return best.map(at);
}

const ATTACHMENT_FIELDS = new Set(['filename', 'contentType', 'contentId', 'contentBase64', 'blob']);

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let value = input;
  for (const key of path)
    value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value;
}

export type JsonMailMessage = z.infer<typeof jsonMailMessageSchema>;
export type MimeMailMessage = z.infer<typeof mimeMailMessageSchema>;
export type MailMessage = JsonMailMessage | MimeMailMessage;

export function isMimeMessage(message: MailMessage): message is MimeMailMessage {
  return 'mime' in message;
}
export type Address = z.infer<typeof addressSchema>;
export type Attachment = z.infer<typeof attachmentSchema>;

/** Parses `a@b.c` or `Name <a@b.c>`; undefined when it is not an address. */
export function parseAddress(value: string): { name?: string; address: string } | undefined {
  const match = /^\s*(?:"?([^"<>]*?)"?\s*<([^<>\s]+)>|([^<>\s]+))\s*$/.exec(value);
  if (!match) return undefined;
  const address = match[2] ?? match[3] ?? '';
  if (!isMailAddress(address)) return undefined;
  const name = match[1]?.trim();
  return name ? { name, address } : { address };
}

export function addressOf(value: Address): string {
  return typeof value === 'string' ? (parseAddress(value)?.address ?? value) : value.address;
}
