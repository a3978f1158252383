/**
 * The relay in the local stack (`npm start`): STARTTLS on 127.0.0.1:RELAY_PORT (default 2587), implicit TLS on
 * RELAY_TLS_PORT (2465) and a plain port on RELAY_PLAIN_PORT (2526) that takes only 127.0.0.1, so that every
 * setting a device offers can be tried; the local CA's certificate, Azurite as storage, and one demo device
 * `scanner` / `scanner` that sends for the demo account. local/start.ts starts it next to the other local servers:
 *
 *   const relay = await startLocalRelay({ host, port: relayPort(process.env), connectionString, certFile, keyFile,
 *                                         account: DEMO.accountId, from: DEMO.user });
 *   stops.push({ name: 'the SMTP relay', stop: relay.close });   // and relay.bannerLine in the banner
 */
import type { Logger } from '../shared/log/logger';
import { readSetting, type Env } from '../shared/settings';
import { ConfigError } from '../shared/errors';
import { hashPassword } from './passwordHash';
import { startRelay, type Relay } from './startRelay';

export const DEFAULT_RELAY_PORT = 2587;
export const RELAY_PORT_SETTING = 'RELAY_PORT';
/** The demo device. A real device's password is long and random (`npm run relay -- hash-password --generate`). */
export const LOCAL_RELAY_DEVICE = { user: 'scanner', password: 'scanner' } as const;

export function relayPort(env: Env = process.env): number {
  const text = readSetting(env, RELAY_PORT_SETTING);
  if (text === undefined) return DEFAULT_RELAY_PORT;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigError(`${RELAY_PORT_SETTING}: "${text}" is not a port number (0-65535)`);
  return port;
}

export interface LocalRelayOptions {
  host: string;
  /** STARTTLS. */
  port: number;
  /** Implicit TLS; none when left out. */
  tlsPort?: number;
  /** No TLS, from 127.0.0.1 only; none when left out. */
  plainPort?: number;
  /** The local CA, which a device must trust: named in the banner. */
  caFile?: string;
  /** Azurite's connection string (the container and the queue are created if missing). */
  connectionString: string;
  certFile: string;
  keyFile: string;
  /** The account the demo device sends for, and the From address it may use. */
  account: string;
  from: string;
  log?: Logger;
}

export interface LocalRelay extends Relay {
  /** One line for the local stack's banner. */
  readonly bannerLine: string;
}

export async function startLocalRelay(options: LocalRelayOptions): Promise<LocalRelay> {
  const relay = await startRelay({
    config: {
      hostname: 'localhost',
      listeners: {
        starttls: { host: options.host, port: options.port },
        ...(options.tlsPort !== undefined ? { tls: { host: options.host, port: options.tlsPort } } : {}),
        ...(options.plainPort !== undefined
          ? { plain: { host: options.host, port: options.plainPort, allowFrom: ['127.0.0.1/32'] } }
          : {}),
      },
      tls: { certFile: options.certFile, keyFile: options.keyFile },
      storage: { connectionString: options.connectionString, createIfMissing: true },
      shutdownGraceSeconds: 5,
      devices: [
        {
          user: LOCAL_RELAY_DEVICE.user,
          passwordHash: await hashPassword(LOCAL_RELAY_DEVICE.password),
          account: options.account,
          allowedFrom: [options.from],
        },
      ],
    },
    ...(options.log ? { log: options.log } : {}),
    // The app publishes again when an account is authorized: a few seconds, not a minute, before the relay knows.
    sendersRefreshMs: 5_000,
  });
  const { user, password } = LOCAL_RELAY_DEVICE;
  const { starttls, tls, plain } = relay.ports;
  const indent = ' '.repeat(22);
  return Object.assign(relay, {
    bannerLine: [
      `  SMTP relay          ${options.host}:${starttls} STARTTLS${tls !== undefined ? `, :${tls} SSL/TLS` : ''}${plain !== undefined ? `, :${plain} no TLS (this machine only)` : ''}`,
      `${indent}user name ${user}, password ${password}: sends for "${options.account}" as ${options.from}`,
      ...(options.caFile ? [`${indent}the device must trust the CA in ${options.caFile}`] : []),
    ].join('\n'),
  });
}
