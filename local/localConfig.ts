/**
 * Where the local stack listens and keeps its data, from environment variables with fixed defaults, so that
 * `npm start`, `npm run enqueue` and `npm run results` agree without any configuration file.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../shared/errors';
import { readSetting, type Env } from '../shared/settings';

/** Everything binds to loopback only: the stack has no authentication worth the name. */
export const LOCAL_HOST = '127.0.0.1';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface LocalPorts {
  /** The functions runner (`/api/...`), like `func start`. */
  outbox: number;
  /** The local OpenID Connect provider. */
  idp: number;
  /** The mailbox page. */
  mailbox: number;
  /** The SMTP server (STARTTLS, XOAUTH2). */
  smtp: number;
  /** The SMTP relay for devices (STARTTLS, AUTH PLAIN/LOGIN). */
  relay: number;
  /** The Microsoft Graph stand-in (`POST /v1.0/users/{user}/sendMail`). */
  graph: number;
  /** The relay with implicit TLS (what port 465 is in production). */
  relayTls: number;
  /** The relay without TLS, for this machine only (what port 25 for old devices is in production). */
  relayPlain: number;
  blob: number;
  queue: number;
  table: number;
}

export interface LocalPaths {
  dataDir: string;
  azurite: string;
  mail: string;
  secrets: string;
  ca: string;
  accounts: string;
}

export interface LocalConfig {
  host: typeof LOCAL_HOST;
  ports: LocalPorts;
  paths: LocalPaths;
  outboxUrl: string;
  idpUrl: string;
  mailboxUrl: string;
  graphUrl: string;
}

/** The demo mailbox that `npm start` configures unless MAIL_ACCOUNTS or MAIL_ACCOUNTS_FILE is set. */
export const DEMO = {
  accountId: 'demo',
  user: 'demo@example.com',
  password: 'demo',
  name: 'Demo Sender',
  clientId: 'oauth-outbox-local',
  clientSecretName: 'demo-client-secret',
  /** The local provider stands in for Microsoft: same scopes, same token audience. */
  mailScope: 'https://outlook.office.com/SMTP.Send',
  /** The second demo account: a Microsoft-shaped account of the same mailbox that sends through Microsoft Graph. */
  graphAccountId: 'demo-graph',
  /** The demo user's tenant, for the Microsoft-shaped sign-in (the id_token's `tid`). */
  tenantId: '7d0a3c52-4b1e-4f8a-9c6d-2e5f8a1b3c4d',
} as const;

const PORT_SETTINGS: Record<keyof LocalPorts, { name: string; fallback: number }> = {
  outbox: { name: 'OUTBOX_PORT', fallback: 7071 },
  idp: { name: 'IDP_PORT', fallback: 7080 },
  mailbox: { name: 'MAILBOX_PORT', fallback: 7081 },
  smtp: { name: 'SMTP_PORT', fallback: 2525 },
  relay: { name: 'RELAY_PORT', fallback: 2587 },
  graph: { name: 'GRAPH_PORT', fallback: 7082 },
  relayTls: { name: 'RELAY_TLS_PORT', fallback: 2465 },
  relayPlain: { name: 'RELAY_PLAIN_PORT', fallback: 2526 },
  blob: { name: 'AZURITE_BLOB_PORT', fallback: 10000 },
  queue: { name: 'AZURITE_QUEUE_PORT', fallback: 10001 },
  table: { name: 'AZURITE_TABLE_PORT', fallback: 10002 },
};

/** The environment variables that move the stack, for help texts and docs. */
export const LOCAL_SETTINGS = [
  ...Object.values(PORT_SETTINGS).map(({ name, fallback }) => ({ name, fallback: String(fallback) })),
  { name: 'OUTBOX_DATA_DIR', fallback: '.local' },
];

export function readLocalConfig(env: Env = process.env): LocalConfig {
  const ports = Object.fromEntries(
    Object.entries(PORT_SETTINGS).map(([key, { name, fallback }]) => [key, readPort(env, name, fallback)]),
  ) as unknown as LocalPorts;
  const taken = new Map<number, string>();
  for (const [key, port] of Object.entries(ports)) {
    const other = taken.get(port);
    if (other)
      throw new ConfigError(`${settingOf(key)} and ${settingOf(other)} are both ${port}; give each service its own port.`);
    taken.set(port, key);
  }
  const dataDir = path.resolve(REPO_ROOT, readSetting(env, 'OUTBOX_DATA_DIR') ?? '.local');
  return {
    host: LOCAL_HOST,
    ports,
    paths: {
      dataDir,
      azurite: path.join(dataDir, 'azurite'),
      mail: path.join(dataDir, 'mail'),
      secrets: path.join(dataDir, 'secrets.json'),
      ca: path.join(dataDir, 'ca'),
      accounts: path.join(dataDir, 'accounts.json'),
    },
    outboxUrl: `http://${LOCAL_HOST}:${ports.outbox}`,
    idpUrl: `http://${LOCAL_HOST}:${ports.idp}`,
    mailboxUrl: `http://${LOCAL_HOST}:${ports.mailbox}`,
    graphUrl: `http://${LOCAL_HOST}:${ports.graph}`,
  };
}

export function settingOf(port: string): string {
  return PORT_SETTINGS[port as keyof LocalPorts]?.name ?? port;
}

function readPort(env: Env, name: string, fallback: number): number {
  const text = readSetting(env, name);
  if (text === undefined) return fallback;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ConfigError(`${name} must be a port number (1-65535), not "${text}".`);
  return port;
}
