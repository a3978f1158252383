/**
 * The relay: SMTP listeners (STARTTLS, implicit TLS, and an optional plain port for listed networks) in front of
 * blob container `mail-mime` and queue `mail-outbox`. What each SMTP step checks, in dialogue order:
 *
 *   connect    plain port: the client's address must be in its `allowFrom`                   else 554
 *   AUTH       only after TLS (smtp-server answers 538); address not blocked for failures      else 454
 *              user name + password hash, then the device's source ranges                    else 535 (slowed)
 *   MAIL FROM  a device: the logged-in one, or one recognized by the client's address          else 530
 *              the address is in the device's allowed From list                               else 550
 *              a declared SIZE within the device's limit                                     else 552
 *   RCPT TO    at most the device's recipient limit                                           else 452
 *   DATA       see receiveMessage.ts: From/Sender 550, size 552, storage 451, else 250 queued as <id>
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import tls, { type TLSSocket } from 'node:tls';
import type { TokenCredential } from '@azure/identity';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { consoleLogger, type Logger } from '../shared/log/logger';
import {
  parseRelayConfig,
  type Device,
  type ListenerConfig,
  type ListenerKind,
  type RelayConfig,
  type RelayConfigInput,
} from './config';
import { DeviceRegistry } from './devices';
import { clientKey, inAnyRange } from './ipRanges';
import { LoginThrottle } from './loginThrottle';
import { blobStore, type MimeStore } from './mimeStore';
import { receiveMessage, type Outcome } from './receiveMessage';
import { REPLIES, replyError, type Reply } from './replies';
import { createStorageTarget } from './storageTarget';

export interface StartRelayOptions {
  /** A configuration as in the JSON file (validated here), or one already loaded with loadRelayConfig. */
  config: RelayConfig | RelayConfigInput;
  /** Default: JSON lines on stdout. */
  log?: Logger;
  /** Replaces the storage of `config.storage`. */
  store?: MimeStore;
}

export interface Relay {
  readonly host: string;
  /** The first SMTP listener's port (STARTTLS when configured). */
  readonly port: number;
  readonly ports: Readonly<Partial<Record<ListenerKind, number>>>;
  readonly healthPort: number | undefined;
  /**
   * Graceful stop: stop listening, answer idle connections 421, let messages already in DATA finish (up to
   * shutdownGraceSeconds), then close. Idempotent.
   */
  close(): Promise<void>;
  /** Re-reads the certificate and key files; new TLS handshakes use them (SIGHUP after a renewal). */
  reloadTls(): Promise<void>;
}

interface SessionState {
  listener: ListenerKind;
  remote: string;
  startedAt: number;
  tls: string | false;
  device?: string;
  /** The SASL mechanism of a successful login. */
  auth?: string;
  authFailures: number;
  lastAuthFailure?: string;
  /** Reason of the last command refused (not counting DATA outcomes, which have their own line). */
  lastRefusal?: string;
  queued: number;
  refused: number;
  deferred: number;
  lost: number;
  inData: boolean;
}

const isResolved = (config: RelayConfig | RelayConfigInput): config is RelayConfig => Array.isArray(config.listeners);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startRelay(options: StartRelayOptions): Promise<Relay> {
  const config = isResolved(options.config) ? options.config : parseRelayConfig(options.config, 'relay config');
  const log = options.log ?? consoleLogger;
  let storage = 'custom store';
  let store = options.store;
  if (!store) {
    const target = createStorageTarget(config.storage);
    store = blobStore(target.container, target.queue);
    storage = target.describe;
    if (target.credential) void checkIdentity(target.credential, log);
  }
  if (config.storage.createIfMissing) await store.ensureCreated();

  const registry = new DeviceRegistry(config.devices);
  const throttle = new LoginThrottle(config.loginFailures);
  const sessions = new Map<string, SessionState>();
  let tlsMaterial = config.tls ? await loadTls(config.tls) : undefined;
  let stopping: Promise<void> | undefined;

  const deviceOf = (session: SMTPServerSession): Device | undefined =>
    typeof session.user === 'string' ? registry.byDeviceName(session.user) : registry.byRemoteAddress(session.remoteAddress);

  const handlers = (listener: ListenerConfig): Partial<SMTPServerOptions> => ({
    onConnect(session, callback) {
      sessions.set(session.id, {
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
        noteRefusal(session, REPLIES.networkNotAllowed());
        return callback(replyError(REPLIES.networkNotAllowed()));
      }
      callback();
    },

    onSecure(socket, session, callback) {
      const state = sessions.get(session.id);
      if (state) state.tls = (socket as TLSSocket).getProtocol?.() ?? 'TLS';
      callback();
    },

    onAuth(auth, session, callback) {
      const state = sessions.get(session.id);
      const fail = (reply: Reply) => {
        if (state) state.lastAuthFailure = reply.reason;
        callback(replyError(reply));
      };
      if (!session.secure) return fail(REPLIES.tlsRequired());
      if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return fail(REPLIES.loginFailed());
      const blockedMs = throttle.blockedFor(clientKey(session.remoteAddress));
      if (blockedMs > 0) return fail(REPLIES.loginBlocked(blockedMs));
      void registry.login(auth.username ?? '', auth.password ?? '', session.remoteAddress).then(
        async (result) => {
          if (result.ok) {
            if (state) {
              state.device = result.device.name;
              state.auth = auth.method;
            }
            return callback(null, { user: result.device.name });
          }
          const { delayMs, blocked, failures } = throttle.fail(clientKey(session.remoteAddress));
          if (state) {
            state.authFailures++;
            state.lastAuthFailure = result.reason;
            if (result.device) state.device = result.device.name;
          }
          if (blocked)
            log.warn('relay.login_blocked', {
              remote: session.remoteAddress,
              failures,
              blockedSeconds: Math.round(config.loginFailures.blockMs / 1000),
            });
          await sleep(delayMs);
          callback(replyError(REPLIES.loginFailed()));
        },
        (error: unknown) => {
          log.error('relay.login_error', { session: session.id, error: (error as Error).message });
          fail({ responseCode: 454, reason: 'login_error', message: '4.7.0 Temporary authentication failure; try again' });
        },
      );
    },

    onMailFrom(address, session, callback) {
      const device = deviceOf(session);
      if (!device) return refuse(session, callback, REPLIES.authRequired());
      const state = sessions.get(session.id);
      if (state) state.device = device.name;
      const sender = address.address.toLowerCase();
      if (sender === '') return refuse(session, callback, REPLIES.emptySender(device.allowedFrom));
      if (!device.allowedFrom.includes(sender))
        return refuse(session, callback, REPLIES.senderNotAllowed('Sender address (MAIL FROM)', sender, device.allowedFrom));
      const declared = address.args ? Number(address.args.SIZE) : NaN;
      if (declared > device.maxMessageBytes)
        return refuse(session, callback, REPLIES.declaredTooLarge(declared, device.maxMessageBytes));
      callback();
    },

    onRcptTo(address, session, callback) {
      const device = deviceOf(session);
      if (!device) return refuse(session, callback, REPLIES.authRequired());
      const { rcptTo } = session.envelope;
      const again = rcptTo.some((r) => r.address.toLowerCase() === address.address.toLowerCase());
      if (!again && rcptTo.length >= device.maxRecipients)
        return refuse(session, callback, REPLIES.tooManyRecipients(device.maxRecipients));
      callback();
    },

    onData(stream, session, callback) {
      const device = deviceOf(session);
      const state = sessions.get(session.id);
      if (!device) {
        stream.resume();
        return refuse(session, callback, REPLIES.authRequired());
      }
      if (state) state.inData = true;
      const envelope = {
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        to: session.envelope.rcptTo.map((r) => r.address),
      };
      const started = performance.now();
      void receiveMessage(stream, { device, envelope, store }).then((outcome) => {
        if (state) {
          state.inData = false;
          state[outcome.kind]++;
        }
        logMessage(session, device, envelope, outcome, performance.now() - started);
        if (outcome.kind === 'queued') callback(null, outcome.reply);
        else if (outcome.kind === 'lost') callback(new Error('connection lost'));
        else callback(replyError(outcome.reply));
      });
    },

    onClose(session) {
      const state = sessions.get(session.id);
      if (!state) return;
      sessions.delete(session.id);
      log.info('relay.session', {
        session: session.id,
        listener: state.listener,
        remote: state.remote,
        tls: state.tls,
        device: state.device ?? null,
        ...(state.auth ? { auth: state.auth } : {}),
        authFailures: state.authFailures,
        ...(state.lastAuthFailure ? { lastAuthFailure: state.lastAuthFailure } : {}),
        messages: { queued: state.queued, refused: state.refused, deferred: state.deferred, lost: state.lost },
        ...(state.lastRefusal ? { lastRefusal: state.lastRefusal } : {}),
        durationMs: Date.now() - state.startedAt,
      });
    },
  });

  const refuse = (session: SMTPServerSession, callback: (error?: Error | null) => void, reply: Reply) => {
    noteRefusal(session, reply);
    callback(replyError(reply));
  };
  const noteRefusal = (session: SMTPServerSession, reply: Reply) => {
    const state = sessions.get(session.id);
    if (state) state.lastRefusal = reply.reason;
  };

  const logMessage = (
    session: SMTPServerSession,
    device: Device,
    envelope: { from: string; to: string[] },
    outcome: Outcome,
    ms: number,
  ) => {
    const fields = {
      session: session.id,
      device: device.name,
      account: device.account,
      envelopeFrom: envelope.from,
      recipients: envelope.to.length,
      bytes: outcome.bytes,
      outcome: outcome.kind,
      ms: Math.round(ms),
    };
    if (outcome.kind === 'queued')
      log.info('relay.message', {
        ...fields,
        id: outcome.id,
        blob: outcome.blob,
        storeMs: Math.round(outcome.storeMs),
        reply: `250 ${outcome.reply}`,
      });
    else if (outcome.kind === 'lost') log.warn('relay.message', { ...fields, error: outcome.error });
    else
      log[outcome.kind === 'deferred' ? 'error' : 'info']('relay.message', {
        ...fields,
        reason: outcome.reply.reason,
        reply: `${outcome.reply.responseCode} ${outcome.reply.message}`,
        ...(outcome.kind === 'deferred' ? { id: outcome.id, error: outcome.error } : {}),
      });
  };

  const servers: Array<{ listener: ListenerConfig; server: SMTPServer; port: number }> = [];
  const closeServers = () =>
    Promise.all(servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
  try {
    for (const listener of config.listeners) {
      const server = new SMTPServer({
        name: config.hostname,
        banner: 'oauth-outbox relay',
        secure: listener.kind === 'tls',
        ...(tlsMaterial ? { key: tlsMaterial.key, cert: tlsMaterial.cert, minVersion: 'TLSv1.2' as const } : {}),
        // Without a certificate there is no TLS, and without TLS no login: such a port serves only devices known by address.
        disabledCommands: tlsMaterial ? [] : ['STARTTLS', 'AUTH'],
        authMethods: ['PLAIN', 'LOGIN'],
        authOptional: true,
        allowInsecureAuth: false,
        size: config.maxMessageBytes,
        disableReverseLookup: true,
        maxClients: config.maxConnections,
        socketTimeout: config.idleTimeoutMs,
        closeTimeout: Math.max(1, config.shutdownGraceMs),
        logger: false,
        ...handlers(listener),
      });
      server.on('error', (error: Error & { code?: string }) => {
        log.warn('relay.connection_error', { listener: listener.kind, error: error.message, errorCode: error.code });
      });
      const port = await listen(server, listener);
      servers.push({ listener, server, port });
    }
  } catch (error) {
    await closeServers();
    throw error;
  }

  const health = config.health ? await startHealth(config.health, () => stopping === undefined) : undefined;
  const ports = Object.fromEntries(servers.map(({ listener, port }) => [listener.kind, port])) as Partial<
    Record<ListenerKind, number>
  >;
  log.info('relay.started', {
    hostname: config.hostname,
    listeners: servers.map(({ listener, port }) => ({ kind: listener.kind, host: listener.host ?? '*', port })),
    health: health ? health.port : null,
    devices: config.devices.length,
    storage,
    maxMessageBytes: config.maxMessageBytes,
  });

  return {
    host: config.listeners[0]?.host ?? '127.0.0.1',
    port: servers[0]!.port,
    ports,
    healthPort: health?.port,
    close: () =>
      (stopping ??= (async () => {
        const inData = [...sessions.values()].filter((s) => s.inData).length;
        log.info('relay.stopping', { connections: sessions.size, inData, graceSeconds: config.shutdownGraceMs / 1000 });
        const closed = closeServers();
        // Idle connections go now; a connection in DATA gets its reply, then 421 at its next command.
        for (const { server } of servers)
          for (const connection of server.connections)
            if (!sessions.get(connection.session.id)?.inData) {
              const reply = REPLIES.shuttingDown();
              connection.send(reply.responseCode, reply.message);
            }
        await closed;
        await health?.close();
        log.info('relay.stopped', {});
      })()),
    async reloadTls() {
      if (!config.tls) return;
      tlsMaterial = await loadTls(config.tls);
      // Every STARTTLS and implicit TLS handshake from now on uses the new pair, with or without SNI.
      for (const { server } of servers) server.updateSecureContext({ key: tlsMaterial.key, cert: tlsMaterial.cert });
      log.info('relay.tls_reloaded', { notAfter: new X509Certificate(tlsMaterial.cert).validTo });
    },
  };
}

/**
 * One token request at start, so that a wrong tenant, an expired certificate or a missing Arc group shows in
 * the log at once rather than as 451s later. The relay runs either way: the identity may work in a minute.
 */
async function checkIdentity(credential: TokenCredential, log: Logger): Promise<void> {
  try {
    await credential.getToken('https://storage.azure.com/.default', { abortSignal: AbortSignal.timeout(30_000) });
    log.info('relay.storage_identity_ok', {});
  } catch (error) {
    log.error('relay.storage_identity_failed', { error: (error as Error).message.split('\n')[0] });
  }
}

/** Reads the pair and checks that it is usable (a broken file after a renewal must not replace a good one). */
async function loadTls(source: NonNullable<RelayConfig['tls']>): Promise<{ key: string; cert: string }> {
  const [key, cert] =
    'certFile' in source
      ? await Promise.all([readFile(source.keyFile, 'utf8'), readFile(source.certFile, 'utf8')])
      : [source.key, source.cert];
  tls.createSecureContext({ key, cert });
  return { key, cert };
}

function listen(server: SMTPServer, listener: ListenerConfig): Promise<number> {
  return new Promise((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(listener.port, listener.host, () => {
      server.server.off('error', reject);
      resolve((server.server.address() as AddressInfo).port);
    });
  });
}

/** GET /health: 200 while the relay accepts mail, 503 once it is stopping (so a load balancer drains it). */
async function startHealth(
  address: { host: string | undefined; port: number },
  accepting: () => boolean,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/health') {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"status":"not found"}');
      return;
    }
    const ok = accepting();
    response
      .writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(JSON.stringify({ status: ok ? 'ok' : 'stopping' }));
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
