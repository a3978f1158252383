/**
 * The relay: SMTP listeners (STARTTLS, implicit TLS, and an optional plain port for listed networks) in front of
 * blob container `mail-mime` and queue `mail-outbox`. This file keeps the servers, the TLS reload and the
 * shutdown; what each step of the dialogue checks is listed, in order, in dialogue/dialogueChecks.ts.
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { TokenCredential } from '@azure/identity';
import { SMTPServer } from 'smtp-server';
import { ConfigError } from '../shared/errors';
import { consoleLogger, createLogger, teeLogger, type Logger } from '../shared/log/logger';
import { ALLOWED_SENDERS_BLOB } from '../shared/relay/allowedSenders';
import { AccountSenders } from './accountSenders';
import { parseRelayConfig, type ListenerConfig, type ListenerKind, type RelayConfig, type RelayConfigInput } from './config';
import { DeviceActivityLog } from './deviceActivity';
import { DeviceRegistry } from './devices';
import { startHealthServer } from './healthServer';
import { dialogueHandlers } from './dialogue/dialogueChecks';
import type { Dialogue, SessionState } from './dialogue/dialogue';
import { LoginThrottle } from './loginThrottle';
import { blobStore, type MimeStore } from './mimeStore';
import { REPLIES } from './replies';
import { StorageHealth } from './storageHealth';
import { createStorageTarget, type StorageTarget } from './storageTarget';
import { TelemetryExport, type TelemetryTiming } from './telemetryExport';
import { logCertificateExpiry } from './certificateExpiry';
import { describeTlsError, IMPLICIT_TLS_HINT, TLS_TOO_OLD_HINT, watchForImplicitTls, type ConnectionError } from './tlsErrors';

export interface StartRelayOptions {
  /** A configuration as in the JSON file (validated here), or one already loaded with loadRelayConfig. */
  config: RelayConfig | RelayConfigInput;
  /** Default: JSON lines on stdout. */
  log?: Logger;
  /** Replaces the storage of `config.storage` (then there is no allowed-senders document and no activity report). */
  store?: MimeStore;
  /** How often the allowed-senders document is read again (default a minute). */
  sendersRefreshMs?: number;
  /** How often, at most, the device report is written (default 5 s). */
  activityFlushMs?: number;
  /** The identity that gets the Application Insights token, instead of the storage identity (tests: a stub). */
  credential?: TokenCredential;
  /** How often the trace export sends, retries and reports its problems (tests). */
  telemetryTiming?: Partial<TelemetryTiming>;
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
  /** Reads the allowed-senders document now rather than at the next minute. */
  refreshAllowedSenders(): Promise<void>;
  /** Writes the device report now. */
  flushActivity(): Promise<void>;
  /** Lifts the failed-login blocks of every client address (SIGUSR2); returns how many addresses it forgot. */
  unblockLogins(): number;
}

const isResolved = (config: RelayConfig | RelayConfigInput): config is RelayConfig => Array.isArray(config.listeners);

export async function startRelay(options: StartRelayOptions): Promise<Relay> {
  const config = isResolved(options.config) ? options.config : parseRelayConfig(options.config, 'relay config');
  const consoleLog = options.log ?? consoleLogger;
  const target: StorageTarget | undefined = options.store ? undefined : createStorageTarget(config.storage);
  const telemetry = config.applicationInsights
    ? startTelemetry(config, options.credential ?? target?.credential, consoleLog, options.telemetryTiming)
    : undefined;
  // The export's own problems go to the console only: a failing export must not feed itself.
  const log = telemetry ? teeLogger(consoleLog, createLogger(telemetry.add, {}, { observed: false })) : consoleLog;
  if (config.applicationInsights)
    log.info('relay.telemetry_export', {
      endpoint: new URL(config.applicationInsights.ingestionEndpoint).host,
      authentication: config.applicationInsights.authentication,
    });
  const store = options.store ?? blobStore(target!.container, target!.queue);
  const storage = target?.describe ?? 'custom store';
  if (config.storage.createIfMissing) {
    await store.ensureCreated();
    await Promise.all([target?.senders.createIfNotExists(), target?.activity.createIfNotExists()]);
  }

  const storageHealth = new StorageHealth();
  const senders = new AccountSenders(target?.senders.getBlobClient(ALLOWED_SENDERS_BLOB), log, storageHealth);
  const activity = new DeviceActivityLog(
    config.hostname,
    config.devices,
    target?.activity.getBlockBlobClient(`${encodeURIComponent(config.hostname)}.json`),
    log,
    storageHealth,
  );
  if (target?.credential) void checkIdentity(target.credential, log, storageHealth);
  if ('credential' in config.storage && config.storage.credential.type === 'clientCertificate')
    logCertificateExpiry(log, 'storage_identity', await readFile(config.storage.credential.certificateFile, 'utf8'));
  await senders.start(options.sendersRefreshMs);
  activity.start(options.activityFlushMs);

  const sessions = new Map<string, SessionState>();
  let tlsMaterial = config.tls ? await loadTls(config.tls, log) : undefined;
  let stopping: Promise<void> | undefined;
  const dialogue: Dialogue = {
    config,
    registry: new DeviceRegistry(config.devices),
    throttle: new LoginThrottle(config.loginFailures),
    senders,
    activity,
    storageHealth,
    store,
    log,
    sessions,
    // Without a certificate there is no TLS, and without TLS no login: such a port serves only devices known by address.
    disabledCommands: tlsMaterial ? [] : ['STARTTLS', 'AUTH'],
  };

  const servers: Array<{ listener: ListenerConfig; server: SMTPServer; port: number }> = [];
  const reported = new WeakSet<Error>();
  const closeServers = () =>
    Promise.all(servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
  try {
    for (const listener of config.listeners) {
      const server = new SMTPServer({
        name: config.hostname,
        banner: 'oauth-outbox relay',
        secure: listener.kind === 'tls',
        ...(tlsMaterial ? { key: tlsMaterial.key, cert: tlsMaterial.cert, minVersion: 'TLSv1.2' as const } : {}),
        disabledCommands: [...dialogue.disabledCommands],
        authMethods: ['PLAIN', 'LOGIN'],
        authOptional: true,
        allowInsecureAuth: false,
        size: config.maxMessageBytes,
        disableReverseLookup: true,
        maxClients: config.maxConnections,
        socketTimeout: config.idleTimeoutMs,
        closeTimeout: Math.max(1, config.shutdownGraceMs),
        logger: false,
        ...dialogueHandlers(dialogue, listener),
      });
      server.on('error', (error: ConnectionError) => {
        // smtp-server reports a failed STARTTLS handshake from the socket and again from the connection.
        if (reported.has(error)) return;
        reported.add(error);
        const fields = describeTlsError(error, listener.kind);
        log.warn('relay.connection_error', { listener: listener.kind, ...fields });
        if (fields.hint === TLS_TOO_OLD_HINT) activity.refused(undefined, REPLIES.tlsTooOld(), fields.remote ?? '');
      });
      if (listener.kind !== 'tls')
        watchForImplicitTls(server.server, (remote) => {
          log.warn('relay.tls_on_smtp_port', { listener: listener.kind, remote, hint: IMPLICIT_TLS_HINT });
          activity.refused(undefined, REPLIES.implicitTlsOnSmtpPort(), remote);
        });
      const port = await listen(server, listener);
      servers.push({ listener, server, port });
    }
  } catch (error) {
    await closeServers();
    senders.stop();
    await activity.close();
    await telemetry?.close(TELEMETRY_CLOSE_MS);
    throw error;
  }

  const unblockLogins = (address?: string) => {
    const count = dialogue.throttle.unblock(address);
    log.info('relay.logins_unblocked', { address: address ?? 'all', addresses: count });
    return count;
  };
  const health = config.health
    ? await startHealthServer(config.health, {
        condition: () => (stopping ? 'stopping' : storageHealth.problems()),
        blockedLogins: () => dialogue.throttle.list(),
        unblockLogins,
      })
    : undefined;
  const ports = Object.fromEntries(servers.map(({ listener, port }) => [listener.kind, port])) as Partial<
    Record<ListenerKind, number>
  >;
  log.info('relay.started', {
    hostname: config.hostname,
    listeners: servers.map(({ listener, port }) => ({ kind: listener.kind, host: listener.host ?? '*', port })),
    health: health ? health.port : null,
    devices: config.devices.length,
    storage,
    allowedSenders: senders.publishedAt ?? null,
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
        senders.stop();
        await activity.close();
        await health?.close();
        log.info('relay.stopped', {});
        await telemetry?.close(TELEMETRY_CLOSE_MS);
      })()),
    async reloadTls() {
      if (!config.tls) return;
      try {
        tlsMaterial = await loadTls(config.tls, log);
      } catch (error) {
        // A half-written renewal: the pair in use stays. Logged here, so that it also reaches Application Insights.
        log.error('relay.tls_reload_failed', { error: (error as Error).message });
        throw error;
      }
      // Every STARTTLS and implicit TLS handshake from now on uses the new pair, with or without SNI.
      for (const { server } of servers) server.updateSecureContext({ key: tlsMaterial.key, cert: tlsMaterial.cert });
      log.info('relay.tls_reloaded', { notAfter: new X509Certificate(tlsMaterial.cert).validTo });
    },
    refreshAllowedSenders: () => senders.refresh(),
    unblockLogins: () => unblockLogins(),
    flushActivity: () => activity.flush(),
  };
}

/** Within the few seconds relay/main.ts allows after the grace period. */
const TELEMETRY_CLOSE_MS = 3_000;

function startTelemetry(
  config: RelayConfig,
  identity: TokenCredential | undefined,
  problems: Logger,
  timing: Partial<TelemetryTiming> | undefined,
): TelemetryExport {
  const settings = config.applicationInsights!;
  if (settings.authentication === 'entra' && !identity)
    throw new ConfigError(
      'applicationInsights.authentication: "entra" takes its token from the storage identity, and there is none',
    );
  return new TelemetryExport(
    {
      instrumentationKey: settings.instrumentationKey,
      ingestionEndpoint: settings.ingestionEndpoint,
      credential: settings.authentication === 'entra' ? identity : undefined,
      roleInstance: config.hostname,
    },
    problems,
    timing,
  );
}

/**
 * One token request at start, so that a wrong tenant, an expired certificate or a missing Arc group shows in
 * the log at once rather than as 451s later. The relay runs either way: the identity may work in a minute.
 */
async function checkIdentity(credential: TokenCredential, log: Logger, health: StorageHealth): Promise<void> {
  try {
    await credential.getToken('https://storage.azure.com/.default', { abortSignal: AbortSignal.timeout(30_000) });
    health.ok('identity');
    log.info('relay.storage_identity_ok', {});
  } catch (error) {
    const reason = (error as Error).message.split('\n')[0]!;
    health.failed('identity', reason);
    log.error('relay.storage_identity_failed', { error: reason });
  }
}

/**
 * Reads the pair and checks that it is usable (a broken file after a renewal must not replace a good one);
 * logs when it expires.
 */
async function loadTls(source: NonNullable<RelayConfig['tls']>, log: Logger): Promise<{ key: string; cert: string }> {
  const [key, cert] =
    'certFile' in source
      ? await Promise.all([readFile(source.keyFile, 'utf8'), readFile(source.certFile, 'utf8')])
      : [source.key, source.cert];
  tls.createSecureContext({ key, cert });
  logCertificateExpiry(log, 'tls', cert);
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
