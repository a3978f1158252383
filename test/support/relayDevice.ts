/**
 * The device side of the relay tests: nodemailer as a scanner or an ERP system would use it, MIME built with
 * nodemailer's MailComposer (so a test knows the exact bytes that went out), and a raw SMTP dialogue for the
 * steps nodemailer hides (AUTH before STARTTLS, a message cut off in the middle of DATA, pipelined commands).
 */
import net from 'node:net';
import tls from 'node:tls';
import nodemailer, { type Transporter } from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import { loadTestTls } from './certs';

export interface DeviceOptions {
  port: number;
  host?: string;
  user?: string;
  pass?: string;
  /** Implicit TLS (port 465 style); default STARTTLS, required. */
  secure?: boolean;
  /** No TLS at all (the plain port). */
  plain?: boolean;
  /** Source address, e.g. 127.0.0.2 to appear as another client on loopback. */
  localAddress?: string;
  pool?: boolean;
  maxConnections?: number;
  authMethod?: 'PLAIN' | 'LOGIN';
}

export async function deviceTransport(options: DeviceOptions) {
  const { caPem } = await loadTestTls();
  return nodemailer.createTransport({
    host: options.host ?? '127.0.0.1',
    port: options.port,
    secure: options.secure ?? false,
    requireTLS: !options.secure && !options.plain,
    ignoreTLS: options.plain ?? false,
    tls: { ca: caPem, servername: 'localhost' },
    ...(options.user !== undefined ? { auth: { user: options.user, pass: options.pass ?? '' } } : {}),
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    ...(options.authMethod ? { authMethod: options.authMethod } : {}),
    ...(options.pool ? { pool: true, maxConnections: options.maxConnections ?? 1, maxMessages: Infinity } : {}),
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 60_000,
    logger: false,
  } as SMTPTransport.Options);
}

/**
 * The exact bytes nodemailer puts on the wire for `mail` (Bcc kept in the header, as a device might send it).
 * SMTP carries lines ending in CRLF, so nodemailer turns a bare LF of a text part into CRLF when it sends.
 */
export async function composeMime(mail: Mail.Options): Promise<Buffer> {
  const node = new MailComposer(mail).compile();
  node.keepBcc = true;
  const built = await node.build();
  return Buffer.from(built.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

/** Sends finished MIME with an explicit envelope; resolves with nodemailer's info (response: the 250 line). */
export async function sendMime(
  transport: Transporter<SMTPTransport.SentMessageInfo>,
  raw: Buffer,
  envelope: { from: string; to: string[] },
) {
  return transport.sendMail({ envelope, raw });
}

/** The id in `250 2.0.0 queued as <id>`. */
export function queuedId(response: string): string {
  const match = /^250 2\.0\.0 queued as (\S+)$/.exec(response.trim());
  if (!match) throw new Error(`not a "queued as" reply: ${response}`);
  return match[1]!;
}

export interface SmtpReply {
  code: number;
  text: string;
}

/** A raw SMTP client: one command, one reply, and direct writes for partial DATA. */
export class SmtpDialogue {
  private socket: net.Socket | tls.TLSSocket;
  private buffer = '';
  private waiting: Array<(reply: SmtpReply) => void> = [];
  private replies: SmtpReply[] = [];
  private closeListeners: Array<() => void> = [];
  closed = false;
  greeting!: SmtpReply;

  private constructor(socket: net.Socket | tls.TLSSocket) {
    this.socket = socket;
    this.attach(socket);
  }

  static async connect(options: { port: number; host?: string; secure?: boolean; localAddress?: string }): Promise<SmtpDialogue> {
    const host = options.host ?? '127.0.0.1';
    const { caPem } = await loadTestTls();
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const plain = net.connect({ host, port: options.port, localAddress: options.localAddress });
      const s = options.secure ? tls.connect({ socket: plain, ca: caPem, servername: 'localhost' }, () => resolve(s)) : plain;
      if (!options.secure) plain.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    const dialogue = new SmtpDialogue(socket);
    dialogue.greeting = await dialogue.reply();
    return dialogue;
  }

  private attach(socket: net.Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      for (;;) {
        const match = /^(\d{3}) .*\r?\n/m.exec(this.buffer);
        if (!match) break;
        const end = match.index + match[0].length;
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end);
        const reply = { code: Number(match[1]), text: block.trim() };
        const waiter = this.waiting.shift();
        if (waiter) waiter(reply);
        else this.replies.push(reply);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const listener of this.closeListeners.splice(0)) listener();
      for (const waiter of this.waiting.splice(0)) waiter({ code: 0, text: '(connection closed)' });
    });
  }

  /** The next reply; `{ code: 0 }` if the connection closes first. */
  reply(timeoutMs = 30_000): Promise<SmtpReply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve({ code: 0, text: '(connection closed)' });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no SMTP reply within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  async command(line: string, timeoutMs?: number): Promise<SmtpReply> {
    this.socket.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (error) => (error ? reject(error) : resolve())));
  }

  /** STARTTLS and the handshake; `options` replace the defaults (an old device: TLS 1.1 at most). */
  async startTls(options: tls.ConnectionOptions = {}): Promise<void> {
    const reply = await this.command('STARTTLS');
    if (reply.code !== 220) throw new Error(`STARTTLS refused: ${reply.text}`);
    const { caPem } = await loadTestTls();
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, ca: caPem, servername: 'localhost', ...options }, () => resolve(s));
      s.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  /** EHLO, STARTTLS, EHLO, AUTH PLAIN: the usual opening. Returns the AUTH reply. */
  async openAndLogin(user: string, pass: string): Promise<SmtpReply> {
    await this.command('EHLO device.test');
    await this.startTls();
    await this.command('EHLO device.test');
    return this.login(user, pass);
  }

  login(user: string, pass: string): Promise<SmtpReply> {
    return this.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`);
  }

  private endsWithNewline = true;

  /** Dot-stuffs `body` and writes it without the final dot. */
  writeBody(body: Buffer): Promise<void> {
    if (body.length > 0) this.endsWithNewline = body.subarray(-2).toString('latin1') === '\r\n';
    return this.write(dotStuff(body));
  }

  /** The final dot (on a line of its own); resolves with the reply to the message. */
  finishData(timeoutMs?: number): Promise<SmtpReply> {
    this.socket.write(this.endsWithNewline ? '.\r\n' : '\r\n.\r\n');
    return this.reply(timeoutMs);
  }

  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  end(): void {
    this.socket.destroy();
  }
}

/** SMTP transparency: a line starting with "." gets another one. */
export function dotStuff(body: Buffer): Buffer {
  return Buffer.from(body.toString('latin1').replace(/(^|\n)\./g, '$1..'), 'latin1');
}
