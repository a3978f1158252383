import type { AddressInfo, Socket } from 'node:net';
import type { SMTPServer } from 'smtp-server';

/** An smtp-server listening on loopback, with the connection counts the tests read and a stop that does not wait. */
export interface ListeningSmtp {
  readonly port: number;
  readonly openConnections: number;
  /** Most TCP connections open at the same time. */
  readonly connectionsPeak: number;
  /** Closes the listener and drops every open connection; smtp-server alone would wait up to 30 s for them. */
  stop(): Promise<void>;
}

export async function listenSmtp(server: SMTPServer, host: string, port = 0): Promise<ListeningSmtp> {
  server.on('error', () => {}); // a client dropping mid-handshake must not take the process down
  let openConnections = 0;
  let connectionsPeak = 0;
  const sockets = new Set<Socket>();
  server.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    connectionsPeak = Math.max(connectionsPeak, ++openConnections);
    socket.once('close', () => {
      sockets.delete(socket);
      openConnections--;
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.server.address() as AddressInfo).port,
    get openConnections() {
      return openConnections;
    },
    get connectionsPeak() {
      return connectionsPeak;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
