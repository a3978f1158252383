/**
 * `npm run relay -- check-config [file]`: is the configuration valid, can the relay read every file it names
 * (certificate, key, identity), and, when storage answers, does each device's account exist and allow the
 * device's senders? Prints what it configures and each problem; the exit code says whether there was one.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { parseAllowedSenders, ALLOWED_SENDERS_BLOB, type AllowedSendersDocument } from '../shared/relay/allowedSenders';
import { certificateExpiry, EXPIRY_WARNING_DAYS } from './certificateExpiry';
import { APP_INSIGHTS_SETTING, loadRelayConfig, type RelayConfig } from './config';
import { createStorageTarget } from './storageTarget';

export interface ConfigCheck {
  lines: string[];
  problems: string[];
}

export async function checkConfig(file: string): Promise<ConfigCheck> {
  const config = loadRelayConfig({ RELAY_CONFIG: file, [APP_INSIGHTS_SETTING]: process.env[APP_INSIGHTS_SETTING] });
  const lines = [`${file}: valid.`, ...describe(config)];
  const problems = await unreadableFiles(config);
  if (problems.length === 0) {
    if (config.tls && 'certFile' in config.tls) lines.push(await certificateLine('tls', config.tls.certFile));
    if ('credential' in config.storage && config.storage.credential.type === 'clientCertificate')
      lines.push(await certificateLine('identity', config.storage.credential.certificateFile));
  }
  if (problems.length > 0) {
    lines.push('  senders    not checked against the accounts: fix the files first');
    return { lines, problems };
  }
  const published = await readPublished(config);
  if ('reason' in published) lines.push(`  senders    not checked against the accounts: ${published.reason}`);
  else {
    lines.push(`  senders    checked against the accounts as published ${published.document.publishedAt}`);
    problems.push(...senderProblems(config, published.document));
  }
  return { lines, problems };
}

function describe(config: RelayConfig): string[] {
  return [
    `  host name  ${config.hostname}`,
    ...config.listeners.map(
      (l) =>
        `  listener   ${l.kind.padEnd(8)} ${l.host ?? '*'}:${l.port}${l.allowFrom.length ? ` from ${l.allowFrom.map((r) => r.text).join(', ')}` : ''}`,
    ),
    `  health     ${config.health ? `${config.health.host ?? '*'}:${config.health.port}/health` : 'off'}`,
    `  storage    ${'connectionString' in config.storage ? 'connection string' : `${config.storage.blobServiceUrl.split('?')[0]} (${config.storage.credential.type})`}`,
    `  telemetry  ${config.applicationInsights ? `Application Insights at ${new URL(config.applicationInsights.ingestionEndpoint).host} (${config.applicationInsights.authentication})` : 'console only'}`,
    ...config.devices.map(
      (d) =>
        `  device     ${d.name}: ${d.user ? `user ${d.user}` : 'by address'}${d.sourceRanges.length ? ` from ${d.sourceRanges.map((r) => r.text).join(', ')}` : ''} → account ${d.account}, From ${d.allowedFrom.join(', ')}; ≤ ${d.maxMessageBytes} bytes, ≤ ${d.maxRecipients} recipients`,
    ),
  ];
}

/** Every file the configuration names, readable by this process (run it as the relay's user). */
async function unreadableFiles(config: RelayConfig): Promise<string[]> {
  const files: Array<[string, string]> = [];
  if (config.tls && 'certFile' in config.tls)
    files.push(['tls.certFile', config.tls.certFile], ['tls.keyFile', config.tls.keyFile]);
  if ('credential' in config.storage) {
    const credential = config.storage.credential;
    if (credential.type === 'clientCertificate') files.push(['storage.credential.certificateFile', credential.certificateFile]);
    if (credential.type === 'workloadIdentity' && credential.tokenFile)
      files.push(['storage.credential.tokenFile', credential.tokenFile]);
  }
  const problems: string[] = [];
  for (const [field, path] of files) {
    try {
      await access(path, constants.R_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push(
        `${field}: ${path} ${code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this user' : `cannot be read (${code})`}`,
      );
    }
  }
  return problems;
}

async function certificateLine(label: string, file: string): Promise<string> {
  try {
    const expiry = certificateExpiry(await readFile(file, 'utf8'));
    if (!expiry) return `  ${label.padEnd(10)} ${file} holds no PEM certificate`;
    const soon = expiry.daysLeft <= EXPIRY_WARNING_DAYS ? ': renew it soon' : '';
    return `  ${label.padEnd(10)} ${expiry.subject}, expires ${expiry.notAfter} (in ${expiry.daysLeft} days)${soon}`;
  } catch (error) {
    return `  ${label.padEnd(10)} ${file} is not a PEM certificate: ${(error as Error).message}`;
  }
}

async function readPublished(config: RelayConfig): Promise<{ document: AllowedSendersDocument } | { reason: string }> {
  try {
    const target = createStorageTarget({ ...config.storage, requestTimeoutSeconds: 10 });
    const body = await target.senders.getBlobClient(ALLOWED_SENDERS_BLOB).downloadToBuffer(0, undefined, {
      abortSignal: AbortSignal.timeout(30_000),
    });
    const parsed = parseAllowedSenders(body.toString('utf8'));
    return parsed.ok ? { document: parsed.document } : { reason: `the published document is invalid: ${parsed.reason}` };
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404) return { reason: 'the app has not published them yet (its token refresh timer does, hourly)' };
    return { reason: `storage did not answer (${status ?? ''} ${(error as Error).message.split('\n')[0]})`.replace('( ', '(') };
  }
}

function senderProblems(config: RelayConfig, document: AllowedSendersDocument): string[] {
  const problems: string[] = [];
  config.devices.forEach((device, index) => {
    const account = document.accounts[device.account];
    if (!account) {
      problems.push(
        `devices[${index}].account: "${device.account}" is not an account of the app (it has ${Object.keys(document.accounts).join(', ')})`,
      );
      return;
    }
    const refused = device.allowedFrom.filter((address) => !account.allowedFrom.includes(address));
    if (refused.length > 0)
      problems.push(
        `devices[${index}].allowedFrom: account "${device.account}" does not allow ${refused.join(', ')} (it allows ${account.allowedFrom.join(', ')}); every message from those would be refused`,
      );
  });
  return problems;
}
