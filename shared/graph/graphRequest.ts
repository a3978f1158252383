import MailComposer from 'nodemailer/lib/mail-composer';
import addressparser from 'nodemailer/lib/addressparser';
import type Mail from 'nodemailer/lib/mailer';
import type { Account, GraphSettings } from '../config';
import { MessageError, type MessageErrorCode } from '../errors';
import { decodeEncodedWords, fieldValue, findHeaderEnd, headerFields, type HeaderField } from '../message/mimeHeaders';
import { clientRequestIdOf } from './clientRequestId';

/** What the send pipeline composed (`ComposedMail` in delivery/composeMail.ts), as far as Graph needs it. */
export interface ComposedForGraph {
  options: Mail.Options;
}

/**
 * One Graph sendMail request, built from what the pipeline composed:
 * - a JSON message goes as Graph's `message` JSON, with `saveToSentItems` from the account and the attachments inline
 *   as `fileAttachment`s (base64); headers other than `X-…` cannot go that way, so such a message goes as MIME;
 * - a MIME message goes as base64 MIME (`Content-Type: text/plain`). Graph has no envelope: the recipients that are
 *   only in the envelope are written into a `Bcc:` header of the copy sent to Graph (Exchange removes it on delivery).
 */
export interface GraphRequest {
  /** The mailbox that sends, as in `/users/{user}/sendMail`. */
  user: string;
  format: 'json' | 'mime';
  contentType: 'application/json' | 'text/plain';
  body: Buffer;
  /** Derived from the message id: the same on every try of one message. */
  clientRequestId: string;
  /** Everyone the message goes to (Graph answers for the message as a whole). */
  recipients: string[];
}

/**
 * A message Graph cannot carry as it is: over the request size limit, or a From display name with `@` (Graph
 * answers ErrorSendAsDenied). `smtpCanCarry`: the account may send it by SMTP instead (transport `auto`).
 */
export class GraphRequestError extends MessageError {
  constructor(
    code: MessageErrorCode,
    message: string,
    readonly smtpCanCarry: boolean,
  ) {
    super(code, message);
    this.name = 'GraphRequestError';
  }
}

/** Graph takes at most this many `internetMessageHeaders`, all named `X-…`. */
const MAX_GRAPH_HEADERS = 5;

export async function buildGraphRequest(account: Account, messageId: string, composed: ComposedForGraph): Promise<GraphRequest> {
  const graph = graphOf(account);
  const options = composed.options;
  const request =
    options.raw !== undefined
      ? mimeRequest(account, toBuffer(options.raw), options.envelope)
      : canGoAsJson(options)
        ? jsonRequest(account, graph, options)
        : await composedMimeRequest(account, options);
  const built: GraphRequest = { user: account.user, clientRequestId: clientRequestIdOf(messageId), ...request };
  if (built.body.length > graph.maxRequestBytes) throw tooLarge(account, graph, built);
  return built;
}

export function graphOf(account: Account): GraphSettings {
  if (!account.graph) {
    throw new MessageError(
      'message_rejected',
      `Account "${account.id}" (provider ${account.provider}) cannot send through Microsoft Graph.`,
    );
  }
  return account.graph;
}

type Built = Pick<GraphRequest, 'format' | 'contentType' | 'body' | 'recipients'>;

function canGoAsJson(options: Mail.Options): boolean {
  const names = Object.keys(headersOf(options));
  return names.length <= MAX_GRAPH_HEADERS && names.every((name) => /^x-/i.test(name));
}

interface GraphAddress {
  emailAddress: { address: string; name?: string };
}

function jsonRequest(account: Account, graph: GraphSettings, options: Mail.Options): Built {
  const from = addressList(options.from)[0];
  if (from) refuseAtInName(account, from.emailAddress.name);
  const to = addressList(options.to);
  const cc = addressList(options.cc);
  const bcc = addressList(options.bcc);
  const replyTo = addressList(options.replyTo);
  const headers = Object.entries(headersOf(options)).map(([name, value]) => ({ name, value }));
  // Graph's message has one body: HTML when there is any (Exchange adds the plain-text part itself), else the text.
  const body =
    typeof options.html === 'string'
      ? { contentType: 'HTML', content: options.html }
      : { contentType: 'Text', content: typeof options.text === 'string' ? options.text : '' };
  const attachments = (options.attachments ?? []).map((a) => ({
    '@odata.type': '#microsoft.graph.fileAttachment',
    name: a.filename || 'attachment',
    contentType: a.contentType ?? 'application/octet-stream',
    contentBytes: toBuffer(a.content as Buffer | string).toString('base64'),
    ...(a.cid ? { contentId: a.cid, isInline: true } : {}),
  }));
  const message = {
    subject: options.subject ?? '',
    body,
    ...(from ? { from } : {}),
    toRecipients: to,
    ...(cc.length ? { ccRecipients: cc } : {}),
    ...(bcc.length ? { bccRecipients: bcc } : {}),
    ...(replyTo.length ? { replyTo } : {}),
    ...(typeof options.messageId === 'string' ? { internetMessageId: options.messageId } : {}),
    ...(headers.length ? { internetMessageHeaders: headers } : {}),
    ...(attachments.length ? { attachments } : {}),
  };
  return {
    format: 'json',
    contentType: 'application/json',
    body: Buffer.from(JSON.stringify({ message, saveToSentItems: graph.saveToSentItems })),
    recipients: [...to, ...cc, ...bcc].map((a) => a.emailAddress.address),
  };
}

/** A JSON message with headers Graph's JSON cannot carry: nodemailer writes the MIME, Bcc kept for Graph to read. */
async function composedMimeRequest(account: Account, options: Mail.Options): Promise<Built> {
  const node = new MailComposer({ ...options, envelope: undefined } as ConstructorParameters<typeof MailComposer>[0]).compile();
  node.keepBcc = true;
  const raw = await node.build();
  const built = mimeRequest(account, raw, undefined);
  const recipients = [options.to, options.cc, options.bcc].flatMap((list) =>
    addressList(list).map((a) => a.emailAddress.address),
  );
  return { ...built, recipients };
}

function mimeRequest(account: Account, raw: Buffer, envelope: Mail.Options['envelope']): Built {
  const headerEnd = findHeaderEnd(raw) ?? raw.length;
  const header = raw.subarray(0, headerEnd);
  const fields = headerFields(header);
  for (const field of fields.filter((f) => f.name === 'from' || f.name === 'sender')) {
    for (const entry of addressparser(decodeEncodedWords(fieldValue(header, field)), { flatten: true }))
      refuseAtInName(account, entry.name);
  }
  const inHeaders = new Set(
    fields
      .filter((f) => f.name === 'to' || f.name === 'cc' || f.name === 'bcc')
      .flatMap((f) => addressesIn(header, f))
      .map((a) => a.toLowerCase()),
  );
  const envelopeTo = envelopeRecipients(envelope);
  const envelopeOnly = [...new Set(envelopeTo.filter((a) => !inHeaders.has(a.toLowerCase())))];
  const newline = header.includes('\r\n') || header.length === 0 ? '\r\n' : '\n';
  const withBcc = envelopeOnly.length ? Buffer.concat([Buffer.from(bccField(envelopeOnly, newline)), raw]) : raw;
  return {
    format: 'mime',
    contentType: 'text/plain',
    body: Buffer.from(withBcc.toString('base64')),
    recipients: envelopeTo.length ? envelopeTo : [...inHeaders],
  };
}

/** `Bcc: a, b` folded before each address after the first, so no line gets near the 998-octet limit. */
function bccField(addresses: string[], newline: string): string {
  return `Bcc: ${addresses.join(`,${newline} `)}${newline}`;
}

function envelopeRecipients(envelope: Mail.Options['envelope']): string[] {
  const to = envelope && 'to' in envelope ? envelope.to : undefined;
  return flatAddresses(to).map((a) => a.address);
}

function addressesIn(header: Buffer, field: HeaderField): string[] {
  return addressparser(decodeEncodedWords(fieldValue(header, field)), { flatten: true })
    .map((entry) => entry.address.trim())
    .filter(Boolean);
}

/** Graph answers ErrorSendAsDenied to a From display name with `@` in it: refused before sending, with the reason. */
function refuseAtInName(account: Account, name: string | undefined): void {
  if (!name?.includes('@')) return;
  throw new GraphRequestError(
    'invalid_message',
    `The From display name "${name.slice(0, 100)}" contains "@"; Microsoft Graph refuses such a sender (ErrorSendAsDenied). Use a name without "@".`,
    account.transport === 'auto',
  );
}

function tooLarge(account: Account, graph: GraphSettings, request: GraphRequest): GraphRequestError {
  const size = (bytes: number) => (bytes / (1024 * 1024)).toFixed(1);
  const smtpCanCarry = account.transport === 'auto';
  const wayOut = smtpCanCarry
    ? `Account "${account.id}" (transport "auto") can send it by SMTP instead.`
    : `Send it by SMTP: set transport "auto" or "smtp" for account "${account.id}" (SMTP AUTH must be enabled for the mailbox), or make it smaller, e.g. link to large files instead of attaching them. Larger Graph messages need upload sessions and the Mail.ReadWrite permission, which oauth-outbox does not ask for.`;
  return new GraphRequestError(
    'too_large',
    `The message is ${size(request.body.length)} MB as a Microsoft Graph request (${request.format === 'mime' ? 'base64 MIME' : 'JSON with inline attachments'}); Graph's sendMail takes about ${size(graph.maxRequestBytes)} MB per request. ${wayOut}`,
    smtpCanCarry,
  );
}

function addressList(value: Mail.Options['to']): GraphAddress[] {
  return flatAddresses(value).map((a) => graphAddress(a.address, a.name));
}

type AddressInput = string | { address: string; name?: string } | readonly AddressInput[] | null | undefined;

function flatAddresses(value: unknown): Array<{ address: string; name?: string }> {
  const input = value as AddressInput;
  if (input === undefined || input === null) return [];
  if (Array.isArray(input)) return (input as readonly AddressInput[]).flatMap((item) => flatAddresses(item));
  if (typeof input === 'string')
    return addressparser(input, { flatten: true })
      .filter((entry) => entry.address)
      .map((entry) => ({ address: entry.address, ...(entry.name ? { name: entry.name } : {}) }));
  const single = input as { address: string; name?: string };
  return single.address ? [{ address: single.address, ...(single.name ? { name: single.name } : {}) }] : [];
}

function graphAddress(address: string, name: string | undefined): GraphAddress {
  return { emailAddress: { address, ...(name ? { name } : {}) } };
}

function headersOf(options: Mail.Options): Record<string, string> {
  const headers = options.headers;
  if (!headers || Array.isArray(headers)) return {};
  return Object.fromEntries(
    Object.entries(headers).flatMap(([name, value]) =>
      typeof value === 'string'
        ? [[name, value]]
        : Array.isArray(value)
          ? value.map((v) => [name, String(v)])
          : [[name, String(value.value)]],
    ),
  );
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value);
  throw new MessageError('invalid_message', 'The message content is not in memory; Microsoft Graph needs the bytes.');
}
