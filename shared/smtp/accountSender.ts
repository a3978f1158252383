import { readFileSync } from 'node:fs';
import nodemailer, { type Transporter } from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import type { Account } from '../config/account';
import type { ConnectionSlots } from '../limits/connectionSlots';
import { LanePool, type PooledLane } from '../limits/lanePool';
import { classifySmtpFailure, type SmtpFailure } from './classifyReply';
import { XOAUTH2_CHECKED, xoauth2Login } from './xoauth2Login';

export interface SmtpTimeouts {
  connectionMs: number;
  greetingMs: number;
  socketMs: number;
}

export const DEFAULT_SMTP_TIMEOUTS: SmtpTimeouts = { connectionMs: 15_000, greetingMs: 15_000, socketMs: 60_000 };

/** The access token to authenticate with (XOAUTH2); where it comes from is the caller's business. */
export interface SmtpToken {
  accessToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

export interface SentInfo {
  response: string;
  accepted: string[];
  rejected: string[];
}

/**
 * One of the account's connections, held for one message: `send` it (once, or again after a refused token with
 * a fresh one), then `release` the connection for the next message. Failures are nodemailer's errors
 * (SmtpFailure), with `afterData` set when the server may have the whole message without having answered.
 */
export interface SmtpLane {
  send(mail: Mail.Options, token: SmtpToken): Promise<SentInfo>;
  release(): void;
}

interface Lane extends PooledLane {
  /** Created on first use, and again when the token changes. */
  transport?: Transporter<SMTPPool.SentMessageInfo>;
  accessToken: string;
  /** The message being sent has been handed to the server in full (after DATA's 354). */
  handedOver: boolean;
}

/**
 * The SMTP connections of one account in this instance. Each connection ("lane") holds one of the account's
 * cross-instance connection slots, stays open between messages (pooled, reused across invocations), and is
 * closed and its slot given back after `idleMs` without use. nodemailer gets the access token we hand it and
 * never refreshes by itself (its refresh would drop rotated refresh tokens).
 */
export class AccountSender {
  private readonly lanes: LanePool<Lane>;
  /** Access tokens the server refused (535): messages already waiting for a connection do not try them again. */
  private readonly refusedTokens = new Set<string>();
  private readonly ca: string | undefined;

  constructor(
    private readonly account: Account,
    slots: ConnectionSlots,
    private readonly options: { idleMs: number; timeouts: SmtpTimeouts },
  ) {
    this.ca = account.smtp.caFile ? readFileSync(account.smtp.caFile, 'utf8') : undefined;
    this.lanes = new LanePool<Lane>(slots, {
      limit: () => this.account.limits.concurrentConnections,
      idleMs: options.idleMs,
      create: (slot) => ({ slot, accessToken: '', busy: true, handedOver: false }),
      dispose: (lane) => lane.transport?.close(),
    });
  }

  /**
   * A free connection of the account, waiting at most `maxWaitMs` for one (up to the mailbox's connection limit
   * across instances); `undefined` when none came free. The rate budget is taken by the caller only once it holds
   * a connection: taken earlier, a burst of grants would drain slowly over few connections and reach the server in
   * the next window, over its budget; and a message that then found no connection would have spent budget for
   * nothing.
   */
  async acquire(maxWaitMs: number): Promise<SmtpLane | undefined> {
    const lane = await this.lanes.acquire(Date.now() + maxWaitMs);
    if (!lane) return undefined;
    let released = false;
    return {
      send: (mail, token) => this.sendOn(lane, mail, token),
      release: () => {
        if (released) return;
        released = true;
        this.lanes.release(lane);
      },
    };
  }

  private async sendOn(lane: Lane, mail: Mail.Options, token: SmtpToken): Promise<SentInfo> {
    lane.handedOver = false;
    // A token the server refused moments ago on another connection is not tried again: the caller refreshes.
    if (this.refusedTokens.has(token.accessToken)) throw refusedBefore();
    if (!lane.transport || lane.accessToken !== token.accessToken) {
      lane.transport?.close();
      lane.transport = this.createTransport(token, lane);
      lane.accessToken = token.accessToken;
    }
    try {
      const info = await lane.transport.sendMail(mail);
      return {
        response: String(info.response ?? ''),
        accepted: (info.accepted ?? []).map(String),
        rejected: (info.rejected ?? []).map(String),
      };
    } catch (error) {
      // No reply after the whole message went out (timeout, dropped connection): the server may have accepted it.
      const failure = error as SmtpFailure;
      if (lane.handedOver && !failure.responseCode) failure.afterData = true;
      if (isTokenRefusal(failure)) this.rememberRefused(token.accessToken);
      // A connection without a proper reply (or told 421) is not reused; after another reply the server has
      // reset the transaction and the connection goes on serving, so the slot keeps exactly one connection.
      if (!failure.responseCode || failure.responseCode === 421) {
        lane.transport.close();
        lane.transport = this.createTransport(token, lane);
      }
      throw error;
    }
  }

  private rememberRefused(accessToken: string): void {
    if (this.refusedTokens.size >= 8) this.refusedTokens.clear();
    this.refusedTokens.add(accessToken);
  }

  /**
   * Closes every connection of the account (a busy one once its message is done) and gives back their slots:
   * the grant they authenticated with was replaced or revoked, and a server does not check the token again on
   * a connection that is already authenticated.
   */
  closeConnections(): void {
    this.lanes.retireAll();
  }

  /** Closes every connection; resolves once their slots are given back, so another instance can take them. */
  close(): Promise<void> {
    return this.lanes.close();
  }

  get openConnections(): number {
    return this.lanes.size;
  }

  private createTransport(token: SmtpToken, lane: Lane): Transporter<SMTPPool.SentMessageInfo> {
    const { smtp, user } = this.account;
    const { timeouts } = this.options;
    const transport = nodemailer.createTransport({
      pool: true,
      maxConnections: 1,
      // A connection serves as many messages as the server lets it: it is closed when idle, or by the server.
      maxMessages: Infinity,
      host: smtp.host,
      port: smtp.port,
      secure: smtp.security === 'tls',
      requireTLS: smtp.security === 'starttls',
      ignoreTLS: smtp.security === 'plain',
      tls: { minVersion: 'TLSv1.2', ...(this.ca ? { ca: this.ca } : {}) },
      // Our own XOAUTH2 login (see xoauth2Login), run even when the server lists no AUTH at all. It is registered
      // under a name of its own: asked for "XOAUTH2" without a token generator, nodemailer falls back to the
      // first mechanism the server offers and would send the token as an AUTH PLAIN password.
      auth: { type: 'custom', method: XOAUTH2_CHECKED, user, pass: token.accessToken },
      customAuth: { [XOAUTH2_CHECKED]: xoauth2Login },
      forceAuth: true,
      connectionTimeout: timeouts.connectionMs,
      greetingTimeout: timeouts.greetingMs,
      socketTimeout: timeouts.socketMs,
      disableFileAccess: true,
      disableUrlAccess: true,
      logger: false,
      debug: false,
    } as SMTPPool.Options);
    // The message stream ends once the SMTP data stream has read all of it, i.e. after DATA's 354.
    transport.use('stream', (mail, done) => {
      mail.message.processFunc((input) => {
        input.once('end', () => (lane.handedOver = true));
        return input;
      });
      done();
    });
    return transport;
  }
}

/** The server refused this token (a 535 to our XOAUTH2 login), as opposed to refusing the message or the sender. */
function isTokenRefusal(failure: SmtpFailure): boolean {
  return classifySmtpFailure(failure).kind === 'auth_rejected';
}

/** What a send with a token refused moments ago fails with, without a round trip: the caller refreshes once. */
function refusedBefore(): SmtpFailure {
  return Object.assign(new Error('535 5.7.8 The server refused this access token moments ago; it was not sent again.'), {
    code: 'EAUTH',
    responseCode: 535,
    response: '535 5.7.8 The server refused this access token moments ago; it was not sent again.',
    command: 'AUTH XOAUTH2',
  }) as SmtpFailure;
}
