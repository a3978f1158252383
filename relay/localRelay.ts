/**
 * The relay in the local stack (`npm start`): STARTTLS on 127.0.0.1:RELAY_PORT (default 2587) with the local
 * CA's certificate, Azurite as storage, and one demo device `scanner` / `scanner` that sends for the demo
 * account. local/start.ts starts it next to the other local servers:
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
  port: number;
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
      listeners: { starttls: { host: options.host, port: options.port } },
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
  });
  const { user, password } = LOCAL_RELAY_DEVICE;
  return Object.assign(relay, {
    bannerLine: `  SMTP relay          ${options.host}:${relay.port} (STARTTLS; device ${user} / ${password} sends for "${options.account}" as ${options.from})`,
  });
}
