/**
 * Loads and validates the relay configuration: the JSON file named by RELAY_CONFIG. An invalid configuration
 * stops the relay before it listens, with the path of each bad field (`RELAY_CONFIG.devices[1].passwordHash: …`).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { z } from 'zod';
import { ConfigError } from '../shared/errors';
import type { Env } from '../shared/settings';
import { parseAppInsightsConnection, type AppInsightsConnection } from './appInsightsConnection';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_RECIPIENTS,
  relayConfigInputSchema,
  type CredentialInput,
  type DeviceInput,
  type RelayConfigInput,
  type StorageInput,
} from './configSchema';
import { parseIpRange, type IpRange } from './ipRanges';

export type ListenerKind = 'starttls' | 'tls' | 'plain';

export interface ListenerConfig {
  kind: ListenerKind;
  host: string | undefined;
  port: number;
  /** Only for `plain`: where connections may come from. */
  allowFrom: IpRange[];
}

export interface Device {
  /** Shown in logs. */
  name: string;
  /** Undefined for a device that is recognized by its address alone. */
  user: string | undefined;
  passwordHash: string | undefined;
  account: string;
  /** Lower-case addresses, in configuration order. */
  allowedFrom: readonly string[];
  /** Empty: any address (a device with a user name only). */
  sourceRanges: IpRange[];
  maxMessageBytes: number;
  maxRecipients: number;
}

export interface LoginFailurePolicy {
  maxFailures: number;
  windowMs: number;
  blockMs: number;
  delayStepMs: number;
  maxDelayMs: number;
}

/** Where the relay's log lines go as traces, and how it proves itself there. */
export interface ApplicationInsightsConfig extends AppInsightsConnection {
  /** `entra`: a token from the storage identity, for a resource with local authentication off. */
  authentication: 'entra' | 'instrumentationKey';
}

export type StorageConfig = StorageInput;
export type CredentialConfig = CredentialInput;

export interface RelayConfig {
  hostname: string;
  listeners: ListenerConfig[];
  tls: { certFile: string; keyFile: string } | { cert: string; key: string } | undefined;
  storage: StorageConfig;
  health: { host: string | undefined; port: number } | undefined;
  maxConnections: number;
  idleTimeoutMs: number;
  loginFailures: LoginFailurePolicy;
  shutdownGraceMs: number;
  devices: Device[];
  /** The largest message any device may send: what EHLO announces as SIZE. */
  maxMessageBytes: number;
  applicationInsights: ApplicationInsightsConfig | undefined;
}

export const RELAY_CONFIG_SETTING = 'RELAY_CONFIG';
/** Used when the file has no `applicationInsights` section (the name every Application Insights SDK reads). */
export const APP_INSIGHTS_SETTING = 'APPLICATIONINSIGHTS_CONNECTION_STRING';

export function loadRelayConfig(env: Env = process.env): RelayConfig {
  const file = env[RELAY_CONFIG_SETTING]?.trim();
  if (!file) throw new ConfigError(`${RELAY_CONFIG_SETTING} is not set: give the path of the relay's JSON configuration file.`);
  const source = `${RELAY_CONFIG_SETTING} (${file})`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${source}: cannot read the file: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  return parseRelayConfig(json, RELAY_CONFIG_SETTING, env);
}

/** `env` only supplies APPLICATIONINSIGHTS_CONNECTION_STRING. */
export function parseRelayConfig(json: unknown, source = RELAY_CONFIG_SETTING, env: Env = {}): RelayConfig {
  const parsed = relayConfigInputSchema.safeParse(json);
  if (!parsed.success) throw new ConfigError(formatIssues(source, parsed.error));
  const input = parsed.data;
  const problems = crossFieldProblems(input).map((p) => `${source}.${p}`);
  const telemetry = applicationInsights(input, source, env);
  if (telemetry.problem) problems.push(telemetry.problem);
  if (problems.length > 0) throw new ConfigError(`Invalid relay configuration:\n  ${problems.join('\n  ')}`);
  return resolve(input, telemetry.config);
}

function formatIssues(source: string, error: z.ZodError): string {
  const lines = error.issues.map((issue) => {
    const path = issue.path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('');
    return `${source}${path}: ${issue.message}`;
  });
  return `Invalid relay configuration:\n  ${lines.join('\n  ')}`;
}

type ParsedInput = z.infer<typeof relayConfigInputSchema>;

/** Rules that span fields; each problem is "path: sentence". */
function crossFieldProblems(input: ParsedInput): string[] {
  const problems: string[] = [];
  const { listeners } = input;
  if (!listeners.starttls && !listeners.tls && !listeners.plain)
    problems.push('listeners: configure at least one of starttls, tls and plain');
  if ((listeners.starttls || listeners.tls) && !input.tls)
    problems.push('tls: a certificate and key (certFile and keyFile) are needed for the starttls and tls listeners');
  const ports = new Map<number, string>();
  for (const [kind, listener] of Object.entries(listeners)) {
    if (!listener || listener.port === 0) continue;
    const other = ports.get(listener.port);
    if (other) problems.push(`listeners.${kind}.port: ${listener.port} is also the ${other} listener's port`);
    ports.set(listener.port, kind);
  }
  if (input.health && input.health.port !== 0 && ports.has(input.health.port))
    problems.push(`health.port: ${input.health.port} is also the ${ports.get(input.health.port)} listener's port`);

  const users = new Map<string, number>();
  const names = new Map<string, number>();
  const ipOnlyRanges = new Map<string, number>();
  input.devices.forEach((device, index) => {
    const at = `devices[${index}]`;
    if (device.user !== undefined && device.passwordHash === undefined)
      problems.push(`${at}.passwordHash: required with "user" (make one with \`npm run relay -- hash-password\`)`);
    if (device.user === undefined && device.passwordHash !== undefined) problems.push(`${at}.user: required with "passwordHash"`);
    if (device.user === undefined && !device.sourceRanges)
      problems.push(`${at}.sourceRanges: a device without a user name is recognized by its address only; list its networks`);
    if (device.user === undefined && device.name === undefined)
      problems.push(`${at}.name: a device without a user name needs a name (it appears in the logs)`);
    if (device.user !== undefined) {
      const key = device.user.toLowerCase();
      if (users.has(key)) problems.push(`${at}.user: "${device.user}" is also devices[${users.get(key)}].user`);
      users.set(key, index);
    }
    const name = deviceName(device);
    if (names.has(name)) problems.push(`${at}.name: "${name}" is also the name of devices[${names.get(name)}]`);
    names.set(name, index);
    if (device.user === undefined) {
      for (const text of device.sourceRanges ?? []) {
        const range = parseIpRange(text);
        const key = `${range.bytes.toString('hex')}/${range.prefix}`;
        const other = ipOnlyRanges.get(key);
        if (other !== undefined && other !== index)
          problems.push(`${at}.sourceRanges: ${text} also belongs to devices[${other}]; a network maps to one device`);
        ipOnlyRanges.set(key, index);
      }
    }
  });
  return problems;
}

/** The file's section, or the environment variable when the file has none (then with Entra authentication). */
function applicationInsights(
  input: ParsedInput,
  source: string,
  env: Env,
): { config?: ApplicationInsightsConfig; problem?: string } {
  const section = input.applicationInsights;
  const fromEnv = env[APP_INSIGHTS_SETTING]?.trim();
  if (!section && !fromEnv) return {};
  const text = section?.connectionString ?? fromEnv;
  if (!text) return { problem: `${source}.applicationInsights.connectionString: required (or set ${APP_INSIGHTS_SETTING})` };
  let connection: AppInsightsConnection;
  try {
    connection = parseAppInsightsConnection(text);
  } catch (error) {
    // The file's string passed the schema: this one came from the environment.
    return { problem: `${APP_INSIGHTS_SETTING}: ${(error as Error).message}` };
  }
  const authentication = section?.authentication ?? 'entra';
  if (authentication === 'entra' && 'connectionString' in input.storage)
    return {
      problem: section
        ? `${source}.applicationInsights.authentication: "entra" (the default) takes its token from the storage identity, and storage has a connection string instead: give storage its service URLs and a credential, or set "authentication": "instrumentationKey"`
        : `${APP_INSIGHTS_SETTING} is set, so the relay sends its logs to Application Insights with the storage identity, and storage has a connection string instead: add "applicationInsights": { "authentication": "instrumentationKey" } to ${source}, or unset ${APP_INSIGHTS_SETTING}`,
    };
  return { config: { ...connection, authentication } };
}

const deviceName = (device: DeviceInput) => device.name ?? device.user ?? '';

function resolve(input: ParsedInput, applicationInsights: ApplicationInsightsConfig | undefined): RelayConfig {
  const limits = input.limits ?? {};
  const devices = input.devices.map((device): Device => {
    const account = input.accounts?.[device.account] ?? {};
    return {
      name: deviceName(device),
      user: device.user,
      passwordHash: device.passwordHash,
      account: device.account,
      allowedFrom: [...new Set(device.allowedFrom.map((a) => a.toLowerCase()))],
      sourceRanges: (device.sourceRanges ?? []).map(parseIpRange),
      maxMessageBytes: device.maxMessageBytes ?? account.maxMessageBytes ?? limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      maxRecipients: device.maxRecipients ?? account.maxRecipients ?? limits.maxRecipients ?? DEFAULT_MAX_RECIPIENTS,
    };
  });
  const listeners: ListenerConfig[] = [];
  const { starttls, tls, plain } = input.listeners;
  if (starttls) listeners.push({ kind: 'starttls', host: starttls.host, port: starttls.port, allowFrom: [] });
  if (tls) listeners.push({ kind: 'tls', host: tls.host, port: tls.port, allowFrom: [] });
  if (plain) listeners.push({ kind: 'plain', host: plain.host, port: plain.port, allowFrom: plain.allowFrom.map(parseIpRange) });
  const failures = input.loginFailures ?? {};
  return {
    hostname: input.hostname ?? os.hostname(),
    listeners,
    tls: input.tls,
    storage: input.storage,
    health: input.health ? { host: input.health.host, port: input.health.port } : undefined,
    maxConnections: limits.maxConnections ?? 200,
    idleTimeoutMs: (limits.idleTimeoutSeconds ?? 120) * 1000,
    loginFailures: {
      maxFailures: failures.maxFailures ?? 5,
      windowMs: (failures.windowSeconds ?? 900) * 1000,
      blockMs: (failures.blockSeconds ?? 900) * 1000,
      delayStepMs: failures.delayStepMs ?? 1000,
      maxDelayMs: failures.maxDelayMs ?? 5000,
    },
    shutdownGraceMs: (input.shutdownGraceSeconds ?? 30) * 1000,
    devices,
    maxMessageBytes: Math.max(...devices.map((d) => d.maxMessageBytes)),
    applicationInsights,
  };
}

export type { RelayConfigInput };
