/**
 * Connect and STARTTLS. A plain port takes only its listed networks; on the STARTTLS port AUTH is neither
 * offered nor accepted before TLS (Postfix's smtpd_tls_auth_only), so a device never sends its password in
 * clear text; after STARTTLS the EHLO lists `AUTH PLAIN LOGIN`.
 */
import type { TLSSocket } from 'node:tls';
import type { SMTPServerSession } from 'smtp-server';
import type { ListenerConfig } from '../config';
import { inAnyRange } from '../ipRanges';
import { REPLIES, replyError } from '../replies';
import { noteRefusal, type Dialogue } from './dialogue';

/** Commands the session may not use yet: AUTH until the connection is encrypted. */
const BEFORE_TLS = ['AUTH'];

export function openSession(
  dialogue: Dialogue,
  listener: ListenerConfig,
  session: SMTPServerSession,
  callback: (error?: Error | null) => void,
): void {
  dialogue.sessions.set(session.id, {
    listener: listener.kind,
    remote: session.remoteAddress,
    startedAt: Date.now(),
    tls: listener.kind === 'tls' ? 'TLS' : false,
    authFailures: 0,
    queued: 0,
    refused: 0,
    deferred: 0,
    lost: 0,
    inData: false,
  });
  if (listener.kind === 'plain' && !inAnyRange(session.remoteAddress, listener.allowFrom)) {
    const reply = REPLIES.networkNotAllowed();
    noteRefusal(dialogue, session, reply);
    return callback(replyError(reply));
  }
  if (listener.kind !== 'tls') session.disabledCommands = [...BEFORE_TLS, ...dialogue.disabledCommands];
  callback();
}

export function secureSession(
  dialogue: Dialogue,
  socket: TLSSocket,
  session: SMTPServerSession,
  callback: (error?: Error | null) => void,
): void {
  const state = dialogue.sessions.get(session.id);
  if (state) state.tls = socket.getProtocol?.() ?? 'TLS';
  session.disabledCommands = [...dialogue.disabledCommands];
  callback();
}
