/**
 * A stand-in for Microsoft Graph's `POST /v1.0/users/{user}/sendMail`, for tests and the local stack. It checks the
 * bearer token with the local identity provider (live, audience https://graph.microsoft.com, `Mail.Send` in `scp`
 * for a user's token, in `roles` for an app's, and a user's token only for their own mailbox), takes JSON and base64
 * MIME messages as Graph does, and writes each accepted message as an `.eml` into the mail folder the SMTP sink uses,
 * so the mailbox page shows it. Bcc is read as a recipient and cut from the copy kept, as Exchange delivers it.
 *
 * Scripted answers (`reply(...)`, or `POST /_stand-in/replies` with the same JSON) replace the next requests'
 * answers in order: 429 or 503 with Retry-After, 504 after accepting the message, 403, or a connection closed
 * mid-request.
 */
import { arrivals } from './arrivals';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import MailComposer from 'nodemailer/lib/mail-composer';
import addressparser from 'nodemailer/lib/addressparser';
import { decodeEncodedWords, fieldValue, findHeaderEnd, headerFields, withoutBcc } from '../../shared/message/mimeHeaders';
import { listenHttp } from '../listenHttp';
import type { VerifiedAccessToken } from './identity/types';

export const GRAPH_AUDIENCE = 'https://graph.microsoft.com';

/** What the next request gets instead of the usual answer. */
export type ScriptedReply =
  | { status: 429 | 503; retryAfterSeconds?: number; code?: string }
  /** Takes the message (writes it) and then answers 504, as Graph sometimes does. */
  | { status: 504; deliver?: boolean }
  | { status: number; code: string; message?: string }
  /** Closes the connection once the request is read, without an answer; with `deliver` it takes the message first. */
  | { close: true; deliver?: boolean };

export interface GraphStandInOptions {
  host?: string;
  port?: number;
  verifyAccessToken: (token: string) => Promise<VerifiedAccessToken | undefined>;
  /** Where accepted messages go as `<ISO time>-<id>.eml`; without it they are kept in memory only. */
  mailDir?: string;
  /** Default 4 MB, Graph's limit for one request. */
  maxRequestBytes?: number;
  /** Addresses a mailbox may send as besides its own (Send As rights). */
  sendAs?: Record<string, string[]>;
  /** App-only tokens: the mailboxes the app may use (RBAC for Applications); default every mailbox. */
  appMailboxes?: string[];
  /** Default true; false keeps only the count (`taken`), for long runs such as the benchmark. */
  keepReceived?: boolean;
  /**
   * Exchange's sending limit per mailbox (30 a minute), as Graph applies it: a message over it in any sliding window
   * is answered 429 ApplicationThrottled with Retry-After, and counted in `throttled`.
   */
  mailboxBudget?: { perWindow: number; windowMs: number };
}

export interface GraphReceived {
  id: string;
  /** The `{user}` of the request path. */
  user: string;
  format: 'json' | 'mime';
  /** Every recipient, Bcc included (lower case). */
  recipients: string[];
  /** The message as kept (.eml): the MIME as sent minus Bcc, or the MIME made of the JSON message. */
  raw: Buffer;
  /** JSON requests: the body as parsed. */
  json?: { message: Record<string, unknown>; saveToSentItems?: boolean };
  clientRequestId: string | undefined;
  requestId: string;
  /** `app` for an app-only token. */
  tokenKind: 'user' | 'app';
}

export interface GraphStandIn {
  readonly url: string;
  /** Messages taken, in order (live array). */
  readonly received: GraphReceived[];
  /** Every sendMail request that reached the server, whatever its answer. */
  readonly requests: number;
  /** Messages taken, whether kept in `received` or not. */
  readonly taken: number;
  /** When each message was taken (epoch ms), in order. */
  readonly takenAt: readonly number[];
  /** Requests refused with 429 for the mailbox budget. */
  readonly throttled: number;
  /** Answers the next requests with these, in order. */
  reply(...replies: ScriptedReply[]): void;
  waitForMessages(n: number, timeoutMs?: number): Promise<GraphReceived[]>;
  stop(): Promise<void>;
}

const SEND_MAIL = /^\/v1\.0\/users\/([^/]+)\/sendMail$/i;
const PERMISSION = 'mail.send';

interface Refusal {
  status: number;
  code: string;
  message: string;
}

export async function startGraphStandIn(options: GraphStandInOptions): Promise<GraphStandIn> {
  const host = options.host ?? '127.0.0.1';
  const maxRequestBytes = options.maxRequestBytes ?? 4 * 1024 * 1024;
  const received: GraphReceived[] = [];
  const arrival = arrivals(received, 'Graph stand-in');
  const script: ScriptedReply[] = [];
  let requests = 0;
  let taken = 0;
  let throttled = 0;
  const takenAt: number[] = [];
  const takenBy = new Map<string, number[]>();
  let sequence = 0;

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) answer(res, randomUUID(), undefined, { status: 500, code: 'UnknownError', message: String(error) });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    if (req.method === 'POST' && url.pathname === '/_stand-in/replies') {
      const body = JSON.parse((await readBody(req, 64 * 1024)).body.toString('utf8')) as ScriptedReply | ScriptedReply[];
      script.push(...[body].flat());
      res.writeHead(204).end();
      return;
    }
    const match = SEND_MAIL.exec(url.pathname);
    const requestId = randomUUID();
    const clientRequestId = header(req, 'client-request-id');
    if (!match || req.method !== 'POST') {
      answer(res, requestId, clientRequestId, { status: 404, code: 'Request_ResourceNotFound', message: 'Not found.' });
      return;
    }
    requests++;
    const user = decodeURIComponent(match[1]!);
    const { body, size } = await readBody(req, maxRequestBytes);
    const scripted = script.shift();

    const checked = await checkToken(req, user);
    if ('status' in checked) return answer(res, requestId, clientRequestId, checked);
    const tokenKind = checked.sub === checked.clientId ? 'app' : 'user';
    if (size > maxRequestBytes)
      return answer(res, requestId, clientRequestId, {
        status: 413,
        code: 'ErrorMessageSizeExceeded',
        message: 'The message exceeds the maximum supported size.',
      });

    const contentType = (header(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    const parsed = contentType === 'text/plain' ? readMime(body, user, tokenKind) : await readJson(body, user, tokenKind);
    if ('status' in parsed) return answer(res, requestId, clientRequestId, parsed);

    if (scripted && !('close' in scripted) && scripted.status !== 504) {
      const retryAfter = 'retryAfterSeconds' in scripted ? scripted.retryAfterSeconds : undefined;
      return answer(
        res,
        requestId,
        clientRequestId,
        {
          status: scripted.status,
          code:
            ('code' in scripted ? scripted.code : undefined) ??
            (scripted.status === 429 ? 'ApplicationThrottled' : 'ErrorServerBusy'),
          message: 'message' in scripted && scripted.message ? scripted.message : 'Scripted by the test.',
        },
        retryAfter,
      );
    }
    const budget = options.mailboxBudget;
    if (budget && !scripted) {
      const now = Date.now();
      const times = (takenBy.get(user.toLowerCase()) ?? []).filter((at) => at > now - budget.windowMs);
      takenBy.set(user.toLowerCase(), times);
      if (times.length >= budget.perWindow) {
        throttled++;
        const retryAfter = Math.max(1, Math.ceil((times[0]! + budget.windowMs - now) / 1000));
        return answer(
          res,
          requestId,
          clientRequestId,
          { status: 429, code: 'ApplicationThrottled', message: 'Application is over its MailboxConcurrency limit.' },
          retryAfter,
        );
      }
      times.push(now);
    }
    // A 504 comes after Graph took the message unless told otherwise; a closed connection, before.
    const deliver =
      !scripted || ('close' in scripted ? scripted.deliver === true : 'deliver' in scripted ? scripted.deliver !== false : true);
    if (deliver) await keep({ ...parsed, user, clientRequestId, requestId });
    if (scripted && 'close' in scripted) {
      req.socket.destroy();
      return;
    }
    if (scripted) {
      return answer(res, requestId, clientRequestId, {
        status: 504,
        code: 'UnknownError',
        message: 'The gateway timed out.',
      });
    }
    res.writeHead(202, {
      'request-id': requestId,
      ...(clientRequestId ? { 'client-request-id': clientRequestId } : {}),
      'content-length': '0',
    });
    res.end();
  }

  async function checkToken(req: IncomingMessage, user: string): Promise<Refusal | VerifiedAccessToken> {
    const token = /^Bearer\s+(\S+)$/i.exec(header(req, 'authorization') ?? '')?.[1];
    const invalid = (message: string): Refusal => ({ status: 401, code: 'InvalidAuthenticationToken', message });
    if (!token) return invalid('Access token is empty.');
    const verified = await options.verifyAccessToken(token);
    if (!verified) return invalid('Access token has expired or is not yet valid.');
    const audiences = [verified.aud].flat().filter((a): a is string => typeof a === 'string');
    if (!audiences.some((a) => a.replace(/\/+$/, '').toLowerCase() === GRAPH_AUDIENCE)) return invalid('Invalid audience.');
    const denied: Refusal = {
      status: 403,
      code: 'ErrorAccessDenied',
      message: 'Access is denied. Check credentials and try again.',
    };
    const appOnly = verified.sub === verified.clientId;
    if (appOnly) {
      if (!(verified.roles ?? []).some((r) => r.toLowerCase() === PERMISSION)) return denied;
      if (options.appMailboxes && !options.appMailboxes.some((m) => m.toLowerCase() === user.toLowerCase())) return denied;
    } else {
      const scp = (verified.scp ?? verified.scope)
        .split(/\s+/)
        .map((s) => s.toLowerCase().replace(/^https:\/\/graph\.microsoft\.com\//, ''));
      if (!scp.includes(PERMISSION)) return denied;
      if (verified.email?.toLowerCase() !== user.toLowerCase()) return denied;
    }
    return verified;
  }

  type Parsed = Pick<GraphReceived, 'format' | 'recipients' | 'raw' | 'json' | 'tokenKind'>;

  function readMime(body: Buffer, user: string, tokenKind: Parsed['tokenKind']): Parsed | Refusal {
    const text = body.toString('latin1').trim();
    if (!/^[A-Za-z0-9+/\r\n]*={0,2}$/.test(text) || text.length === 0)
      return { status: 400, code: 'ErrorMimeContentInvalidBase64String', message: 'Invalid base64 string for MIME content.' };
    const mime = Buffer.from(text, 'base64');
    const headerEnd = findHeaderEnd(mime);
    if (headerEnd === undefined)
      return { status: 400, code: 'ErrorMimeContentInvalidBase64String', message: 'Invalid base64 string for MIME content.' };
    const head = mime.subarray(0, headerEnd);
    const fields = headerFields(head);
    const addresses = (name: string) =>
      fields
        .filter((f) => f.name === name)
        .flatMap((f) => addressparser(decodeEncodedWords(fieldValue(head, f)), { flatten: true }))
        .filter((a) => a.address);
    const from = addresses('from')[0];
    const refusal = sendAsRefusal(user, from?.address, from?.name);
    if (refusal) return refusal;
    const recipients = ['to', 'cc', 'bcc'].flatMap((name) => addresses(name).map((a) => a.address.toLowerCase()));
    if (recipients.length === 0) return noRecipients();
    return { format: 'mime', recipients, raw: withoutBcc(mime), tokenKind };
  }

  async function readJson(body: Buffer, user: string, tokenKind: Parsed['tokenKind']): Promise<Parsed | Refusal> {
    let json: { message?: Record<string, unknown>; saveToSentItems?: boolean };
    try {
      json = JSON.parse(body.toString('utf8')) as typeof json;
    } catch {
      return { status: 400, code: 'RequestBodyRead', message: 'Invalid JSON in the request body.' };
    }
    const message = json.message;
    if (!message || typeof message !== 'object')
      return { status: 400, code: 'ErrorInvalidRequest', message: 'message is required.' };
    const list = (key: string) => graphAddresses(message[key]);
    const from = list('from')[0];
    const refusal = sendAsRefusal(user, from?.address, from?.name);
    if (refusal) return refusal;
    const to = list('toRecipients');
    const cc = list('ccRecipients');
    const bcc = list('bccRecipients');
    const recipients = [...to, ...cc, ...bcc].map((a) => a.address.toLowerCase());
    if (recipients.length === 0 || recipients.some((a) => !/^[^@\s]+@[^@\s]+$/.test(a))) return noRecipients();
    const headers = Array.isArray(message.internetMessageHeaders)
      ? (message.internetMessageHeaders as Array<{ name: string; value: string }>)
      : [];
    const bad = headers.find((h) => !/^x-/i.test(h.name));
    if (bad)
      return {
        status: 400,
        code: 'InvalidInternetMessageHeader',
        message: `The internet message header name '${bad.name}' should start with 'x-' or 'X-'.`,
      };
    const body2 = message.body as { contentType?: string; content?: string } | undefined;
    const attachments = Array.isArray(message.attachments)
      ? (message.attachments as Array<Record<string, string | boolean>>)
      : [];
    const raw = await new MailComposer({
      from: from ?? user,
      to,
      cc,
      subject: typeof message.subject === 'string' ? message.subject : '',
      ...(body2?.contentType?.toLowerCase() === 'html' ? { html: body2.content ?? '' } : { text: body2?.content ?? '' }),
      ...(typeof message.internetMessageId === 'string' ? { messageId: message.internetMessageId } : {}),
      replyTo: list('replyTo'),
      headers: Object.fromEntries(headers.map((h) => [h.name, h.value])),
      attachments: attachments.map((a) => ({
        filename: String(a.name ?? 'attachment'),
        content: Buffer.from(String(a.contentBytes ?? ''), 'base64'),
        contentType: String(a.contentType ?? 'application/octet-stream'),
        ...(typeof a.contentId === 'string' ? { cid: a.contentId } : {}),
      })),
    })
      .compile()
      .build();
    return { format: 'json', recipients, raw, json: json as GraphReceived['json'], tokenKind };
  }

  /** Exchange: a display name with "@" in it, or another mailbox's address without Send As rights, is refused. */
  function sendAsRefusal(user: string, address: string | undefined, name: string | undefined): Refusal | undefined {
    const allowed = [user, ...(options.sendAs?.[user.toLowerCase()] ?? [])].map((a) => a.toLowerCase());
    if (name?.includes('@') || (address && !allowed.includes(address.toLowerCase())))
      return {
        status: 403,
        code: 'ErrorSendAsDenied',
        message:
          'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.',
      };
    return undefined;
  }

  async function keep(mail: Omit<GraphReceived, 'id'>): Promise<void> {
    const id = `${Date.now().toString(36)}${(++sequence).toString(36)}${randomBytes(3).toString('hex')}`.toUpperCase();
    if (options.mailDir) {
      await mkdir(options.mailDir, { recursive: true });
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      await writeFile(path.join(options.mailDir, `${stamp}-${id}.eml`), mail.raw);
    }
    taken++;
    takenAt.push(Date.now());
    if (options.keepReceived !== false) received.push({ id, ...mail });
    arrival.arrived();
  }

  const listening = await listenHttp(server, host, options.port ?? 0);
  return {
    url: listening.url,
    received,
    get requests() {
      return requests;
    },
    get taken() {
      return taken;
    },
    takenAt,
    get throttled() {
      return throttled;
    },
    reply(...replies) {
      script.push(...replies);
    },
    waitForMessages: (n, timeoutMs) => arrival.waitFor(n, timeoutMs),
    stop: listening.stop,
  };
}

function noRecipients(): Refusal {
  return { status: 400, code: 'ErrorInvalidRecipients', message: 'At least one recipient is not valid., Recipient is missing.' };
}

function graphAddresses(value: unknown): Array<{ address: string; name?: string }> {
  const list = Array.isArray(value) ? value : value ? [value] : [];
  return list
    .map((item) => (item as { emailAddress?: { address?: unknown; name?: unknown } }).emailAddress)
    .filter((e): e is { address: string; name?: unknown } => typeof e?.address === 'string')
    .map((e) => ({ address: e.address, ...(typeof e.name === 'string' && e.name ? { name: e.name } : {}) }));
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function answer(
  res: ServerResponse,
  requestId: string,
  clientRequestId: string | undefined,
  refusal: Refusal,
  retryAfterSeconds?: number,
): void {
  const body = JSON.stringify({
    error: {
      code: refusal.code,
      message: refusal.message,
      innerError: {
        date: new Date().toISOString().slice(0, 19),
        'request-id': requestId,
        ...(clientRequestId ? { 'client-request-id': clientRequestId } : {}),
      },
    },
  });
  res.writeHead(refusal.status, {
    'content-type': 'application/json',
    'request-id': requestId,
    ...(clientRequestId ? { 'client-request-id': clientRequestId } : {}),
    ...(retryAfterSeconds !== undefined ? { 'retry-after': String(retryAfterSeconds) } : {}),
  });
  res.end(body);
}

/** The body, read to the end; past `limit` bytes the rest is read and dropped, and `size` says how much came. */
async function readBody(req: IncomingMessage, limit: number): Promise<{ body: Buffer; size: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  return { body: Buffer.concat(chunks), size };
}
