/**
 * The local mailbox: a small web page over the .eml files the local SMTP server writes, so a person can read
 * what the app sent. Lists messages newest first, shows one (headers, text, attachments to download), and
 * serves the raw .eml. Everything from a message is escaped; its HTML part is only served sandboxed.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import path from 'node:path';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { HTML_SECURITY_HEADERS, html, page, type SafeHtml } from '../../shared/web/html';
import { listenHttp } from '../listenHttp';

export interface MailboxPageOptions {
  host: string;
  port: number;
  mailDir: string;
}

export interface MailboxPage {
  readonly url: string;
  stop(): Promise<void>;
}

export interface MailboxEntry {
  file: string;
  receivedAt: string;
  from: string;
  to: string;
  subject: string;
  /** The message's own Content-Type header, as it carries it (`multipart/mixed; boundary=...`). */
  contentType: string;
  attachments: { filename: string; contentType: string; size: number }[];
}

const FILE_NAME = /^[A-Za-z0-9._-]+\.eml$/;
const LIST_LIMIT = 200;

export async function startMailboxPage(options: MailboxPageOptions): Promise<MailboxPage> {
  const mailbox = new MailFolder(options.mailDir);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    const pathname = new URL(req.url ?? '/', 'http://mailbox').pathname;
    route(mailbox, pathname, res).catch((error: unknown) => {
      console.error('mailbox page error:', error);
      if (!res.headersSent) sendPage(res, 500, 'Error', html`<p>The mailbox could not be read.</p>`);
    });
  });
  return listenHttp(server, options.host, options.port);
}

async function route(mailbox: MailFolder, pathname: string, res: ServerResponse): Promise<void> {
  if (pathname === '/') return sendPage(res, 200, 'Local mailbox', listView(await mailbox.list()));
  if (pathname === '/messages.json') return sendJson(res, await mailbox.list());
  const match = /^\/messages\/([^/]+)(?:\/(raw|html|attachments\/(\d+)))?$/.exec(pathname);
  const file = match?.[1];
  const mail = file && FILE_NAME.test(file) ? await mailbox.read(file) : undefined;
  if (!match || !file || !mail)
    return sendPage(res, 404, 'Not found', html`<p>There is no such message. <a href="/">Back to the mailbox</a></p>`);

  const [, , part, index] = match;
  if (part === undefined) return sendPage(res, 200, mail.parsed.subject || '(no subject)', messageView(file, mail.parsed));
  if (part === 'raw') return sendDownload(res, mail.raw, 'message/rfc822', file);
  if (part === 'html') {
    if (typeof mail.parsed.html !== 'string') return sendPage(res, 404, 'Not found', html`<p>This message has no HTML part.</p>`);
    // Shown as the sender wrote it, so only in a sandbox: no scripts, no forms, nothing loaded from elsewhere.
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': 'no-store',
    });
    return void res.end(mail.parsed.html);
  }
  const attachment = mail.parsed.attachments[Number(index)];
  if (!attachment) return sendPage(res, 404, 'Not found', html`<p>There is no such attachment.</p>`);
  return sendDownload(res, attachment.content, 'application/octet-stream', attachment.filename ?? `attachment-${index}`);
}

function listView(entries: MailboxEntry[]): SafeHtml {
  if (entries.length === 0)
    return html`<p>No mail yet. Send some with <code>npm run enqueue -- --to someone@example.com --subject Hello</code>.</p>`;
  return html`<p class="note">${entries.length} message(s), newest first. Files: <code>*.eml</code> in the mail folder.</p>
    <table>
      <thead>
        <tr>
          <th>Received</th>
          <th>From</th>
          <th>To</th>
          <th>Subject</th>
        </tr>
      </thead>
      <tbody>
        ${entries.map(
          (entry) =>
            html`<tr>
              <td class="mono">${entry.receivedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</td>
              <td>${entry.from}</td>
              <td>${entry.to}</td>
              <td>
                <a href="/messages/${encodeURIComponent(entry.file)}">${entry.subject || '(no subject)'}</a
                >${entry.attachments.length > 0 ? ` (${entry.attachments.length} attachment(s))` : ''}
              </td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}

function messageView(file: string, mail: ParsedMail): SafeHtml {
  const base = `/messages/${encodeURIComponent(file)}`;
  const headers: [string, string | undefined][] = [
    ['From', mail.from?.text],
    ['To', addressText(mail.to)],
    ['Cc', addressText(mail.cc)],
    ['Reply-To', mail.replyTo?.text],
    ['Subject', mail.subject],
    ['Date', mail.date?.toISOString()],
    ['Message-ID', mail.messageId],
    ['Content-Type', contentTypeOf(mail)],
  ];
  return html`<p>
      <a href="/">← All messages</a> ·
      <a href="${base}/raw">Download .eml</a>${typeof mail.html === 'string' ? html` · <a href="${base}/html">HTML part</a>` : ''}
    </p>
    <dl>
      ${headers
        .filter(([, value]) => value)
        .map(
          ([name, value]) =>
            html`<dt>${name}</dt>
              <dd>${value}</dd>`,
        )}
    </dl>
    ${
      mail.attachments.length > 0
        ? html`<h2>Attachments</h2>
            <ul>
              ${mail.attachments.map(
                (attachment, index) =>
                  html`<li>
                    <a href="${base}/attachments/${index}">${attachment.filename ?? `attachment-${index}`}</a>
                    <span class="note">${attachment.contentType}, ${attachment.size} bytes</span>
                  </li>`,
              )}
            </ul>`
        : ''
    }
    <h2>Text</h2>
    <pre style="white-space:pre-wrap">${mail.text ?? '(no text part)'}</pre>`;
}

/** The top-level Content-Type header with its parameters; `text/plain` when the message has none (RFC 2045). */
function contentTypeOf(mail: ParsedMail): string {
  const header = mail.headers.get('content-type');
  if (!header) return 'text/plain; charset=us-ascii (no Content-Type header)';
  if (typeof header === 'string') return header;
  if (typeof header === 'object' && 'params' in header) {
    const params = Object.entries(header.params).map(([name, value]) => `; ${name}=${value}`);
    return `${header.value}${params.join('')}`;
  }
  return String(header);
}

function addressText(value: AddressObject | AddressObject[] | undefined): string | undefined {
  if (!value) return undefined;
  return (Array.isArray(value) ? value : [value]).map((a) => a.text).join(', ');
}

function sendPage(res: ServerResponse, status: number, title: string, body: SafeHtml): void {
  res.writeHead(status, HTML_SECURITY_HEADERS).end(page({ title, body }).value);
}

function sendJson(res: ServerResponse, value: unknown): void {
  res
    .writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' })
    .end(JSON.stringify(value));
}

function sendDownload(res: ServerResponse, content: Buffer, contentType: string, filename: string): void {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  res
    .writeHead(200, {
      'Content-Type': contentType,
      'Content-Disposition': `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`,
      'Content-Length': content.length,
      'Content-Security-Policy': "sandbox; default-src 'none'",
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
    })
    .end(content);
}

/** The .eml files, parsed once each (a file name never changes content: the SMTP server writes new names). */
class MailFolder {
  private readonly parsed = new Map<string, Promise<{ raw: Buffer; parsed: ParsedMail; receivedAt: Date }>>();

  constructor(private readonly dir: string) {}

  async list(): Promise<MailboxEntry[]> {
    let files: string[];
    try {
      files = (await readdir(this.dir)).filter((name) => FILE_NAME.test(name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    // The SMTP server names files `<ISO time>-<id>.eml`, so names sort by arrival.
    const newest = files.sort().reverse().slice(0, LIST_LIMIT);
    const entries = await Promise.all(newest.map(async (file) => ({ file, mail: await this.read(file) })));
    return entries.flatMap(({ file, mail }) =>
      mail
        ? [
            {
              file,
              receivedAt: mail.receivedAt.toISOString(),
              from: mail.parsed.from?.text ?? '',
              to: addressText(mail.parsed.to) ?? '',
              subject: mail.parsed.subject ?? '',
              contentType: contentTypeOf(mail.parsed),
              attachments: mail.parsed.attachments.map((a) => ({
                filename: a.filename ?? '',
                contentType: a.contentType,
                size: a.size,
              })),
            },
          ]
        : [],
    );
  }

  async read(file: string): Promise<{ raw: Buffer; parsed: ParsedMail; receivedAt: Date } | undefined> {
    const full = path.join(this.dir, file);
    let pending = this.parsed.get(file);
    if (!pending) {
      pending = (async () => {
        const [raw, info] = await Promise.all([readFile(full), stat(full)]);
        return { raw, parsed: await simpleParser(raw), receivedAt: info.mtime };
      })();
      this.parsed.set(file, pending);
      pending.catch(() => this.parsed.delete(file));
    }
    try {
      return await pending;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
}
