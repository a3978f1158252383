/**
 * A real SMTP submission server for tests and the local dev stack: it takes mail only over XOAUTH2,
 * answers a rejected token the way Gmail does (a 334 challenge carrying a JSON error, then 535 5.7.8)
 * and keeps every accepted message in memory and, optionally, as .eml files.
 */
import { arrivals } from './arrivals';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { listenSmtp } from './listenSmtp';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

export type SmtpSinkSecurity = 'starttls' | 'tls' | 'plain';

export interface SmtpSinkOptions {
  host?: string;
  port?: number;
  /** `starttls`: cleartext listener, AUTH only after STARTTLS. `tls`: implicit TLS. `plain`: no TLS at all. */
  security: SmtpSinkSecurity;
  /** PEM key and certificate, required unless `security` is `plain`. */
  key?: string;
  cert?: string;
  verifyToken: (user: string, accessToken: string) => Promise<boolean> | boolean;
  /** When set, each accepted message is also written there as `<timestamp>-<id>.eml`. */
  mailDir?: string;
  /** Concurrent connections; more are greeted with 421. */
  maxConnections?: number;
  /** Log the SMTP dialogue to the console. */
  logger?: boolean;
  /** Name used in the greeting and replies. */
  name?: string;
  /** Waits this long after the message data before answering it (a slow server); default 0. */
  replyDelayMs?: number;
}

export interface ReceivedMail {
  /** Queue id, as given in the 250 reply after DATA. */
  readonly id: string;
  readonly authUser: string;
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  readonly raw: Buffer;
  readonly receivedAt: Date;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  /** Accepted messages in arrival order (live array). */
  readonly received: ReceivedMail[];
  /** Resolves with everything received so far once there are at least `n` messages; rejects after `timeoutMs`. */
  waitForMessages(n: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** XOAUTH2 attempts whose token was rejected. */
  readonly authFailures: number;
  /** Most TCP connections open at the same time. */
  readonly connectionsPeak: number;
  stop(): Promise<void>;
}

/** What Gmail puts, base64 encoded, into the 334 challenge after a rejected token. */
const GMAIL_TOKEN_ERROR = { status: '400', schemes: 'Bearer', scope: 'https://mail.google.com/' };

type Connection = SMTPServer['connections'] extends Set<infer C> ? C : never;

export async function startSmtpSink(options: SmtpSinkOptions): Promise<SmtpSink> {
  const { security } = options;
  if (security !== 'plain' && (!options.key || !options.cert))
    throw new Error(`startSmtpSink: security "${security}" needs key and cert`);
  const host = options.host ?? '127.0.0.1';
  const name = options.name ?? 'smtp-sink.localhost';
  const received: ReceivedMail[] = [];
  const arrival = arrivals(received, 'smtp sink');
  let authFailures = 0;
  let sequence = 0;

  const serverOptions: SMTPServerOptions = {
    name,
    logger: options.logger ?? false,
    disableReverseLookup: true,
    authMethods: ['XOAUTH2'],
    authRequiredMessage: '5.7.0 Authentication Required',
    size: 35_882_577,
    rejectOversized: true,
    maxClients: options.maxConnections,
    ...(security === 'tls' && { secure: true, key: options.key, cert: options.cert }),
    ...(security === 'starttls' && { secure: false, hideSTARTTLS: false, key: options.key, cert: options.cert }),
    ...(security === 'plain' && { secure: false, disabledCommands: ['STARTTLS'], allowInsecureAuth: true }),
  };

  serverOptions.onAuth = (auth, session, callback) => {
    void authenticate(auth).then(
      (user) => {
        if (user !== undefined) return callback(null, { user });
        authFailures++;
        callback(null, { data: GMAIL_TOKEN_ERROR });
        replaceFailureReply(server, session);
      },
      () => callback(Object.assign(new Error('4.7.0 Temporary authentication failure'), { responseCode: 454 })),
    );
  };

  const authenticate = async (auth: SMTPServerAuthentication) => {
    if (auth.method !== 'XOAUTH2' || !auth.username || !auth.accessToken) return undefined;
    return (await options.verifyToken(auth.username, auth.accessToken)) ? auth.username : undefined;
  };

  serverOptions.onData = (stream, session, callback) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('error', (err) => callback(err));
    stream.once('end', async () => {
      if (stream.sizeExceeded) return callback(Object.assign(new Error('5.3.4 Message too big'), { responseCode: 552 }));
      if (options.replyDelayMs) await new Promise((resolve) => setTimeout(resolve, options.replyDelayMs));
      const id = `${Date.now().toString(36)}${(++sequence).toString(36)}${randomBytes(3).toString('hex')}`.toUpperCase();
      const mail: ReceivedMail = {
        id,
        authUser: String(session.user),
        envelope: {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
        },
        raw: Buffer.concat(chunks),
        receivedAt: new Date(),
      };
      void store(mail).then(
        () => {
          received.push(mail);
          arrival.arrived();
          callback(null, `2.0.0 OK ${id} - ${name}`);
        },
        (err: Error) =>
          callback(Object.assign(new Error(`4.3.0 Could not store message: ${err.message}`), { responseCode: 451 })),
      );
    });
  };

  const store = async (mail: ReceivedMail) => {
    if (!options.mailDir) return;
    await mkdir(options.mailDir, { recursive: true });
    const stamp = mail.receivedAt.toISOString().replace(/[:.]/g, '-');
    await writeFile(path.join(options.mailDir, `${stamp}-${mail.id}.eml`), mail.raw);
  };

  const server = new SMTPServer(serverOptions);
  const listening = await listenSmtp(server, host, options.port);
  const { port } = listening;

  return {
    host,
    port,
    received,
    get authFailures() {
      return authFailures;
    },
    get connectionsPeak() {
      return listening.connectionsPeak;
    },
    waitForMessages: (n, timeoutMs) => arrival.waitFor(n, timeoutMs),
    stop: () => listening.stop(),
  };
}

/** Parses a received message (headers, text, html, attachments). */
export function parseReceived(mail: Pick<ReceivedMail, 'raw'>): Promise<ParsedMail> {
  return simpleParser(mail.raw);
}

/**
 * smtp-server answers the client's reply to the challenge with "535 Error: Username and Password not
 * accepted"; Gmail says "535 5.7.8 Username and Password not accepted". The handler for that reply is set on
 * the connection synchronously inside the onAuth callback, so it can be swapped right after.
 */
function replaceFailureReply(server: SMTPServer, session: SMTPServerSession): void {
  const connection = [...server.connections].find((c: Connection) => c.session === session);
  if (!connection || typeof connection._nextHandler !== 'function') return;
  connection._nextHandler = function (this: Connection, _command, done) {
    this.send(535, '5.7.8 Username and Password not accepted', false);
    done();
  };
}
