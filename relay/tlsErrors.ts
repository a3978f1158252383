/**
 * The commonest printer mistakes end in a TLS error before any SMTP command, where smtp-server only has an
 * OpenSSL line. This turns them into a log entry an administrator can act on, with the client's address.
 */
import type { Server, Socket } from 'node:net';
import type { ListenerKind } from './config';

interface TlsErrorFields {
  remote: string | null;
  errorCode: string | undefined;
  error: string;
  hint?: string;
}

export type ConnectionError = Error & {
  code?: string;
  remoteAddress?: string;
  /** smtp-server's: the client's address, and the OpenSSL message it replaced by its own. */
  meta?: { remoteAddress?: string; message?: string };
};

export const TLS_TOO_OLD_HINT =
  'the device offers only TLS 1.0/1.1; the relay needs TLS 1.2 or later (see the plain port for old devices)';

export function describeTlsError(error: ConnectionError, listener: ListenerKind): TlsErrorFields {
  const text = `${error.code ?? ''} ${error.message} ${error.meta?.message ?? ''}`;
  const fields: TlsErrorFields = {
    remote: error.remoteAddress ?? error.meta?.remoteAddress ?? null,
    errorCode: error.code,
    error: error.message.split('\n')[0]!.slice(0, 200),
  };
  if (/unsupported protocol|UNSUPPORTED_PROTOCOL|version too low|no protocols available/i.test(text))
    return { ...fields, hint: TLS_TOO_OLD_HINT };
  if (/wrong version number|http request|packet length too long|unknown protocol/i.test(text))
    return {
      ...fields,
      hint:
        listener === 'tls'
          ? 'the device does not start TLS at once on this port: choose SSL/TLS on port 465, or STARTTLS on port 587'
          : 'the device speaks something other than TLS here: choose STARTTLS on port 587 or SSL/TLS on port 465',
    };
  if (/no shared cipher|NO_SHARED_CIPHER|sslv3 alert handshake failure/i.test(text))
    return {
      ...fields,
      hint: 'no cipher in common: the device is too old for TLS 1.2 with a modern cipher (see the plain port for old devices)',
    };
  return fields;
}

/** A TLS record's first byte: a device that starts TLS at once on a port that expects SMTP first. */
const TLS_HANDSHAKE = 0x16;

export const IMPLICIT_TLS_HINT = 'the device starts TLS at once: choose STARTTLS on this port, or SSL/TLS on port 465';

/** Calls `onImplicitTls` for a connection whose first bytes are a TLS handshake rather than an SMTP command. */
export function watchForImplicitTls(server: Server, onImplicitTls: (remote: string) => void): void {
  server.on('connection', (socket: Socket) => {
    socket.once('data', (chunk: Buffer) => {
      if (chunk[0] === TLS_HANDSHAKE) onImplicitTls(socket.remoteAddress ?? '');
    });
  });
}
