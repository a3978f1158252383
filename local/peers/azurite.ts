/**
 * Starts Azurite (blob, queue and table emulators) as a child process on free loopback ports, for tests and
 * the local dev stack. The child dies with its parent: it is killed on 'exit', and it watches its parent
 * process id, so even a parent killed with SIGKILL leaves nothing behind for longer than a second.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net, { type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface AzuriteOptions {
  /** Data folder; Azurite keeps its data there across runs. Implies `inMemory: false`. */
  location?: string;
  /** Keep everything in memory (the default unless `location` is given). */
  inMemory?: boolean;
  host?: '127.0.0.1';
  blobPort?: number;
  queuePort?: number;
  tablePort?: number;
  /** No access log (default true). With `silent: false` Azurite's output goes to this process's stdout/stderr. */
  silent?: boolean;
  /** How long to wait for the three services to accept connections (default 30 s). */
  startTimeoutMs?: number;
}

export interface Azurite {
  /** The well-known devstoreaccount1 connection string with explicit endpoints. */
  readonly connectionString: string;
  readonly blobPort: number;
  readonly queuePort: number;
  readonly tablePort: number;
  readonly accountName: string;
  readonly accountKey: string;
  readonly pid: number;
  /** Stops Azurite (gracefully, then by force) and waits until the process has exited. */
  stop(): Promise<void>;
}

/** Azurite's fixed development account (public, documented by Microsoft). */
export const DEV_ACCOUNT_NAME = 'devstoreaccount1';
export const DEV_ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export function devConnectionString(host: string, ports: { blobPort: number; queuePort: number; tablePort: number }): string {
  return (
    [
      'DefaultEndpointsProtocol=http',
      `AccountName=${DEV_ACCOUNT_NAME}`,
      `AccountKey=${DEV_ACCOUNT_KEY}`,
      `BlobEndpoint=http://${host}:${ports.blobPort}/${DEV_ACCOUNT_NAME}`,
      `QueueEndpoint=http://${host}:${ports.queuePort}/${DEV_ACCOUNT_NAME}`,
      `TableEndpoint=http://${host}:${ports.tablePort}/${DEV_ACCOUNT_NAME}`,
    ].join(';') + ';'
  );
}

const SCRATCH_ENV = 'AZURITE_SCRATCH_DIR';

// Runs inside the Azurite process before its own code: once the parent is gone (we were re-parented),
// remove the scratch directory the parent can no longer clean up, and exit.
const PARENT_WATCH = `import { rmSync } from 'node:fs';
const parent = process.ppid;
setInterval(() => {
  if (process.ppid === parent) return;
  const scratch = process.env.${SCRATCH_ENV};
  if (scratch) try { rmSync(scratch, { recursive: true, force: true }); } catch {}
  process.exit(0);
}, 500).unref();`;

const KEEP_OUTPUT = 16 * 1024;

export async function startAzurite(options: AzuriteOptions = {}): Promise<Azurite> {
  if (options.location && options.inMemory) throw new Error('startAzurite: choose either location or inMemory');
  const host = options.host ?? '127.0.0.1';
  const silent = options.silent ?? true;
  const [blobPort, queuePort, tablePort] = await choosePorts(host, [options.blobPort, options.queuePort, options.tablePort]);
  // In memory, Azurite still uses its working directory as workspace: give it a throw-away one.
  const scratch = options.location ? undefined : await mkdtemp(path.join(os.tmpdir(), 'azurite-'));
  if (options.location) await mkdir(options.location, { recursive: true });

  const args = [
    '--import',
    `data:text/javascript,${encodeURIComponent(PARENT_WATCH)}`,
    azuriteEntry(),
    '--blobHost',
    host,
    '--blobPort',
    String(blobPort),
    '--queueHost',
    host,
    '--queuePort',
    String(queuePort),
    '--tableHost',
    host,
    '--tablePort',
    String(tablePort),
    '--skipApiVersionCheck',
    '--loose',
    '--disableProductStyleUrl',
    '--disableTelemetry',
    ...(options.location ? ['--location', options.location] : ['--inMemoryPersistence']),
    ...(silent ? ['--silent'] : []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: scratch ?? options.location,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group, so stop() can signal Azurite and anything it might start.
    detached: process.platform !== 'win32',
    env: { ...process.env, [SCRATCH_ENV]: scratch ?? '' },
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-KEEP_OUTPUT);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  if (!silent) {
    child.stdout?.pipe(process.stdout, { end: false });
    child.stderr?.pipe(process.stderr, { end: false });
  }
  // Azurite lives as long as this process wants it, not longer: a forgotten stop() must not keep it running.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as Socket | null)?.unref();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const killOnExit = () => {
    signal(child, 'SIGKILL');
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  };
  process.on('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        signal(child, 'SIGTERM');
        if (!(await within(exited, 5_000))) {
          signal(child, 'SIGKILL');
          await exited;
        }
      }
      process.off('exit', killOnExit);
      if (scratch) await rm(scratch, { recursive: true, force: true });
    })());

  try {
    await waitUntilListening(host, [blobPort, queuePort, tablePort], exited, options.startTimeoutMs ?? 30_000);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- Azurite output ---\n${output.trim()}`, { cause: err });
  }

  return {
    connectionString: devConnectionString(host, { blobPort, queuePort, tablePort }),
    blobPort,
    queuePort,
    tablePort,
    accountName: DEV_ACCOUNT_NAME,
    accountKey: DEV_ACCOUNT_KEY,
    pid: child.pid as number,
    stop,
  };
}

function azuriteEntry(): string {
  const require = createRequire(import.meta.url);
  const manifestPath = require.resolve('azurite/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { bin?: Record<string, string> };
  const bin = manifest.bin?.azurite;
  if (!bin) throw new Error('startAzurite: the azurite package has no "azurite" bin');
  return path.join(path.dirname(manifestPath), bin);
}

/** Signals the whole process group where there is one; ignores a process that is already gone. */
function signal(child: ChildProcess, name: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    if (process.platform === 'win32') child.kill(name);
    else process.kill(-child.pid, name);
  } catch {
    // already exited
  }
}

type Ports<T> = readonly [blob: T, queue: T, table: T];

/** Given ports are kept; the others are picked by the OS, all held open together so they differ. */
async function choosePorts(host: string, wanted: Ports<number | undefined>): Promise<Ports<number>> {
  const servers = await Promise.all(
    wanted.map((port) =>
      port !== undefined
        ? undefined
        : new Promise<net.Server>((resolve, reject) => {
            const server = net.createServer();
            server.once('error', reject);
            server.listen(0, host, () => resolve(server));
          }),
    ),
  );
  const port = (i: 0 | 1 | 2) => wanted[i] ?? (servers[i]?.address() as net.AddressInfo).port;
  const ports: Ports<number> = [port(0), port(1), port(2)];
  await Promise.all(servers.map((server) => server && new Promise((resolve) => server.close(resolve))));
  return ports;
}

async function waitUntilListening(
  host: string,
  ports: number[],
  exited: Promise<number | null>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const pending = new Set(ports);
  while (pending.size > 0) {
    if (exitCode !== undefined) throw new Error(`Azurite exited during start-up (code ${exitCode})`);
    if (Date.now() > deadline) throw new Error(`Azurite did not listen on ${[...pending].join(', ')} within ${timeoutMs} ms`);
    for (const port of [...pending]) if (await accepts(host, port)) pending.delete(port);
    if (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (exitCode !== undefined) throw new Error(`Azurite exited during start-up (code ${exitCode})`);
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1_000, () => done(false));
  });
}

function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
