/**
 * The relay's SMTP dialogue, step by step in the order a device meets it; each check is in its own file and
 * the first that refuses answers the command. In short:
 *
 *   connect    plain port: the client's address is in its `allowFrom`                       else 554
 *              STARTTLS port: AUTH is neither offered nor accepted before TLS
 *   AUTH       login.ts: after TLS 538; address not blocked 454; user, password, source ranges 535
 *   MAIL FROM  a device: the logged-in one, or one known by the client's address               else 530
 *              an address, in the device's allowedFrom, allowed by its account                else 550
 *              the account can send now (not paused, not waiting for re-authorization)        else 451 4.7.0
 *              a declared SIZE within the device's limit                                      else 552
 *   RCPT TO    at most the device's recipient limit                                           else 452
 *   DATA       message.ts → receiveMessage.ts: the header's senders 550, size 552, storage 451, else 250
 */
import type { SMTPServerOptions } from 'smtp-server';
import type { ListenerConfig } from '../config';
import { openSession, secureSession } from './connection';
import { deviceKnown } from './device';
import { runChecks, type CommandCheck, type Dialogue } from './dialogue';
import { declaredSizeFits, recipientWithinLimit } from './limits';
import { logIn } from './login';
import { receiveData } from './message';
import { accountMaySend, accountReady, deviceMaySend, senderPresent } from './sender';
import { closeSession } from './sessionLog';

export const MAIL_FROM_CHECKS: readonly CommandCheck[] = [
  // device.ts
  deviceKnown,
  // sender.ts: the device's own list first (its reply names what the device may use), then the account's
  senderPresent,
  deviceMaySend,
  accountMaySend,
  accountReady,
  // limits.ts
  declaredSizeFits,
];

export const RCPT_TO_CHECKS: readonly CommandCheck[] = [deviceKnown, recipientWithinLimit];

/** smtp-server's callbacks for one listener, each handing its step to the files above. */
export function dialogueHandlers(dialogue: Dialogue, listener: ListenerConfig): Partial<SMTPServerOptions> {
  return {
    onConnect: (session, callback) => openSession(dialogue, listener, session, callback),
    onSecure: (socket, session, callback) => secureSession(dialogue, socket as import('node:tls').TLSSocket, session, callback),
    onAuth: (auth, session, callback) => logIn(dialogue, auth, session, callback),
    onMailFrom(address, session, callback) {
      const declared = address.args ? Number((address.args as Record<string, string>).SIZE) : NaN;
      runChecks(
        MAIL_FROM_CHECKS,
        {
          session,
          dialogue,
          sender: address.address.toLowerCase(),
          ...(Number.isFinite(declared) ? { declaredSize: declared } : {}),
        },
        callback,
      );
    },
    onRcptTo: (address, session, callback) =>
      runChecks(RCPT_TO_CHECKS, { session, dialogue, recipient: address.address }, callback),
    onData: (stream, session, callback) => receiveData(dialogue, stream, session, callback),
    onClose: (session) => closeSession(dialogue, session),
  };
}
