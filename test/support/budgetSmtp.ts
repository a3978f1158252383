/**
 * An SMTP sink that enforces provider limits the way Exchange Online does, for benchmarks and limit tests:
 * at most `maxConnections` connections submitting at once, and at most `messagesPerWindow` accepted
 * messages in any sliding window of `windowMs`. Throttled submissions get Exchange's 432 4.3.2 replies and
 * are counted; nothing is logged and message bodies are discarded, so it keeps up with thousands of
 * messages per second on loopback.
 */
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { listenSmtp } from '../../local/peers/listenSmtp';
import { PROVIDER_REPLIES, type SmtpReply } from './providerReplies';

export interface BudgetSmtpOptions {
  host?: string;
  port?: number;
  /** `plain` (default) skips TLS for raw speed; `starttls` and `tls` need key and cert. */
  security?: 'plain' | 'starttls' | 'tls';
  key?: string;
  cert?: string;
  /** Concurrent connections allowed to submit (Exchange Online: 3 per mailbox). Unlimited by default. */
  maxConnections?: number;
  /**
   * `mail` (default, like Exchange): surplus connections are served but their MAIL FROM gets 432 4.3.2.
   * `greeting`: surplus connections are greeted with 421 and closed.
   */
  connectionLimitAt?: 'mail' | 'greeting';
  /** Accepted messages allowed in any sliding window of `windowMs`. Unlimited by default. */
  messagesPerWindow?: number;
  windowMs?: number;
  /** `server` (default): one budget for everybody. `user`: one budget per authenticated mailbox. */
  scope?: 'server' | 'user';
  connectionLimitReply?: SmtpReply;
  rateLimitReply?: SmtpReply;
  /** Any token is accepted without it. */
  verifyToken?: (user: string, accessToken: string) => boolean | Promise<boolean>;
  /** Delay before answering the end of DATA, fixed or per message (1-based sequence number). */
  latencyMs?: number | ((sequence: number) => number);
}

export interface BudgetSmtp {
  readonly host: string;
  readonly port: number;
  readonly accepted: number;
  /** All 4xx throttle replies given (connection limit and rate limit). */
  readonly throttleReplies: number;
  readonly connectionThrottles: number;
  readonly rateThrottles: number;
  readonly authFailures: number;
  readonly connectionsPeak: number;
  readonly openConnections: number;
  /** Date.now() of every accepted message, in order (live array). */
  readonly acceptedAt: readonly number[];
  /** Most accepted messages seen in any window of `windowMs`: what a client's own limiter achieved. */
  peakInWindow(windowMs: number): number;
  stop(): Promise<void>;
}

interface Budget {
  /** Connections holding a submission slot. */
  slots: number;
  /** Accepted timestamps of this budget; `head` is the first one still inside the window. */
  times: number[];
  head: number;
}

export async function startBudgetSmtp(options: BudgetSmtpOptions = {}): Promise<BudgetSmtp> {
  const security = options.security ?? 'plain';
  if (security !== 'plain' && (!options.key || !options.cert))
    throw new Error(`startBudgetSmtp: security "${security}" needs key and cert`);
  const scope = options.scope ?? 'server';
  const limitAt = options.connectionLimitAt ?? 'mail';
  if (scope === 'user' && limitAt === 'greeting')
    throw new Error('startBudgetSmtp: a per-user connection limit can only be enforced after AUTH (connectionLimitAt: "mail")');
  const maxConnections = options.maxConnections ?? Infinity;
  const perWindow = options.messagesPerWindow ?? Infinity;
  const windowMs = options.windowMs ?? 60_000;
  const connectionReply =
    options.connectionLimitReply ??
    (limitAt === 'greeting' ? PROVIDER_REPLIES.exchangeServiceNotAvailable : PROVIDER_REPLIES.exchangeConcurrentConnections);
  const rateReply = options.rateLimitReply ?? PROVIDER_REPLIES.exchangeSenderThreadLimit;
  const host = options.host ?? '127.0.0.1';

  const budgets = new Map<string, Budget>();
  const budgetOf = (key: string) => {
    let budget = budgets.get(key);
    if (!budget) budgets.set(key, (budget = { slots: 0, times: [], head: 0 }));
    return budget;
  };
  /** The budget a session's slot was taken from, once it holds one. */
  const holding = new WeakMap<SMTPServerSession, Budget>();
  const keyOf = (session: SMTPServerSession) => (scope === 'user' ? String(session.user ?? '') : '*');
  const takeSlot = (session: SMTPServerSession): boolean => {
    if (holding.has(session)) return true;
    const budget = budgetOf(keyOf(session));
    if (budget.slots >= maxConnections) return false;
    budget.slots++;
    holding.set(session, budget);
    return true;
  };

  const acceptedAt: number[] = [];
  let connectionThrottles = 0;
  let rateThrottles = 0;
  let authFailures = 0;
  let sequence = 0;

  const serverOptions: SMTPServerOptions = {
    name: 'budget.smtp.test',
    logger: false,
    disableReverseLookup: true,
    authMethods: ['XOAUTH2'],
    maxAllowedUnauthenticatedCommands: false,
    // Exchange keeps a session open for 10 minutes of idling; benchmarks should not be cut short either.
    socketTimeout: 10 * 60_000,
    ...(security === 'tls' && { secure: true, key: options.key, cert: options.cert }),
    ...(security === 'starttls' && { secure: false, key: options.key, cert: options.cert }),
    ...(security === 'plain' && { secure: false, disabledCommands: ['STARTTLS'], allowInsecureAuth: true }),
    onConnect(session, callback) {
      if (scope === 'server' && !takeSlot(session) && limitAt === 'greeting') {
        connectionThrottles++;
        return callback(smtpError(connectionReply));
      }
      callback();
    },
    onAuth(auth, session, callback) {
      const user = auth.username ?? '';
      const verify = options.verifyToken;
      void Promise.resolve(verify && auth.accessToken ? verify(user, auth.accessToken) : Boolean(auth.accessToken)).then(
        (ok) => {
          if (!ok) {
            authFailures++;
            return callback(null, { data: { status: '400', schemes: 'Bearer', scope: 'https://mail.google.com/' } });
          }
          callback(null, { user });
        },
        (err: Error) => callback(err),
      );
    },
    onMailFrom(_address, session, callback) {
      if (!takeSlot(session)) {
        connectionThrottles++;
        return callback(smtpError(connectionReply));
      }
      callback();
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.once('end', () => {
        const now = Date.now();
        const budget = budgetOf(keyOf(session));
        const { times } = budget;
        while (budget.head < times.length && (times[budget.head] as number) <= now - windowMs) budget.head++;
        // Keep the array from growing without bound in long benchmarks.
        if (budget.head > 4096 && budget.head * 2 > times.length) {
          times.splice(0, budget.head);
          budget.head = 0;
        }
        if (times.length - budget.head >= perWindow) {
          rateThrottles++;
          return callback(smtpError(rateReply));
        }
        times.push(now);
        acceptedAt.push(now);
        const n = ++sequence;
        const reply = `2.0.0 OK <${n}@budget.smtp.test> [Hostname=budget.smtp.test]`;
        const delay = typeof options.latencyMs === 'function' ? options.latencyMs(n) : (options.latencyMs ?? 0);
        if (delay > 0) setTimeout(() => callback(null, reply), delay);
        else callback(null, reply);
      });
    },
    onClose(session) {
      const budget = holding.get(session);
      if (budget) {
        budget.slots--;
        holding.delete(session);
      }
    },
  };

  const listening = await listenSmtp(new SMTPServer(serverOptions), host, options.port);
  const { port } = listening;

  return {
    host,
    port,
    get accepted() {
      return acceptedAt.length;
    },
    get throttleReplies() {
      return connectionThrottles + rateThrottles;
    },
    get connectionThrottles() {
      return connectionThrottles;
    },
    get rateThrottles() {
      return rateThrottles;
    },
    get authFailures() {
      return authFailures;
    },
    get connectionsPeak() {
      return listening.connectionsPeak;
    },
    get openConnections() {
      return listening.openConnections;
    },
    acceptedAt,
    peakInWindow: (ms) => peakInWindow(acceptedAt, ms),
    stop: () => listening.stop(),
  };
}

/** Most timestamps in any half-open window (t - ms, t]; the timestamps are sorted. */
export function peakInWindow(times: readonly number[], ms: number): number {
  let peak = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while ((times[start] as number) <= (times[end] as number) - ms) start++;
    peak = Math.max(peak, end - start + 1);
  }
  return peak;
}

/** smtp-server sends `<responseCode> <message>`; the enhanced code goes into the message. */
function smtpError(reply: SmtpReply): Error {
  const text = [reply.enhanced, reply.lines.join(' ')].filter(Boolean).join(' ');
  return Object.assign(new Error(text), { responseCode: reply.code });
}
