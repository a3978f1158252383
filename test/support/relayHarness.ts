/**
 * The relay under test, on real components: `startRelay` in this process (or `relay/main.ts` as a child
 * process) against Azurite, with the test CA's certificate, and a view of what it wrote: the queue messages
 * on mail-outbox and the blobs in mail-mime. The end-to-end test through sendMail needs only this and
 * test/support/relayDevice.ts: start Azurite, `startTestRelay`, send with `deviceTransport`, then drain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { createLogger } from '../../shared/log/logger';
import { CONTAINERS, QUEUES } from '../../shared/names';
import type { DeviceInput, RelayConfigInput } from '../../relay/configSchema';
import type { MimeQueueMessage } from '../../relay/mimeStore';
import { hashPassword, type ScryptParams } from '../../relay/passwordHash';
import { startRelay, type Relay } from '../../relay/startRelay';
import { ensureTestCaFiles } from './certs';

/** Cheap scrypt parameters: the tests log in many times; the format and the code path are the same. */
export const TEST_SCRYPT: ScryptParams = { N: 1024, r: 8, p: 1 };

export interface TestDevice extends Omit<DeviceInput, 'passwordHash'> {
  password?: string;
}

export async function deviceConfigs(devices: readonly TestDevice[]): Promise<DeviceInput[]> {
  return Promise.all(
    devices.map(async ({ password, ...device }) => ({
      ...device,
      ...(password !== undefined ? { passwordHash: await hashPassword(password, TEST_SCRYPT) } : {}),
    })),
  );
}

/** A complete relay configuration on loopback: STARTTLS and TLS on free ports, the test CA's server certificate. */
export async function testRelayConfig(
  connectionString: string,
  devices: readonly TestDevice[],
  overrides: Partial<RelayConfigInput> = {},
): Promise<RelayConfigInput> {
  const ca = await ensureTestCaFiles();
  return {
    hostname: 'localhost',
    listeners: { starttls: { host: '127.0.0.1', port: 0 }, tls: { host: '127.0.0.1', port: 0 } },
    tls: { certFile: ca.serverCertPath, keyFile: ca.serverKeyPath },
    storage: { connectionString, createIfMissing: true },
    health: { host: '127.0.0.1', port: 0 },
    shutdownGraceSeconds: 10,
    ...overrides,
    devices: await deviceConfigs(devices),
  };
}

export interface TestRelay {
  relay: Relay;
  /** STARTTLS port. */
  port: number;
  /** Implicit TLS port. */
  tlsPort: number | undefined;
  plainPort: number | undefined;
  healthUrl: string | undefined;
  /** The relay's log lines (JSON). */
  logs: string[];
  close(): Promise<void>;
}

export async function startTestRelay(
  connectionString: string,
  devices: readonly TestDevice[],
  overrides: Partial<RelayConfigInput> = {},
): Promise<TestRelay> {
  const logs: string[] = [];
  const relay = await startRelay({
    config: await testRelayConfig(connectionString, devices, overrides),
    log: createLogger((_level, line) => logs.push(line)),
  });
  return {
    relay,
    port: relay.ports.starttls ?? relay.port,
    tlsPort: relay.ports.tls,
    plainPort: relay.ports.plain,
    healthUrl: relay.healthPort ? `http://127.0.0.1:${relay.healthPort}/health` : undefined,
    logs,
    close: () => relay.close(),
  };
}

/** What the relay wrote to Azurite. */
export function relayStorage(connectionString: string) {
  const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient(CONTAINERS.mime);
  const queue = QueueServiceClient.fromConnectionString(connectionString).getQueueClient(QUEUES.outbox);
  const decode = (text: string) => JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as MimeQueueMessage;
  return {
    container,
    queue,
    /** Up to 32 queued messages, decoded, without taking them off the queue. */
    async messages(): Promise<MimeQueueMessage[]> {
      const { peekedMessageItems } = await queue.peekMessages({ numberOfMessages: 32 });
      return peekedMessageItems.map((m) => decode(m.messageText));
    },
    async message(id: string): Promise<MimeQueueMessage | undefined> {
      return (await this.messages()).find((m) => m.id === id);
    },
    async count(): Promise<number> {
      return (await queue.getProperties()).approximateMessagesCount ?? 0;
    },
    /** A blob by its reference as the queue message gives it (`mail-mime/…`). */
    async blob(reference: string): Promise<{ body: Buffer; contentType: string | undefined }> {
      const name = reference.slice(`${CONTAINERS.mime}/`.length);
      const client = container.getBlockBlobClient(name);
      const [body, properties] = await Promise.all([client.downloadToBuffer(), client.getProperties()]);
      return { body, contentType: properties.contentType };
    },
    /** Committed blobs only: uncommitted blocks are not a blob. */
    async blobNames(): Promise<string[]> {
      const names: string[] = [];
      for await (const item of container.listBlobsFlat()) names.push(item.name);
      return names;
    },
    async clear(): Promise<void> {
      await Promise.all([container.createIfNotExists(), queue.createIfNotExists()]);
      await queue.clearMessages();
      for await (const item of container.listBlobsFlat()) await container.deleteBlob(item.name);
    },
  };
}

export interface RelayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Ports from the relay's `relay.started` log line. */
  readonly port: number;
  readonly healthPort: number | undefined;
  /** stdout lines so far (the JSON logs). */
  readonly logs: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
  /** Kills it if still running and removes its configuration file. */
  stop(): Promise<void>;
}

/**
 * `node --import tsx relay/main.ts` (or `node <bundle>`, e.g. the output of relay/build.mjs) with the
 * configuration in a temporary RELAY_CONFIG file.
 */
export async function spawnRelayProcess(
  config: RelayConfigInput,
  options: { bundle?: string; nodeOptions?: readonly string[]; env?: Record<string, string>; startTimeoutMs?: number } = {},
): Promise<RelayProcess> {
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'relay-config-'));
  const file = path.join(dir, 'relay.json');
  await writeFile(file, JSON.stringify(config), { mode: 0o600 });
  const root = path.resolve(import.meta.dirname, '../..');
  const entry = options.bundle ? [options.bundle] : ['--import', 'tsx', 'relay/main.ts'];
  const child = spawn(process.execPath, [...(options.nodeOptions ?? []), ...entry], {
    cwd: root,
    env: { ...process.env, ...options.env, RELAY_CONFIG: file },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let partial = '';
  const started = new Promise<{ port: number; healthPort: number | undefined }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the relay did not start within ${startTimeoutMs} ms: ${stderr}`)),
      startTimeoutMs,
    );
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        logs.push(line);
        if (!line.includes('"relay.started"')) continue;
        clearTimeout(timer);
        const event = JSON.parse(line) as { listeners: Array<{ port: number }>; health: number | null };
        resolve({ port: event.listeners[0]!.port, healthPort: event.health ?? undefined });
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`the relay exited during start-up (code ${code}): ${stderr}`));
    });
  });
  const killIfRunning = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killIfRunning);
  let ports: { port: number; healthPort: number | undefined };
  try {
    ports = await started;
  } catch (error) {
    killIfRunning();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    child,
    pid: child.pid!,
    ...ports,
    logs,
    exited,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    async stop() {
      killIfRunning();
      await exited;
      process.off('exit', killIfRunning);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
