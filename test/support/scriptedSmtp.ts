/**
 * A byte-level SMTP server whose replies are scripted per stage, to put a client through every reply class
 * of real providers: transient and permanent failures, a greeting that never comes, a reply that never
 * comes, a socket dropped mid-session. Everything not scripted behaves like a well-mannered submission
 * server (EHLO, STARTTLS, AUTH XOAUTH2, MAIL, RCPT, DATA, RSET, NOOP, QUIT).
 *
 * Attempts are counted per stage across all connections, so `{ attempt: 1, reply: ... }` on `data` fails
 * the first message the server receives, whichever connection it came on, and lets the retry through.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { GMAIL_XOAUTH2_CHALLENGE, PROVIDER_REPLIES, formatReply, type SmtpReply, type SmtpStage } from './providerReplies';

export type { SmtpReply, SmtpStage };

export type ScriptedSecurity = 'starttls' | 'tls' | 'plain';

export interface ScriptStep {
  /** 1-based attempt numbers of the stage this step applies to; every attempt when omitted. */
  attempt?: number | readonly number[];
  /**
   * `reply` (the default when `reply` is set): answer with `reply`. `accept`: the default answer.
   * `hang`: read the command and never answer (and ignore anything after it). `close`: drop the socket.
   */
  action?: 'reply' | 'accept' | 'hang' | 'close';
  reply?: SmtpReply;
  /** AUTH only: first send `334 <challenge>`, then give `reply` to whatever the client answers (Gmail's bad-token dance). */
  challenge?: string;
  /** Wait this long before acting. */
  delayMs?: number;
  /** Close the connection after the reply. A 421 always closes. */
  closeAfter?: boolean;
}

export interface StageContext {
  readonly stage: SmtpStage;
  /** 1-based count of this stage across the server's lifetime. */
  readonly attempt: number;
  /** 1-based number of the connection. */
  readonly connection: number;
  /** The command line that reached the stage (empty for `connect`, the AUTH line is redacted). */
  readonly command: string;
  readonly user: string | undefined;
}

export type StageScript = ScriptStep | readonly ScriptStep[] | ((ctx: StageContext) => ScriptStep | undefined);
export type SmtpScript = Partial<Record<SmtpStage, StageScript>>;

export interface ScriptedSmtpOptions {
  security: ScriptedSecurity;
  /** PEM key and certificate, required unless `security` is `plain`. */
  key?: string;
  cert?: string;
  host?: string;
  port?: number;
  /** Name used in the greeting and EHLO reply. */
  hostname?: string;
  script?: SmtpScript;
  /** Checks XOAUTH2 tokens that the script lets through; any token is accepted without it. */
  verifyToken?: (user: string, accessToken: string) => boolean | Promise<boolean>;
  /** What a token that fails `verifyToken` gets; Gmail's challenge and 535 5.7.8 by default. */
  authFailure?: ScriptStep;
  /** MAIL before a successful AUTH is refused (default true). */
  requireAuth?: boolean;
}

export interface ScriptedMessage {
  readonly id: string;
  readonly connection: number;
  readonly authUser: string | undefined;
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  readonly raw: Buffer;
  readonly receivedAt: Date;
}

export interface ScriptedCommand {
  readonly connection: number;
  /** The client's line, with AUTH data replaced by `<redacted>`. */
  readonly line: string;
}

export interface ScriptedSmtp {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far (after the TLS handshake for implicit TLS). */
  readonly connections: number;
  readonly openConnections: number;
  /** Every command line received, in order. */
  readonly commands: readonly ScriptedCommand[];
  /** Messages answered with a 2xx after DATA. */
  readonly accepted: readonly ScriptedMessage[];
  /** AUTH attempts that did not end in 235. */
  readonly authFailures: number;
  /** How many times each stage was reached. */
  attempts(stage: SmtpStage): number;
  /** Every line the server wrote, per connection, for debugging a failing test. */
  transcript(): string;
  stop(): Promise<void>;
}

const CRLF = Buffer.from('\r\n');
const DATA_END = Buffer.from('\r\n.\r\n');
const MAX_LINE = 64 * 1024;

const reply = (code: number, enhanced: string | undefined, text: string): SmtpReply => ({ code, enhanced, lines: [text] });

export async function startScriptedSmtp(options: ScriptedSmtpOptions): Promise<ScriptedSmtp> {
  if (options.security !== 'plain' && (!options.key || !options.cert))
    throw new Error(`startScriptedSmtp: security "${options.security}" needs key and cert`);
  const state = new ServerState(options);
  const tlsOptions = { key: options.key, cert: options.cert };
  const secureContext = options.security === 'plain' ? undefined : tls.createSecureContext(tlsOptions);
  const server: net.Server =
    options.security === 'tls'
      ? tls.createServer(tlsOptions, (socket) => state.open(socket, true, secureContext))
      : net.createServer((socket) => state.open(socket, false, secureContext));
  // A client that fails the handshake never becomes a session; keep it from surfacing as an unhandled error.
  server.on('tlsClientError', () => {});
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    host,
    port,
    get connections() {
      return state.connectionCount;
    },
    get openConnections() {
      return state.sessions.size;
    },
    commands: state.commands,
    accepted: state.accepted,
    get authFailures() {
      return state.authFailures;
    },
    attempts: (stage) => state.attemptCount.get(stage) ?? 0,
    transcript: () => state.log.join('\n'),
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of state.sessions) session.destroy();
      await closed;
    },
  };
}

class ServerState {
  readonly sessions = new Set<Session>();
  readonly commands: ScriptedCommand[] = [];
  readonly accepted: ScriptedMessage[] = [];
  readonly attemptCount = new Map<SmtpStage, number>();
  readonly log: string[] = [];
  connectionCount = 0;
  authFailures = 0;
  readonly hostname: string;

  constructor(readonly options: ScriptedSmtpOptions) {
    this.hostname = options.hostname ?? 'scripted.smtp.test';
  }

  open(socket: net.Socket, secure: boolean, secureContext: tls.SecureContext | undefined): void {
    const session = new Session(this, ++this.connectionCount, socket, secure, secureContext);
    this.sessions.add(session);
    void session.start();
  }

  /** Counts the attempt and picks the scripted step, if any. */
  step(stage: SmtpStage, session: Session, command: string): ScriptStep | undefined {
    const attempt = (this.attemptCount.get(stage) ?? 0) + 1;
    this.attemptCount.set(stage, attempt);
    const script = this.options.script?.[stage];
    if (!script) return undefined;
    if (typeof script === 'function') return script({ stage, attempt, connection: session.id, command, user: session.user });
    const steps: readonly ScriptStep[] = Array.isArray(script) ? script : [script as ScriptStep];
    return steps.find((s) => s.attempt === undefined || [s.attempt].flat().includes(attempt));
  }
}

class Session {
  private socket: net.Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private mode: 'command' | 'data' = 'command';
  /** Wakes a handler that waits for more input outside the command loop (AUTH continuations). */
  private wake: (() => void) | undefined;
  private pumping = false;
  private dead = false;
  private hung = false;
  private greeted = false;
  private ehloDone = false;
  user: string | undefined;
  private from: string | undefined;
  private to: string[] = [];

  constructor(
    private readonly server: ServerState,
    readonly id: number,
    socket: net.Socket,
    private secure: boolean,
    private readonly secureContext: tls.SecureContext | undefined,
  ) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', () => {});
    socket.once('close', () => {
      this.dead = true;
      this.server.sessions.delete(this);
      this.wakeUp();
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.hung || this.dead) return;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    this.wakeUp();
    void this.pump();
  };

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  destroy(): void {
    this.dead = true;
    this.socket.destroy();
  }

  async start(): Promise<void> {
    const step = this.server.step('connect', this, '');
    if (!(await this.prelude(step))) return;
    const greeting = this.replyOf(step) ?? reply(220, undefined, `${this.server.hostname} ESMTP scripted server ready`);
    this.write(greeting);
    if (greeting.code >= 300 || step?.closeAfter) return this.end();
    this.greeted = true;
    void this.pump();
  }

  /** Handles delay, hang and close of a step; false when the session must not go on. */
  private async prelude(step: ScriptStep | undefined): Promise<boolean> {
    if (step?.delayMs) await sleep(step.delayMs);
    if (this.dead) return false;
    if (step?.action === 'hang') {
      this.hung = true;
      this.buffer = Buffer.alloc(0);
      return false;
    }
    if (step?.action === 'close') {
      this.destroy();
      return false;
    }
    return true;
  }

  private replyOf(step: ScriptStep | undefined): SmtpReply | undefined {
    if (!step || step.action === 'accept') return undefined;
    return step.reply;
  }

  /** Sends the scripted reply or the default; returns the reply sent, or undefined if the session stopped. */
  private async answer(step: ScriptStep | undefined, fallback: SmtpReply): Promise<SmtpReply | undefined> {
    if (!(await this.prelude(step))) return undefined;
    const sent = this.replyOf(step) ?? fallback;
    this.write(sent);
    if (sent.code === 421 || step?.closeAfter) {
      this.end();
      return undefined;
    }
    return sent;
  }

  private write(r: SmtpReply): void {
    const text = formatReply(r);
    this.server.log.push(`[${this.id}] S: ${text.replace(/\r\n/g, `\n[${this.id}] S: `)}`);
    if (!this.dead && this.socket.writable) this.socket.write(`${text}\r\n`);
  }

  private end(): void {
    this.dead = true;
    this.buffer = Buffer.alloc(0);
    this.socket.end();
  }

  private async pump(): Promise<void> {
    if (this.pumping || !this.greeted) return;
    this.pumping = true;
    try {
      while (!this.dead && !this.hung) {
        if (this.mode === 'data') {
          const body = this.takeData();
          if (!body) break;
          this.mode = 'command';
          await this.onMessage(body);
          continue;
        }
        const line = this.takeLine();
        if (line === undefined) break;
        await this.onCommand(line);
      }
    } catch (err) {
      this.server.log.push(`[${this.id}] handler error: ${(err as Error).message}`);
      this.destroy();
    } finally {
      this.pumping = false;
    }
  }

  private takeLine(): string | undefined {
    const at = this.buffer.indexOf('\n');
    if (at < 0) {
      if (this.buffer.length > MAX_LINE) {
        this.write(reply(500, '5.5.6', 'Line too long'));
        this.end();
      }
      return undefined;
    }
    const line = this.buffer.subarray(0, at).toString('latin1').replace(/\r$/, '');
    this.buffer = this.buffer.subarray(at + 1);
    return line;
  }

  /** The message between DATA's 354 and the lone dot, dot-unstuffed. The buffer starts with a CRLF put there by DATA. */
  private takeData(): Buffer | undefined {
    const at = this.buffer.indexOf(DATA_END);
    if (at < 0) return undefined;
    const stuffed = this.buffer.subarray(0, at + 2).toString('latin1');
    this.buffer = this.buffer.subarray(at + DATA_END.length);
    return Buffer.from(stuffed.replace(/\r\n\.\./g, '\r\n.').slice(2), 'latin1');
  }

  /** Reads the next line from inside a command handler (AUTH continuations); undefined once the session ended. */
  private async nextLine(): Promise<string | undefined> {
    for (;;) {
      if (this.dead || this.hung) return undefined;
      const line = this.takeLine();
      if (line !== undefined) {
        this.server.log.push(`[${this.id}] C: <auth data>`);
        return line;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private record(line: string): string {
    const redacted = /^AUTH\s+\S+\s+\S/i.test(line) ? line.replace(/^(AUTH\s+\S+)\s+.*$/i, '$1 <redacted>') : line;
    this.server.commands.push({ connection: this.id, line: redacted });
    this.server.log.push(`[${this.id}] C: ${redacted}`);
    return redacted;
  }

  private async onCommand(line: string): Promise<void> {
    const redacted = this.record(line);
    const verb = (line.match(/^\s*(\S+)/)?.[1] ?? '').toUpperCase();
    const arg = line.replace(/^\s*\S+\s*/, '');
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        return this.onEhlo(verb, redacted);
      case 'STARTTLS':
        return this.onStartTls(redacted);
      case 'AUTH':
        return this.onAuth(arg, redacted);
      case 'MAIL':
        return this.onMail(arg, redacted);
      case 'RCPT':
        return this.onRcpt(arg, redacted);
      case 'DATA':
        return this.onDataCommand(redacted);
      case 'RSET':
        this.resetTransaction();
        return this.write(reply(250, '2.0.0', 'Resetting'));
      case 'NOOP':
        return this.write(reply(250, '2.0.0', 'OK'));
      case 'QUIT':
        this.write(reply(221, '2.0.0', 'Service closing transmission channel'));
        return this.end();
      default:
        return this.write(reply(500, '5.3.3', 'Unrecognized command'));
    }
  }

  private async onEhlo(verb: string, command: string): Promise<void> {
    const step = this.server.step('ehlo', this, command);
    const canStartTls = this.server.options.security === 'starttls' && !this.secure;
    const canAuth = this.secure || this.server.options.security === 'plain';
    const lines =
      verb === 'HELO'
        ? [`${this.server.hostname} Hello`]
        : [
            `${this.server.hostname} Hello`,
            'SIZE 35882577',
            '8BITMIME',
            ...(canStartTls ? ['STARTTLS'] : []),
            ...(canAuth ? ['AUTH XOAUTH2'] : []),
            'ENHANCEDSTATUSCODES',
            'SMTPUTF8',
          ];
    const sent = await this.answer(step, { code: 250, lines });
    if (sent && sent.code < 300) {
      this.ehloDone = true;
      this.resetTransaction();
    }
  }

  private async onStartTls(command: string): Promise<void> {
    if (this.server.options.security !== 'starttls' || this.secure || !this.secureContext)
      return this.write(reply(502, '5.5.1', 'Command not implemented'));
    const step = this.server.step('starttls', this, command);
    const sent = await this.answer(step, reply(220, '2.0.0', 'SMTP server ready'));
    if (!sent || sent.code >= 300) return;
    // Anything the client pipelined after STARTTLS is plaintext injection; drop it.
    this.buffer = Buffer.alloc(0);
    const raw = this.socket;
    raw.removeListener('data', this.onData);
    const secured = new tls.TLSSocket(raw, { isServer: true, secureContext: this.secureContext });
    this.socket = secured;
    secured.on('error', () => this.destroy());
    secured.once('secure', () => {
      this.secure = true;
      this.ehloDone = false;
      this.user = undefined;
      this.resetTransaction();
      secured.on('data', this.onData);
    });
  }

  private async onAuth(arg: string, command: string): Promise<void> {
    const [mechanism = '', initial] = arg.split(/\s+/);
    if (!this.ehloDone) return this.write(reply(503, '5.5.2', 'Send hello first'));
    if (this.server.options.security === 'starttls' && !this.secure)
      return this.write(reply(530, '5.7.0', 'Must issue a STARTTLS command first'));
    if (this.user) return this.write(reply(503, '5.5.1', 'Already authenticated'));
    if (mechanism.toUpperCase() !== 'XOAUTH2') {
      this.server.authFailures++;
      return this.write(PROVIDER_REPLIES.exchangeUnrecognizedAuth);
    }
    let token = initial;
    if (token === undefined) {
      this.write({ code: 334, lines: [''] });
      token = await this.nextLine();
      if (token === undefined) return;
    }
    const parsed = parseXoauth2(token);
    if (!parsed) {
      this.server.authFailures++;
      return this.write(reply(501, '5.5.4', 'Invalid XOAUTH2 auth data'));
    }
    let step = this.server.step('auth', this, command);
    if (!step || step.action === 'accept') {
      const verify = this.server.options.verifyToken;
      const ok = verify ? await verify(parsed.user, parsed.token) : true;
      if (this.dead) return;
      step = ok
        ? undefined
        : (this.server.options.authFailure ?? {
            challenge: GMAIL_XOAUTH2_CHALLENGE,
            reply: PROVIDER_REPLIES.gmailBadCredentials,
          });
    }
    if (step?.challenge !== undefined) {
      if (step.delayMs) await sleep(step.delayMs);
      if (this.dead) return;
      this.write({ code: 334, lines: [step.challenge] });
      if ((await this.nextLine()) === undefined) return;
      step = { ...step, challenge: undefined, delayMs: undefined };
    }
    const sent = await this.answer(step, reply(235, '2.7.0', 'Authentication successful'));
    if (sent && sent.code >= 200 && sent.code < 300) this.user = parsed.user;
    else this.server.authFailures++;
  }

  private async onMail(arg: string, command: string): Promise<void> {
    if (!this.ehloDone) return this.write(reply(503, '5.5.2', 'Send hello first'));
    if (this.server.options.security === 'starttls' && !this.secure)
      return this.write(reply(530, '5.7.0', 'Must issue a STARTTLS command first'));
    if ((this.server.options.requireAuth ?? true) && !this.user) return this.write(PROVIDER_REPLIES.exchangeNotAuthenticated);
    if (this.from !== undefined) return this.write(reply(503, '5.5.1', 'Sender already specified'));
    const address = parsePath(arg, 'FROM');
    if (address === undefined) return this.write(reply(501, '5.1.7', 'Invalid address'));
    const step = this.server.step('mail', this, command);
    const sent = await this.answer(step, reply(250, '2.1.0', 'Sender OK'));
    if (sent && sent.code < 300) this.from = address;
  }

  private async onRcpt(arg: string, command: string): Promise<void> {
    if (this.from === undefined) return this.write(reply(503, '5.5.1', 'Need MAIL command'));
    const address = parsePath(arg, 'TO');
    if (!address) return this.write(reply(501, '5.1.3', 'Invalid address'));
    const step = this.server.step('rcpt', this, command);
    const sent = await this.answer(step, reply(250, '2.1.5', 'Recipient OK'));
    if (sent && sent.code < 300) this.to.push(address);
  }

  private async onDataCommand(command: string): Promise<void> {
    if (this.from === undefined) return this.write(reply(503, '5.5.1', 'Need MAIL command'));
    if (this.to.length === 0) return this.write(reply(503, '5.5.1', 'Need RCPT command'));
    const step = this.server.step('dataStart', this, command);
    const sent = await this.answer(step, reply(354, undefined, 'Start mail input; end with <CRLF>.<CRLF>'));
    if (!sent || sent.code !== 354) return;
    // The message starts at a line start, so a leading CRLF makes "\r\n.\r\n" find an empty body too.
    this.buffer = Buffer.concat([CRLF, this.buffer]);
    this.mode = 'data';
  }

  private async onMessage(raw: Buffer): Promise<void> {
    const id = `${Date.now().toString(36)}${this.id.toString(36)}${(this.server.accepted.length + 1).toString(36)}`.toUpperCase();
    this.server.log.push(`[${this.id}] C: <message, ${raw.length} bytes>`);
    const step = this.server.step('data', this, '.');
    const sent = await this.answer(
      step,
      reply(250, '2.0.0', `OK <${id}@${this.server.hostname}> [Hostname=${this.server.hostname}]`),
    );
    if (sent && sent.code >= 200 && sent.code < 300) {
      this.server.accepted.push({
        id,
        connection: this.id,
        authUser: this.user,
        envelope: { from: this.from ?? '', to: [...this.to] },
        raw,
        receivedAt: new Date(),
      });
    }
    this.resetTransaction();
  }

  private resetTransaction(): void {
    this.from = undefined;
    this.to = [];
  }
}

function parseXoauth2(token: string): { user: string; token: string } | undefined {
  const fields = Buffer.from(token.trim(), 'base64').toString('utf8').split('\x01');
  let user: string | undefined;
  let bearer: string | undefined;
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq < 0) continue;
    const key = field.slice(0, eq).toLowerCase();
    const value = field.slice(eq + 1).trim();
    if (key === 'user') user = value;
    else if (key === 'auth') bearer = value.match(/^bearer\s+(.+)$/i)?.[1];
  }
  return user && bearer ? { user, token: bearer } : undefined;
}

/** The address of `FROM:<a@b> PARAMS` / `TO:<a@b>`; the null sender is the empty string. */
function parsePath(arg: string, keyword: 'FROM' | 'TO'): string | undefined {
  const match = arg.match(new RegExp(`^${keyword}:\\s*<([^>]*)>`, 'i')) ?? arg.match(new RegExp(`^${keyword}:\\s*(\\S+)`, 'i'));
  return match?.[1];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
